"""Celery tasks: thin wrappers around ingestion and indexing that record status on the
document. knowledge.dispatch sends them by name."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from . import indexing, ingestion
from .errors import DocumentBusyError, LockTimeoutError

# An index publish whose knowledge base stays locked past RAG_LOCK_TIMEOUT is queued again to
# run this many seconds later, at most SYNC_RETRIES times (each try waits RAG_LOCK_TIMEOUT for
# the lock again: that wait, not this delay, spaces the tries).
SYNC_RETRY_SECONDS = 2
SYNC_RETRIES = 20


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    soft_time_limit=settings.RAG_INGEST_TIME_LIMIT,
    time_limit=settings.RAG_INGEST_TIME_LIMIT + 60,
)
def ingest_document(self, document_id: int) -> str:
    """Parse, chunk, embed and index one uploaded document.

    Idempotent: run again after a crash it replaces the document's chunks, never duplicates
    them. If another worker holds the document's lease, it retries once the lease runs out.
    A document that takes longer than RAG_INGEST_TIME_LIMIT seconds is marked failed.
    """
    try:
        document = ingestion.ingest_document(document_id, publish=ingestion.Publish.BATCHED)
        if document:
            indexing.queue_merge_if_needed(document.knowledge_base_id)
    except DocumentBusyError as busy:
        raise self.retry(countdown=busy.retry_after + 1) from None
    except SoftTimeLimitExceeded:
        document = ingestion.fail_document(
            document_id,
            f"Ingestion took longer than {settings.RAG_INGEST_TIME_LIMIT} seconds and was "
            "stopped; split the document or raise RAG_INGEST_TIME_LIMIT.",
            reason="time_limit",
        )
    return document.state if document else "deleted"


@shared_task(bind=True, acks_late=True, max_retries=SYNC_RETRIES)
def sync_index(self, knowledge_base_id: int) -> int | None:
    """Publish a new index version of the knowledge base if the database has changed (queued
    on commit by dispatch.publish_on_commit). While another process holds the knowledge base's
    lock past RAG_LOCK_TIMEOUT a worker retries it after SYNC_RETRY_SECONDS; None if the
    knowledge base was deleted meanwhile. A batched publish (dispatch.publish_soon) is marked
    started before it reads the changes, so that documents finished from now on queue the
    next one."""
    indexing.publish_started(knowledge_base_id)
    return _on_knowledge_base(self, knowledge_base_id, indexing.sync_index, raise_when_eager=True)


@shared_task(bind=True, acks_late=True, max_retries=SYNC_RETRIES)
def merge_index(self, knowledge_base_id: int) -> int | None:
    """Merge the deltas of the knowledge base's published version into a new version when they
    are too many or too big (queued by indexing.queue_merge_if_needed); retried like sync_index
    while the lock is busy. None if the knowledge base was deleted meanwhile."""
    return _on_knowledge_base(self, knowledge_base_id, indexing.merge_index, raise_when_eager=False)


def _on_knowledge_base(task, knowledge_base_id: int, work, raise_when_eager: bool) -> int | None:
    """work(knowledge_base) for a task; None if the knowledge base was deleted meanwhile. While
    another process holds its lock past RAG_LOCK_TIMEOUT a worker retries after
    SYNC_RETRY_SECONDS. Run eagerly in the caller's process (RAG_CELERY_EAGER), a busy lock
    reaches the caller with raise_when_eager (a request answers 503), or is left to the next
    publish."""
    from .models import KnowledgeBase

    knowledge_base = KnowledgeBase.objects.filter(pk=knowledge_base_id).first()
    if knowledge_base is None:
        return None
    try:
        return work(knowledge_base)
    except LockTimeoutError as busy:
        if task.request.is_eager:
            if raise_when_eager:
                raise
            return None
        raise task.retry(exc=busy, countdown=SYNC_RETRY_SECONDS) from None
