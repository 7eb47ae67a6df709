"""A single huge document is refused with a message that says what to do, before chunking and
embedding would hold the worker for minutes."""

from __future__ import annotations

import time

import pytest

from knowledge import ingestion
from knowledge.models import Chunk, Document
from tests.factories import add_text, make_knowledge_base

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def weightless(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:64"


def test_a_one_line_html_page_over_the_character_limit_fails_quickly_with_a_reason(settings):
    sentence = "Employees book economy class for flights shorter than six hours. "
    page = "<html><body><p>" + sentence * (settings.RAG_MAX_DOCUMENT_CHARS // len(sentence) + 1000)
    page += "</p></body></html>"  # one line, over 5 million characters of text
    document = add_text(make_knowledge_base(), "huge.html", page)
    started = time.monotonic()
    result = ingestion.ingest_document(document.pk)
    elapsed = time.monotonic() - started
    assert result.state == Document.State.FAILED
    assert "characters of text, more than the 5,000,000 one document may have" in result.error
    assert "split it into smaller files" in result.error
    assert not Chunk.objects.exists()
    assert elapsed < 60, f"took {elapsed:.0f} s"


def test_a_document_over_the_chunk_limit_fails_with_a_reason(settings):
    settings.RAG_MAX_DOCUMENT_CHUNKS = 5
    text = "".join(f"## Rule {n}\n\n" + "Travel rule text. " * 60 + "\n\n" for n in range(20))
    document = ingestion.ingest_document(add_text(make_knowledge_base(), "rules.md", text).pk)
    assert document.state == Document.State.FAILED
    assert "passages, more than the 5 one document may have" in document.error
    assert not Chunk.objects.exists()


def test_a_document_within_the_limits_is_indexed(settings):
    settings.RAG_MAX_DOCUMENT_CHUNKS = 50
    text = "".join(f"## Rule {n}\n\n" + "Travel rule text. " * 60 + "\n\n" for n in range(20))
    document = ingestion.ingest_document(add_text(make_knowledge_base(), "rules.md", text).pk)
    assert document.state == Document.State.INDEXED and 5 < document.chunk_count <= 50
