"""New documents that workers finish within RAG_PUBLISH_DELAY seconds of each other are published
as one index version: a bulk upload publishes a few times, not once per document. Each waits,
processing, for the publish that makes it searchable, and only then reads as indexed; a document
indexed again is published in its own transaction, so it never drops out of search."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from knowledge import dispatch, indexing, ingestion, search
from knowledge.models import AWAITING_PUBLISH_PROGRESS, Document, IndexChange, KnowledgeBase
from tests.factories import add_text, make_knowledge_base
from tests.workers import Worker

Publish = ingestion.Publish

TOPICS = [
    "aurora",
    "basalt",
    "cedar",
    "dolphin",
    "ember",
    "fjord",
    "glacier",
    "harbor",
    "iris",
    "juniper",
    "kestrel",
    "lagoon",
]


@pytest.fixture(autouse=True)
def fast_settings(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:64"


def policy(topic: str) -> str:
    return f"# {topic.title()}\n\nThe {topic} office files meal receipts within 30 days.\n"


def found(knowledge_base: KnowledgeBase, topic: str, document: Document) -> bool:
    hits = search.search_passages([knowledge_base], f"{topic} office")
    return bool(hits) and hits[0].document_id == document.pk


@pytest.mark.django_db
def test_a_new_document_waits_processing_until_its_batched_publish(
    eager_celery, django_capture_on_commit_callbacks
):
    knowledge_base = make_knowledge_base()
    first = ingestion.ingest_document(add_text(knowledge_base, "a.md", policy("aurora")).pk)
    with django_capture_on_commit_callbacks() as queued:
        document = add_text(knowledge_base, "b.md", policy("basalt"))
        waiting = ingestion.ingest_document(document.pk, publish=Publish.BATCHED)

    assert waiting.state == Document.State.PROCESSING
    assert waiting.progress == AWAITING_PUBLISH_PROGRESS and waiting.lease_expires_at is None
    assert list(Document.objects.awaiting_publish()) == [waiting]
    assert not found(knowledge_base, "basalt", document)  # chunks stored, not yet published
    assert len(queued) == 1  # the batched publish, sent once the transaction commits
    queued[0]()  # run by the eager task at once (a worker waits RAG_PUBLISH_DELAY)

    document.refresh_from_db()
    assert document.state == Document.State.INDEXED and document.progress == 100
    assert document.indexed_at is not None
    assert found(knowledge_base, "basalt", document) and found(knowledge_base, "aurora", first)
    assert not IndexChange.objects.exists() and indexing.check_index(knowledge_base).problems == []


@pytest.mark.django_db
def test_a_document_indexed_again_in_a_batch_is_published_in_its_own_transaction():
    knowledge_base = make_knowledge_base()
    document = ingestion.ingest_document(add_text(knowledge_base, "c.md", policy("cedar")).pk)
    version = KnowledgeBase.objects.get().index_version
    Document.objects.filter(pk=document.pk).update(state=Document.State.QUEUED)

    again = ingestion.ingest_document(document.pk, publish=Publish.BATCHED)

    assert again.state == Document.State.INDEXED  # never left waiting: it was searchable
    assert KnowledgeBase.objects.get().index_version == version + 1
    assert found(knowledge_base, "cedar", document)


@pytest.mark.django_db
def test_a_second_document_joins_the_publish_already_queued(django_capture_on_commit_callbacks):
    knowledge_base = make_knowledge_base()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        for topic in ("dolphin", "ember"):
            document = add_text(knowledge_base, f"{topic}.md", policy(topic))
            ingestion.ingest_document(document.pk, publish=Publish.BATCHED)
    sent: list[tuple] = []
    task = dispatch.current_app.tasks[dispatch.SYNC_TASK]
    original = task.apply_async
    task.apply_async = lambda *args, **kwargs: sent.append((args, kwargs))
    try:
        for callback in queued:
            callback()  # the first queues the publish; the second finds it queued
    finally:
        task.apply_async = original
    assert sent == [(((knowledge_base.pk,),), {"countdown": 2.0})]
    assert KnowledgeBase.objects.get().publish_queued_at is not None
    assert Document.objects.awaiting_publish().count() == 2


@pytest.mark.django_db
def test_the_sweep_queues_a_publish_whose_message_was_lost(
    eager_celery, django_capture_on_commit_callbacks
):
    knowledge_base = make_knowledge_base()
    document = add_text(knowledge_base, "fjord.md", policy("fjord"))
    with django_capture_on_commit_callbacks(execute=False):  # its publish is never sent
        ingestion.ingest_document(document.pk, publish=Publish.BATCHED)
    assert indexing.publish_forgotten_changes() == []  # too recent to be taken for lost
    long_ago = timezone.now() - timedelta(seconds=dispatch.PUBLISH_QUEUE_LOST_SECONDS + 10)
    IndexChange.objects.update(created_at=long_ago)
    KnowledgeBase.objects.update(publish_queued_at=long_ago)  # queued, and lost with the broker

    with django_capture_on_commit_callbacks(execute=True):
        assert indexing.publish_forgotten_changes() == [knowledge_base.pk]

    document.refresh_from_db()
    assert document.state == Document.State.INDEXED and found(knowledge_base, "fjord", document)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_bulk_upload_through_a_worker_is_published_in_a_few_versions(start_worker):
    worker: Worker = start_worker(RAG_EMBEDDING_MODEL="hashing:64")
    knowledge_base = make_knowledge_base()
    uploaded = [add_text(knowledge_base, f"{topic}.md", policy(topic)) for topic in TOPICS]
    for document in uploaded:
        dispatch.enqueue_ingestion(document)

    deadline = time.monotonic() + 180
    indexed = Document.objects.filter(state=Document.State.INDEXED)
    while indexed.count() < len(uploaded) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert indexed.count() == len(uploaded), worker.log()

    knowledge_base.refresh_from_db()
    assert knowledge_base.index_version <= len(uploaded) // 2, worker.log()
    assert knowledge_base.publish_queued_at is None, worker.log()
    for topic, document in zip(TOPICS, uploaded, strict=True):
        assert found(knowledge_base, topic, document)  # indexed means searchable
    assert indexing.check_index(knowledge_base).problems == []
