"""Deleting a document while a worker embeds it stops the work within seconds, instead of the
worker embedding a document nobody wants while later uploads wait."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from knowledge import documents, indexing, ingestion
from knowledge.models import Chunk, Document
from tests.factories import add_text, make_knowledge_base

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PARAGRAPH = (
    "## Rule {n}\n\nTravel rule {n} says that trips of type {n} are booked through the "
    "portal at least {n} days ahead, with receipts kept for audits of year {n}.\n\n"
)


def test_deleting_a_document_mid_embedding_stops_its_ingestion_within_seconds(settings):
    settings.RAG_EMBEDDING_BACKEND = "torch"  # the real model: embedding takes a while
    settings.RAG_CHUNK_TOKENS = 48
    settings.RAG_CHUNK_OVERLAP = 8
    knowledge_base = make_knowledge_base()
    document = add_text(
        knowledge_base, "rules.md", "".join(PARAGRAPH.format(n=n) for n in range(4000))
    )
    outcome: list = []

    def ingest() -> None:
        try:
            outcome.append(ingestion.ingest_document(document.pk))
        finally:
            outcome.append(time.monotonic())
            connection.close()

    thread = threading.Thread(target=ingest)
    thread.start()
    deadline = time.monotonic() + 300
    while Document.objects.get(pk=document.pk).progress < 45:  # embedding under way
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.2)
    documents.delete_document(Document.objects.get(pk=document.pk))
    deleted_at = time.monotonic()
    thread.join(timeout=120)
    result, stopped_at = outcome
    assert result is None
    assert stopped_at - deleted_at < 10, f"stopped {stopped_at - deleted_at:.1f} s after delete"
    assert not Chunk.objects.exists()
    assert indexing.check_index(knowledge_base).problems == []
