"""The evaluate command end to end on a small knowledge base of real handbook pages, and the
import of labelled datasets (BEIR, llama-datasets) as knowledge base plus evaluation dataset."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from generation.prompts import NOT_FOUND_ANSWER
from knowledge import indexing, ingestion
from knowledge.models import Document
from tests.conftest import SHARED_DATA
from tests.factories import add_file, make_knowledge_base
from tests.openai_server import DEFAULT_MODEL, Reply

pytestmark = pytest.mark.django_db

HANDBOOK = SHARED_DATA / "handbook" / "pagerduty-incident-response" / "docs"
ETIQUETTE = HANDBOOK / "before" / "call_etiquette.md"
SEVERITY = HANDBOOK / "before" / "severity_levels.md"
EXTERNAL = HANDBOOK / "during" / "external_communication_guidelines.md"


@pytest.fixture(autouse=True)
def fast_models(extractive_mode):
    """Every test here answers extractively with the hashing embedder."""


@pytest.fixture
def incidents():
    knowledge_base = make_knowledge_base("incidents")
    documents = {}
    for path in (ETIQUETTE, SEVERITY, EXTERNAL):
        document = ingestion.ingest_document(add_file(knowledge_base, path).pk)
        assert document.state == Document.State.INDEXED
        documents[path.stem] = document
    return knowledge_base, documents


@pytest.fixture
def dataset(tmp_path, incidents):
    _, documents = incidents
    rows = [
        {
            "id": "mute",
            "question": "Should I keep my microphone muted on an incident call?",
            "reference_answer": "Keep your microphone muted until you have something to say.",
            "relevant_doc_ids": [documents["call_etiquette"].pk],
        },
        {
            "id": "unsure",
            "question": "Which severity do I pick when I am unsure which level an incident is?",
            "reference_contexts": [
                "If you are unsure which level an incident is (e.g. not sure if SEV-2 or "
                "SEV-1), **treat it as the higher one**."
            ],
        },
        {"id": "plain", "question": "When should an incident be communicated publicly?"},
        {"id": "absent", "question": "What is the capital of Mongolia?"},
    ]
    path = tmp_path / "dataset.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def evaluate(dataset, out, *extra: str) -> dict:
    call_command(
        "evaluate", "--kb", "incidents", "--dataset", str(dataset), "--out", str(out), *extra
    )
    return json.loads((out / "report.json").read_text())


def test_evaluate_writes_per_question_rows_and_aggregates(dataset, tmp_path):
    report = evaluate(dataset, tmp_path / "report", "--judge", "embedded")
    rows = {row["id"]: row for row in report["questions"]}
    assert list(rows) == ["mute", "unsure", "plain", "absent"]
    assert all("error" not in row and row["mode"] == "extractive" for row in rows.values())
    assert rows["mute"]["retrieval"]["judged_by"] == "relevant_doc_ids"
    assert rows["mute"]["retrieval"]["recall@6"] == 1.0
    assert rows["unsure"]["retrieval"]["judged_by"] == "reference_contexts"
    assert "reference-0" in rows["unsure"]["retrieval"]["ranking"]
    assert rows["plain"]["retrieval"] is None and rows["plain"]["correctness"] is None
    assert 0 < rows["mute"]["correctness"]["token_f1"] <= 1
    aggregates = report["aggregates"]
    assert aggregates["retrieval"]["ndcg@10"]["n"] == 2
    assert aggregates["correctness"]["rouge_l"]["n"] == 1
    assert aggregates["latency_ms"]["total_ms"]["p50"] > 0
    assert report["judges"]["faithfulness"] == "embedded"
    # The "not found" answer is counted as such, not scored as a faithful or uncited claim.
    assert rows["absent"]["answer"] == NOT_FOUND_ANSWER
    assert rows["absent"]["faithfulness"]["score"] is None
    assert rows["absent"]["citations"]["recall"] is None
    assert aggregates["not_found"] == 1
    assert aggregates["faithfulness"]["score"]["n"] == 3
    html = (tmp_path / "report" / "report.html").read_text()
    assert "(no claims, so no faithfulness or citation score): 1." in html


def test_evaluate_prints_a_summary_with_the_not_found_count(dataset, tmp_path, capsys):
    out = StringIO()
    call_command(
        "evaluate",
        "--kb",
        "incidents",
        "--dataset",
        str(dataset),
        "--out",
        str(tmp_path / "report"),
        "--judge",
        "embedded",
        stdout=out,
    )
    text = out.getvalue()
    assert '4 question(s), 0 failed, 1 answered "not found"; judge: embedded' in text
    assert "faithfulness score" in text and "(n=3)" in text
    # A progress bar with counts and the time left, even when stderr is not a terminal.
    bar = capsys.readouterr().err
    assert "Answering and judging: 100%" in bar and "4/4 [" in bar and "question/s]" in bar


def test_extractive_answers_are_judged_faithful_and_cited(dataset, tmp_path):
    # The extractive generator copies sentences of the passages it cites: nothing is invented.
    report = evaluate(dataset, tmp_path / "report", "--judge", "embedded")
    assert report["aggregates"]["faithfulness"]["score"]["mean"] == 1.0
    assert report["aggregates"]["citations"]["recall"]["mean"] == 1.0


def test_the_html_report_holds_aggregates_plots_and_the_worst_questions(dataset, tmp_path):
    evaluate(dataset, tmp_path / "report", "--judge", "embedded", "--limit", "2")
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("<svg") == 2
    assert 'id="aggregates"' in html and "ndcg@10" in html
    for title in ("Retrieval nDCG@10 (n=2", "Faithfulness (n=2", "Citation recall (n=2"):
        assert title in html  # a histogram of each score
    assert 'id="question-mute"' in html and 'id="question-plain"' not in html
    assert "closest context sentence" in html  # the judge's reasons


def test_auto_uses_the_llm_judge_when_a_server_is_configured(dataset, tmp_path, settings):
    from tests.openai_server import OpenAIServer

    def reply(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        if prompt.startswith("Break the answer"):
            return '{"claims": ["Keep the microphone muted until you speak."]}'
        if prompt.startswith("Decide for each"):
            return '{"verdicts": [{"statement": 1, "verdict": "no", "reason": "invented"}]}'
        return "Keep your microphone muted until you have something to say [1]."

    with OpenAIServer(default_reply=Reply(text=reply)) as server:
        settings.RAG_LLM_BASE_URL = server.url
        report = evaluate(dataset, tmp_path / "report", "--limit", "1")
    row = report["questions"][0]
    assert row["mode"] == "llm"
    assert report["judges"]["faithfulness"] == f"llm ({DEFAULT_MODEL})"
    assert row["faithfulness"]["score"] == 0.0
    assert row["faithfulness"]["claims"][0]["reason"] == "invented"


def test_a_bad_dataset_line_is_named(tmp_path, incidents):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "1", "question": "ok?"}\n{"id": "2"}\n')
    with pytest.raises(CommandError, match=r"bad.jsonl:2: not a dataset row \(no question\)"):
        evaluate(path, tmp_path / "report")


def test_an_unknown_knowledge_base_is_a_clear_error(dataset, tmp_path):
    with pytest.raises(CommandError, match="No knowledge base named 'nowhere'"):
        call_command("evaluate", "--kb", "nowhere", "--dataset", str(dataset), "--out", "x")


def test_import_of_a_beir_subset_maps_relevant_documents_to_ours(tmp_path, capsys):
    out = tmp_path / "scifact.jsonl"
    call_command(
        "import_eval_dataset", str(SHARED_DATA / "scifact"), "--kb", "scifact", "--out", str(out),
        "--limit-queries", "2", "--limit-docs", "5",
    )  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == ["1", "3"]  # the first judged test queries
    assert Document.objects.filter(knowledge_base__name="scifact").count() == 5
    relevant = Document.objects.get(pk=rows[0]["relevant_doc_ids"][0])
    assert relevant.original_name == "31715818.txt"  # qrels/test.tsv: query 1 -> 31715818
    assert relevant.title.startswith("New opportunities: the use of nanotech")  # not its id
    assert relevant.state == Document.State.INDEXED
    assert indexing.check_index(relevant.knowledge_base).problems == []
    progress = capsys.readouterr().err
    assert "Ingesting the corpus: 100%" in progress and "5/5 [" in progress
    assert "Building the search indexes of 5 document(s)" in progress


@pytest.mark.slow
def test_evaluate_runs_on_the_imported_llama_dataset(tmp_path):
    dataset = tmp_path / "solana.jsonl"
    source = SHARED_DATA / "qa" / "blockchain_solana"
    call_command("import_eval_dataset", str(source), "--kb", "incidents", "--out", str(dataset))
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    assert len(rows) == 58 and rows[0]["reference_contexts"]
    report = evaluate(dataset, tmp_path / "report", "--judge", "embedded", "--limit", "3")
    assert report["aggregates"]["retrieval"]["mrr@10"]["n"] == 3
    assert report["aggregates"]["correctness"]["token_f1"]["mean"] > 0


def test_chinese_questions_are_answered_and_scored_for_the_reference_and_their_own_context(
    tmp_path,
):
    dataset = tmp_path / "cmrc.jsonl"
    call_command(
        "import_eval_dataset", str(SHARED_DATA / "cmrc2018"), "--kb", "cmrc", "--out",
        str(dataset), "--limit-queries", "6", "--limit-docs", "12",
    )  # fmt: skip
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    assert rows[0]["question"] == "《战国无双3》是由哪两个公司合作开发的？"
    assert rows[0]["reference_answers"] == ["光荣和ω-force"]  # the annotators' answers, once each
    assert rows[1]["reference_answers"] == ["村雨城", "任天堂游戏谜之村雨城"]
    out = tmp_path / "report"
    call_command(
        "evaluate", "--kb", "cmrc", "--dataset", str(dataset), "--out", str(out), "--judge",
        "embedded",
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    correctness = report["aggregates"]["correctness"]
    assert correctness["reference_stated"]["n"] == correctness["own_context_cited"]["n"] == 6
    assert correctness["own_context_cited"]["mean"] >= 0.5
    first = report["questions"][0]
    assert "光荣和ω-force" in first["answer"] and first["correctness"]["reference_stated"] == 1.0
    assert first["answer"].rstrip().endswith("。")  # a Chinese answer, cited the Chinese way
