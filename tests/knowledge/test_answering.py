"""Question answering through the service layer: extractive answers on a real PDF, LLM answers from
the OpenAI-protocol test server, the fallback when it fails, conversations and feedback."""

from __future__ import annotations

import pytest

from knowledge import access, answering, conversations, ingestion
from knowledge.errors import KnowledgeBaseNotFoundError
from knowledge.models import Conversation, Feedback, KnowledgeBase, Message
from rag_site.settings import default_embedding_model
from tests.conftest import PDFS
from tests.factories import add_file, add_text, make_knowledge_base, make_user
from tests.openai_server import DEFAULT_MODEL, Reply, free_port

pytestmark = pytest.mark.django_db

# dmca.pdf: the US Copyright Office's 18-page summary of the DMCA. Page 1 says who signed it,
# page 15 when the Copyright Office must report on distance education.
DMCA = PDFS / "dmca.pdf"
NOT_FOUND = "The answer was not found in the documents."


@pytest.fixture(autouse=True)
def extractive_defaults(extractive_mode):
    """Every test here answers extractively with the hashing embedder."""


@pytest.fixture
def dmca():
    knowledge_base = make_knowledge_base("copyright")
    document = ingestion.ingest_document(add_file(knowledge_base, DMCA).pk)
    assert document.state == document.State.INDEXED
    return knowledge_base


@pytest.fixture
def llm(settings, llm_server):
    settings.RAG_LLM_BASE_URL = llm_server.url
    settings.RAG_LLM_MAX_RETRIES = 0
    settings.RAG_LLM_TIMEOUT = 2.0
    return llm_server


def test_extractive_answer_cites_the_page_that_holds_it(dmca):
    result = answering.answer_question("Who signed the DMCA into law?", [dmca])
    assert result.mode == "extractive"
    assert "President Clinton" in result.text
    first = result.citations[0]
    assert first.page == 1
    assert first.document_title == "The Digital Millennium Copyright Act of 1998"
    assert "President Clinton" in first.text
    assert f"[{first.n}]" in result.text


def test_extractive_answer_on_a_later_page(dmca):
    question = "When must the Copyright Office report to Congress on distance education?"
    result = answering.answer_question(question, [dmca])
    assert "distance education" in result.text
    assert result.citations[0].page == 15
    assert result.uncited_sentences == ()


def test_a_question_the_documents_do_not_answer_gets_not_found(dmca):
    result = answering.answer_question("What is the capital of Mongolia?", [dmca])
    assert result.text == NOT_FOUND
    assert result.citations == ()
    assert result.passages  # retrieval did return passages; none of them answers


def test_an_empty_knowledge_base_gets_not_found():
    result = answering.answer_question("Anything at all?", [make_knowledge_base()])
    assert result.text == NOT_FOUND
    assert result.passages == ()
    assert result.mode == "extractive"


def test_events_come_as_sources_then_deltas_then_done(dmca):
    events = list(answering.stream_answer("Who signed the DMCA into law?", [dmca]))
    kinds = [event.kind for event in events]
    assert kinds[0] == "sources"
    assert kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"delta"}
    passages = events[0].passages
    assert [p.n for p in passages] == list(range(1, len(passages) + 1))
    streamed = "".join(event.text for event in events[1:-1])
    assert streamed == events[-1].answer.text
    timings = events[-1].answer.timings
    assert timings.total_ms >= timings.retrieval_ms >= 0


def test_question_and_answer_are_stored_with_citations(dmca):
    user = make_user("ada")
    result = answering.answer_question("Who signed the DMCA into law?", [dmca], user=user)
    conversation = Conversation.objects.get(pk=result.conversation)
    assert conversation.user == user
    assert list(conversation.knowledge_bases.all()) == [dmca]
    question, answer = conversation.messages.all()
    assert (question.role, question.text) == ("user", "Who signed the DMCA into law?")
    assert answer.pk == result.message
    assert answer.citations == [c.as_dict() for c in result.citations]
    assert answer.mode == "extractive"
    assert answer.timings["total_ms"] == result.timings.total_ms


def test_a_follow_up_is_condensed_with_the_previous_question(dmca):
    first = answering.answer_question("Who signed the DMCA into law?", [dmca])
    conversation = Conversation.objects.get(pk=first.conversation)
    follow_up = answering.answer_question("And when?", [dmca], conversation=conversation)
    assert follow_up.standalone_question == "Who signed the DMCA into law? And when?"
    assert "October 28, 1998" in follow_up.text
    assert conversation.messages.count() == 4


def test_another_users_conversation_cannot_be_continued(dmca):
    owner, intruder = make_user("owner"), make_user("intruder")
    first = answering.answer_question("Who signed the DMCA into law?", [dmca], user=owner)
    conversation = Conversation.objects.get(pk=first.conversation)
    with pytest.raises(conversations.ConversationNotFoundError):
        answering.answer_question("And when?", [dmca], user=intruder, conversation=conversation)


def test_blank_question_is_refused():
    with pytest.raises(answering.EmptyQuestionError):
        answering.answer_question("   ", [make_knowledge_base()])


def test_llm_answer_is_streamed_checked_and_stored(dmca, llm):
    llm.script(Reply(text="President Clinton signed it [1]. It was in 1998 [1, 9]."))
    events = list(answering.stream_answer("Who signed the DMCA into law?", [dmca]))
    done = events[-1].answer
    assert done.mode == "llm"
    assert done.notice is None
    assert done.text == "President Clinton signed it [1]. It was in 1998 [1]."
    assert done.invalid_citations == (9,)
    assert [c.n for c in done.citations] == [1]
    assert done.citations[0].chunk_id == done.passages[0].chunk_id
    assert len([e for e in events if e.kind == "delta"]) > 3
    assert Message.objects.get(pk=done.message).mode == "llm"


def test_llm_receives_numbered_sources_and_the_question(dmca, llm):
    answering.answer_question("Who signed the DMCA into law?", [dmca])
    request = llm.chat_requests()[-1]
    assert request["model"] == DEFAULT_MODEL
    assert request["stream"] is True
    prompt = request["messages"][-1]["content"]
    assert '<source id="1">\n[1] The Digital Millennium Copyright Act of 1998, page ' in prompt
    assert "Question: Who signed the DMCA into law?" in prompt


def test_a_knowledge_bases_lora_adapter_is_the_model(dmca, llm):
    llm.models.append("copyright-lora")
    KnowledgeBase.objects.filter(pk=dmca.pk).update(lora_adapter="copyright-lora")
    dmca.refresh_from_db()
    result = answering.answer_question("Who signed the DMCA into law?", [dmca])
    assert result.mode == "llm"
    assert llm.chat_requests()[-1]["model"] == "copyright-lora"


def test_llm_condenses_a_follow_up_before_retrieval(dmca, llm):
    first = answering.answer_question("Who signed the DMCA into law?", [dmca])
    conversation = Conversation.objects.get(pk=first.conversation)
    llm.script(
        Reply(text="When did President Clinton sign the DMCA?"),
        Reply(text="On October 28, 1998 [1]."),
    )
    result = answering.answer_question("When was that?", [dmca], conversation=conversation)
    condense, answer = llm.chat_requests()[-2:]
    assert condense["stream"] is False
    assert "Last question: When was that?" in condense["messages"][-1]["content"]
    assert result.standalone_question == "When did President Clinton sign the DMCA?"
    prompt = answer["messages"][-1]["content"]
    assert "Question: When did President Clinton sign the DMCA?" in prompt


def test_server_error_falls_back_to_a_labelled_extractive_answer(dmca, llm):
    llm.script(Reply(status=500, error_message="CUDA out of memory"))
    result = answering.answer_question("Who signed the DMCA into law?", [dmca])
    assert result.mode == "extractive"
    assert "President Clinton" in result.text
    assert "language model is unavailable" in result.notice
    assert result.citations[0].page == 1


def test_stream_broken_mid_answer_is_replaced_by_the_extractive_answer(dmca, llm, settings):
    settings.RAG_LLM_TIMEOUT = 0.5
    llm.script(Reply(text="President Clinton signed the act into law [1].", stall_after=3))
    events = list(answering.stream_answer("Who signed the DMCA into law?", [dmca]))
    done = events[-1].answer
    assert done.mode == "extractive"
    assert "stopped mid-answer" in done.notice
    assert "President Clinton" in done.text


def test_dead_llm_server_opens_the_circuit_and_answers_extractively(dmca, settings):
    settings.RAG_LLM_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    settings.RAG_LLM_CIRCUIT_FAILURES = 1
    settings.RAG_LLM_MAX_RETRIES = 0
    first = answering.answer_question("Who signed the DMCA into law?", [dmca])
    assert "cannot be reached" in first.notice
    second = answering.answer_question("Who signed the DMCA into law?", [dmca])
    assert second.mode == "extractive"
    assert "not trying it again" in second.notice
    assert "President Clinton" in second.text


def test_feedback_is_recorded_once_per_user(dmca):
    user = make_user("ada")
    result = answering.answer_question("Who signed the DMCA into law?", [dmca], user=user)
    message = Message.objects.get(pk=result.message)
    conversations.record_feedback(message, user, -1, "too short")
    conversations.record_feedback(message, user, 1)
    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.comment, feedback.user) == (1, "", user)


def test_feedback_on_a_question_or_with_a_bad_rating_is_refused(dmca):
    user = make_user("ada")
    result = answering.answer_question("Who signed the DMCA into law?", [dmca], user=user)
    answer = Message.objects.get(pk=result.message)
    question = answer.conversation.messages.get(role="user")
    with pytest.raises(ValueError, match="Only answers"):
        conversations.record_feedback(question, user, 1)
    with pytest.raises(ValueError, match=r"\+1"):
        conversations.record_feedback(answer, user, 5)


def test_readable_knowledge_bases_hides_foreign_ones_like_missing_ones():
    member, outsider = make_user("member"), make_user("outsider")
    mine = make_knowledge_base("mine", members=[member])
    theirs = make_knowledge_base("theirs", members=[outsider])
    assert access.readable_knowledge_bases(member) == [mine]
    assert access.readable_knowledge_bases(member, [mine.pk]) == [mine]
    with pytest.raises(KnowledgeBaseNotFoundError) as foreign:
        access.readable_knowledge_bases(member, [mine.pk, theirs.pk])
    with pytest.raises(KnowledgeBaseNotFoundError) as missing:
        access.readable_knowledge_bases(member, [mine.pk, 999_999])
    assert str(foreign.value).replace(str(theirs.pk), "N") == str(missing.value).replace(
        "999999", "N"
    )


def test_answers_use_only_the_given_knowledge_bases():
    secret = make_knowledge_base("secret")
    ingestion.ingest_document(add_text(secret, "pay.md", "The CEO salary is 9 million euros.").pk)
    public = make_knowledge_base("public")
    ingestion.ingest_document(add_text(public, "pto.md", "Employees get 25 vacation days.").pk)
    result = answering.answer_question("What is the CEO salary?", [public])
    assert "9 million" not in result.text
    assert all(p.document_title == "pto" for p in result.passages)


@pytest.mark.slow
def test_extractive_answer_with_the_real_embedding_model(settings):
    settings.RAG_EMBEDDING_MODEL = default_embedding_model()
    settings.RAG_INGEST_LEASE_SECONDS = 3600  # no lease renewals while the model embeds
    # A primary key no other test uses: loaded indexes are cached per process by knowledge
    # base and version, and SQLite hands out the same ids again after each test's rollback.
    knowledge_base = KnowledgeBase.objects.create(pk=9_000_001, name="papers")
    ingestion.ingest_document(add_file(knowledge_base, PDFS / "naacl06-shinyama.pdf").pk)
    question = "Which technique discovers all possible relations from texts as tables?"
    result = answering.answer_question(question, [knowledge_base])
    assert "Unrestricted Relation Discovery" in result.text
    assert result.citations[0].page == 1
    missing = answering.answer_question(
        "How many vacation days do employees get?", [knowledge_base]
    )
    assert missing.text == NOT_FOUND


def test_system_checks_catch_a_bad_llm_url_and_threshold(settings):
    from knowledge.checks import check_answer_settings

    settings.RAG_LLM_BASE_URL = "vllm:8000"
    settings.RAG_EXTRACTIVE_THRESHOLD = 3
    assert {problem.id for problem in check_answer_settings()} == {"rag.E003", "rag.E005"}
    settings.RAG_LLM_BASE_URL = "http://vllm:8000/v1"
    settings.RAG_EXTRACTIVE_THRESHOLD = 0.35
    assert check_answer_settings() == []


def _leave_after_first_delta(stream) -> None:
    """What the server does when the reader closes the tab: the stream is closed mid-answer."""
    for event in stream:
        if event.kind == "delta":
            break
    stream.close()


def test_an_extractive_answer_is_stored_when_the_client_leaves_mid_stream(dmca):
    _leave_after_first_delta(answering.stream_answer("Who signed the DMCA into law?", [dmca]))
    answer = Message.objects.get(role=Message.Role.ASSISTANT)
    assert "President Clinton" in answer.text
    assert answer.citations and answer.mode == "extractive"


def test_a_model_answer_is_finished_and_stored_when_the_client_leaves_mid_stream(dmca, llm):
    llm.script(Reply(text="President Clinton signed the act into law on October 28, 1998 [1]."))
    _leave_after_first_delta(answering.stream_answer("Who signed the DMCA into law?", [dmca]))
    answer = Message.objects.get(role=Message.Role.ASSISTANT)
    assert answer.text == "President Clinton signed the act into law on October 28, 1998 [1]."
    assert answer.mode == "llm" and answer.citations[0]["page"] == 1


def test_sources_are_numbered_in_the_order_the_answer_first_cites_them(dmca, llm):
    llm.script(Reply(text="It was signed in 1998 [4]. President Clinton signed it [2]. [4]"))
    result = answering.answer_question("Who signed the DMCA into law, and when?", [dmca])
    assert result.text.startswith("It was signed in 1998 [1]. President Clinton signed it [2].")
    assert [c.n for c in result.citations] == [1, 2]
    assert [p.n for p in result.passages] == list(range(1, len(result.passages) + 1))
    assert result.citations[0].chunk_id == result.passages[0].chunk_id


def test_a_chinese_question_is_answered_in_chinese(settings):
    knowledge_base = make_knowledge_base("手冊")
    text = (
        "# 員工手冊\n\n員工入職滿一年後，每年享有十五天帶薪年假。年假須提前兩週透過人事系統申請。\n"
    )
    ingestion.ingest_document(add_text(knowledge_base, "handbook.md", text).pk)
    found = answering.answer_question("员工每年有几天带薪年假？", [knowledge_base])
    assert found.text == "員工入職滿一年後，每年享有十五天帶薪年假[1]。"
    missing = answering.answer_question("公司食堂几点开门？", [knowledge_base])
    assert missing.text == "文档中没有找到答案。" and missing.citations == ()


def test_the_model_is_asked_to_answer_in_the_script_of_a_chinese_question(dmca, llm):
    llm.script(Reply(text="克林顿总统签署了该法案[1]。"))
    result = answering.answer_question("谁签署了《数字千年版权法》？", [dmca])
    system, *_, user = llm.chat_requests()[-1]["messages"]
    assert "Simplified Chinese" in user["content"]
    assert "文档中没有找到答案。" in system["content"]
    assert result.mode == "llm" and result.text == "克林顿总统签署了该法案[1]。"
