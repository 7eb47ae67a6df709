"""manage.py ask, as a user runs it: after `ingest`, in extractive mode and in LLM mode against
the OpenAI-protocol test server."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from knowledge import components
from tests.conftest import PDFS
from tests.openai_server import DEFAULT_MODEL, Reply

pytestmark = pytest.mark.django_db

QUESTION = "Who signed the DMCA into law?"
TITLE = "The Digital Millennium Copyright Act of 1998"


@pytest.fixture(autouse=True)
def copyright_kb(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:256"  # a real, weightless embedder: fast tests
    settings.RAG_LLM_BASE_URL = ""
    settings.RAG_LLM_MODEL = DEFAULT_MODEL
    components.reset_llm_clients()
    call_command("ingest", str(PDFS / "dmca.pdf"), kb="copyright", stdout=StringIO())
    yield
    components.reset_llm_clients()


def ask(*args: str, **options) -> str:
    out = StringIO()
    call_command("ask", *args, stdout=out, **options)
    return out.getvalue()


def test_prints_the_answer_then_numbered_citations_with_page():
    output = ask(QUESTION, kb=["copyright"])
    answer, _, sources = output.partition("\n\nSources:\n")
    assert "President Clinton" in answer
    assert f"[1] {TITLE}, page 1" in sources
    assert "(extractive answer," in sources


def test_json_prints_the_rest_ask_object():
    result = json.loads(ask(QUESTION, kb=["copyright"], as_json=True))
    assert result["mode"] == "extractive"
    assert "President Clinton" in result["answer"]
    citation = result["citations"][0]
    assert set(citation) == {"n", "document_id", "document_title", "page", "chunk_id", "text"}
    assert (citation["document_title"], citation["page"]) == (TITLE, 1)
    assert isinstance(result["conversation"], int)


def test_a_question_outside_the_documents_is_not_found():
    output = ask("What is the capital of Mongolia?", kb=["copyright"])
    assert output.startswith("The answer was not found in the documents.")
    assert "Sources:" not in output


def test_llm_mode_against_the_protocol_server(settings, llm_server):
    settings.RAG_LLM_BASE_URL = llm_server.url
    llm_server.script(Reply(text="President Clinton signed the DMCA on October 28, 1998 [1]."))
    result = json.loads(ask(QUESTION, kb=["copyright"], as_json=True))
    assert result["mode"] == "llm"
    assert result["answer"] == "President Clinton signed the DMCA on October 28, 1998 [1]."
    assert result["citations"][0]["document_title"] == TITLE
    assert result["citations"][0]["chunk_id"] == result["passages"][0]["chunk_id"]
    assert llm_server.chat_requests()[-1]["model"] == DEFAULT_MODEL


def test_llm_mode_plain_output_names_the_mode(settings, llm_server):
    settings.RAG_LLM_BASE_URL = llm_server.url
    llm_server.script(Reply(text="Signed by President Clinton [1]."))
    output = ask(QUESTION, kb=["copyright"])
    assert output.startswith("Signed by President Clinton [1].\n\nSources:\n[1] ")
    assert "(llm answer," in output


def test_unknown_knowledge_base_is_a_command_error():
    with pytest.raises(CommandError, match="No knowledge base named 'nowhere'. Known: copyright"):
        ask(QUESTION, kb=["nowhere"])


def test_blank_question_is_a_command_error():
    with pytest.raises(CommandError, match="Ask a question"):
        ask("  ", kb=["copyright"])
