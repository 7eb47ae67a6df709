"""manage.py build_lora_dataset: training examples from an evaluation set, from answers users
rated well, and from questions an LLM (the OpenAI-protocol test server) writes about chunks."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from generation.prompts import NOT_FOUND_ANSWER, build_messages
from knowledge import answering, components, conversations, documents, ingestion, search
from knowledge.models import Message
from tests.conftest import SHARED_DATA
from tests.factories import add_file, add_text, make_knowledge_base, make_user
from tests.openai_server import Reply

pytestmark = pytest.mark.django_db

DOCUMENTS = {
    "vacation.md": "# Vacation\n\nEmployees get 25 vacation days a year. Unused vacation days "
    "carry over until the end of March.",
    "travel.md": "# Travel\n\nTravel is approved by the team lead before booking. Economy class "
    "is the default for flights shorter than six hours.",
    "expenses.md": "# Expenses\n\nExpenses are reimbursed within 30 days once the receipt is "
    "filed in the finance portal.",
}
TOP_K = 3


@pytest.fixture(autouse=True)
def hashing_embedder(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:256"  # a real, weightless embedder


@pytest.fixture
def handbook():
    knowledge_base = make_knowledge_base("handbook")
    for name, text in DOCUMENTS.items():
        ingestion.ingest_document(add_text(knowledge_base, name, text).pk)
    return knowledge_base


def build(*args: str, out: Path) -> tuple[str, list[dict]]:
    stdout = StringIO()
    call_command("build_lora_dataset", "--out", str(out), "--top-k", str(TOP_K), *args,
                 stdout=stdout)  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return stdout.getvalue(), rows


def cited_numbers(answer: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", answer)]


def write_eval_set(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_reference_answers_become_cited_examples_in_the_served_format(handbook, tmp_path):
    question = "How many vacation days do employees get?"
    reference = "Employees get 25 vacation days a year. Unused days carry over until March."
    row = {"id": "q1", "question": question, "reference_answer": reference}
    dataset = write_eval_set(tmp_path / "eval.jsonl", [row])
    output, rows = build("--kb", "handbook", "--dataset", str(dataset), out=tmp_path / "t.jsonl")

    assert len(rows) == 1 and rows[0]["source"] == "evaluation"
    passages = search.search_passages([handbook], question, TOP_K)
    assert rows[0]["messages"][:-1] == build_messages(question, passages)
    answer = rows[0]["messages"][-1]
    assert answer["role"] == "assistant"
    numbers = cited_numbers(answer["content"])
    assert len(numbers) == 2  # one citation per sentence
    assert all("25 vacation days" in passages[n - 1].text for n in numbers)
    assert re.search(r"evaluation set\s+1 example", output)


def test_not_found_examples_pair_a_question_with_passages_that_lack_its_answer(handbook, tmp_path):
    rows = [
        {"id": "q1", "question": "How many vacation days do employees get?",
         "reference_answer": "Employees get 25 vacation days a year."},
        {"id": "q2", "question": "Who approves travel?",
         "reference_answer": "Travel is approved by the team lead before booking."},
    ]  # fmt: skip
    dataset = write_eval_set(tmp_path / "eval.jsonl", rows)
    output, examples = build(
        "--kb", "handbook", "--dataset", str(dataset), "--not-found-share", "0.5",
        out=tmp_path / "t.jsonl",
    )  # fmt: skip
    assert [e["source"] for e in examples] == ["evaluation", "evaluation", "not-found"]
    negative = examples[-1]["messages"]
    assert negative[-1] == {"role": "assistant", "content": NOT_FOUND_ANSWER}
    prompt = negative[-2]["content"]
    assert "How many vacation days do employees get?" in prompt
    assert "25 vacation days" not in prompt  # the passage holding the answer is left out
    assert "<source" in prompt  # but other retrieved passages are there
    assert re.search(r"not found\s+1 example", output)


def test_no_not_found_examples_when_the_share_is_zero(handbook, tmp_path):
    row = {"id": "q1", "question": "Who approves travel?",
           "reference_answer": "Travel is approved by the team lead before booking."}  # fmt: skip
    dataset = write_eval_set(tmp_path / "eval.jsonl", [row])
    output, examples = build(
        "--kb", "handbook", "--dataset", str(dataset), "--not-found-share", "0",
        out=tmp_path / "t.jsonl",
    )  # fmt: skip
    assert [e["source"] for e in examples] == ["evaluation"]
    assert "--not-found-share 0" in output
    with pytest.raises(CommandError, match="between 0 and 1"):
        build("--kb", "handbook", "--not-found-share", "2", out=tmp_path / "u.jsonl")


def test_reference_answers_the_passages_do_not_support_are_left_out(handbook, tmp_path):
    dataset = write_eval_set(
        tmp_path / "eval.jsonl",
        [
            {"id": "a", "question": "Who approves travel?",
             "reference_answer": "The team lead approves travel before booking."},
            {"id": "b", "question": "What does the cafeteria serve?",
             "reference_answer": "The cafeteria serves fresh pasta every Friday."},
            {"id": "c", "question": "Who approves travel?"},
        ],
    )  # fmt: skip
    output, rows = build("--kb", "handbook", "--dataset", str(dataset), out=tmp_path / "t.jsonl")

    assert len(rows) == 1
    assert "Question: Who approves travel?" in rows[0]["messages"][-2]["content"]
    assert "1 not supported by the retrieved passages" in output
    assert "1 without reference answer" in output


def test_answers_rated_well_become_examples(handbook, tmp_path):
    user = make_user("member")
    handbook.members.add(user)
    liked = answering.answer_question("How many vacation days do employees get?", [handbook],
                                     user=user, top_k=TOP_K)  # fmt: skip
    disliked = answering.answer_question("Who approves travel?", [handbook], user=user, top_k=TOP_K)
    conversations.record_feedback(Message.objects.get(pk=liked.message), user, 1)
    conversations.record_feedback(Message.objects.get(pk=disliked.message), user, -1)

    output, rows = build("--kb", "handbook", out=tmp_path / "t.jsonl")

    assert len(rows) == 1 and rows[0]["source"] == "rated"
    assert rows[0]["messages"][-1]["content"] == liked.text
    assert rows[0]["messages"][:-1] == build_messages(
        liked.standalone_question, search.search_passages([handbook], "How many vacation "
                                                                "days do employees get?", TOP_K)
    )  # fmt: skip
    assert re.search(r"rated answers\s+1 example", output)


def test_a_rated_answer_whose_source_was_deleted_is_left_out(handbook, tmp_path):
    user = make_user("member")
    handbook.members.add(user)
    liked = answering.answer_question("How many vacation days do employees get?", [handbook],
                                     user=user, top_k=TOP_K)  # fmt: skip
    conversations.record_feedback(Message.objects.get(pk=liked.message), user, 1)
    cited = {c.document_id for c in liked.citations}
    assert cited, "the extractive answer should cite the vacation document"
    for document in handbook.documents.filter(pk__in=cited):
        documents.delete_document(document)

    with pytest.raises(CommandError, match="No training example"):
        build("--kb", "handbook", out=tmp_path / "t.jsonl")


def test_generated_questions_come_from_the_llm_and_cite_their_chunk(
    handbook, tmp_path, settings, llm_server
):
    settings.RAG_LLM_BASE_URL = llm_server.url
    settings.RAG_LLM_MODEL = "test-model"
    components.reset_llm_clients()

    def question_about_the_source(body: dict) -> str:
        source_text = body["messages"][-1]["content"].splitlines()[-2]  # line before </source>
        sentence = source_text.split(". ")[0].rstrip(".") + "."
        return json.dumps({"question": f"Is it true that {sentence}", "answer": sentence})

    llm_server.default_reply = Reply(text=question_about_the_source)
    try:
        output, rows = build("--kb", "handbook", out=tmp_path / "t.jsonl")
    finally:
        components.reset_llm_clients()

    sources = [row["source"] for row in rows]
    assert sources == ["generated"] * len(DOCUMENTS) + ["not-found"]  # 0.2 of 3, rounded
    for row in rows[: len(DOCUMENTS)]:
        question = row["messages"][-2]["content"].split("Question: ")[1].split("\n")[0]
        passages = search.search_passages([handbook], question, TOP_K)
        answer = row["messages"][-1]["content"]
        (n,) = cited_numbers(answer)
        assert re.sub(r" \[\d+\]", "", answer) in passages[n - 1].text
    assert len(llm_server.chat_requests()) == len(DOCUMENTS)
    assert re.search(r"generated questions\s+3 example", output)


def test_without_an_llm_generated_questions_are_left_out_and_said_so(handbook, tmp_path):
    row = {"question": "Who approves travel?", "reference_answer": "The team lead approves it."}
    dataset = write_eval_set(tmp_path / "eval.jsonl", [row])
    output, _ = build("--kb", "handbook", "--dataset", str(dataset), out=tmp_path / "t.jsonl")
    assert "generated questions  left out: no LLM configured (RAG_LLM_BASE_URL)" in output


def test_limit_caps_each_source(handbook, tmp_path):
    question = {"question": "Who approves travel?",
                "reference_answer": "The team lead approves travel before booking."}  # fmt: skip
    dataset = write_eval_set(tmp_path / "eval.jsonl", [question] * 4)
    _, rows = build("--kb", "handbook", "--dataset", str(dataset), "--limit", "2",
                    out=tmp_path / "t.jsonl")  # fmt: skip
    assert len(rows) == 2


def test_an_unknown_knowledge_base_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="No knowledge base named 'nope'"):
        build("--kb", "nope", out=tmp_path / "t.jsonl")


def test_a_malformed_evaluation_set_names_its_line(handbook, tmp_path):
    dataset = tmp_path / "eval.jsonl"
    dataset.write_text('{"question": "Who approves travel?"}\n{"id": 2}\n')
    with pytest.raises(CommandError, match="line 2 has no question"):
        build("--kb", "handbook", "--dataset", str(dataset), out=tmp_path / "t.jsonl")


def test_examples_from_the_solana_question_set_cite_the_right_pages(tmp_path):
    """Real questions with reference answers over a real 27-page PDF."""
    folder = SHARED_DATA / "qa" / "blockchain_solana"
    knowledge_base = make_knowledge_base("solana")
    document = add_file(knowledge_base, folder / "source_files" / "BlockchainSolana.pdf")
    ingestion.ingest_document(document.pk)
    source = json.loads((folder / "rag_dataset.json").read_text())["examples"][:8]
    rows = [
        {"id": str(i), "question": e["query"], "reference_answer": e["reference_answer"],
         "reference_contexts": e["reference_contexts"]}
        for i, e in enumerate(source)
    ]  # fmt: skip
    dataset = write_eval_set(tmp_path / "eval.jsonl", rows)

    _, examples = build("--kb", "solana", "--dataset", str(dataset), out=tmp_path / "t.jsonl")

    answered = [e for e in examples if e["source"] == "evaluation"]
    assert len(answered) >= 6
    for example in answered:
        question = example["messages"][-2]["content"].split("Question: ")[1].split("\n")[0]
        reference = next(r for r in rows if r["question"].startswith(question[:60]))
        context_words = set(reference["reference_contexts"][0].lower().split())
        passages = search.search_passages([knowledge_base], question, TOP_K)
        numbers = set(cited_numbers(example["messages"][-1]["content"]))
        assert numbers and numbers <= set(range(1, len(passages) + 1))
        # The cited passages overlap the context the reference answer was written from.
        best = max(len(set(passages[n - 1].text.lower().split()) & context_words) for n in numbers)
        assert best >= 20
    # One "not found" example per five answered ones (the default share), with the exact reply.
    not_found = [e for e in examples if e["source"] == "not-found"]
    assert len(not_found) == round(0.2 * len(answered))
    for example in not_found:
        assert example["messages"][-1]["content"] == NOT_FOUND_ANSWER
