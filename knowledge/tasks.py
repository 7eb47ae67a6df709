"""Celery tasks: thin wrappers that call services and record status on the document."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from . import services


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
        document = services.ingest_document(document_id)
    except services.DocumentBusyError as busy:
        raise self.retry(countdown=busy.retry_after + 1) from None
    except SoftTimeLimitExceeded:
        document = services.fail_document(
            document_id,
            f"Ingestion took longer than {settings.RAG_INGEST_TIME_LIMIT} seconds and was "
            "stopped; split the document or raise RAG_INGEST_TIME_LIMIT.",
            reason="time_limit",
        )
    return document.state if document else "deleted"


@shared_task(acks_late=True)
def sync_index(knowledge_base_id: int) -> int:
    """Publish a new index version of the knowledge base if the database has changed."""
    from .models import KnowledgeBase

    return services.sync_index(KnowledgeBase.objects.get(pk=knowledge_base_id))
