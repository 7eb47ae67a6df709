"""A document being indexed again stays searchable throughout: its old chunks answer until the
index version holding its new ones is published."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from knowledge import documents, indexing, ingestion, search
from tests.factories import add_text, make_knowledge_base

pytestmark = pytest.mark.django_db(transaction=True)

SECTION = "## Section {n}\n\nTopic {n} covers the travel rules for trip number {n} in detail.\n\n"
NEEDLE = "# Heron\n\nThe greenhouse door code for project heron is ZANZIBAR-4410.\n\n"


def test_a_document_indexed_again_never_vanishes_from_search(settings, eager_celery):
    settings.RAG_EMBEDDING_MODEL = "hashing:256"
    knowledge_base = make_knowledge_base()
    # Many chunks, so that writing the index takes long enough for searches to run meanwhile.
    text = NEEDLE + "".join(SECTION.format(n=n) for n in range(400))
    document = ingestion.ingest_document(add_text(knowledge_base, "heron.md", text).pk)
    assert search.search_passages([knowledge_base], "greenhouse door code heron")
    done = threading.Event()

    def reindex() -> None:
        try:
            for _ in range(6):
                documents.queue_reindex(document)  # eager: ingested here, then published
        finally:
            done.set()
            connection.close()

    thread = threading.Thread(target=reindex)
    thread.start()
    searches = empty = 0
    while not done.is_set():
        searches += 1
        if not search.search_passages([knowledge_base], "greenhouse door code heron"):
            empty += 1
    thread.join()
    assert searches > 20
    assert empty == 0, f"{empty} of {searches} searches found nothing"
    assert indexing.check_index(knowledge_base).problems == []
