"""Handing work to Celery workers once the current transaction commits.

Tasks are looked up by name in the Celery app's registry (knowledge.apps imports
knowledge.tasks at start-up), so this module does not import the tasks that import it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import KombuError

from .models import Document, KnowledgeBase

logger = logging.getLogger(__name__)

INGEST_TASK = "knowledge.tasks.ingest_document"
SYNC_TASK = "knowledge.tasks.sync_index"
MERGE_TASK = "knowledge.tasks.merge_index"


def enqueue_ingestion(document: Document) -> None:
    """Hand the document to a Celery worker once the current transaction commits. When the
    broker cannot take the message (Redis down), the document stays queued, the failure is
    logged, and the workers' sweep sends it again (recover_stalled_documents)."""
    transaction.on_commit(lambda: _send_to_worker(document.pk))


def _send_to_worker(document_id: int) -> None:
    _send_task(
        INGEST_TASK,
        document_id,
        "Cannot queue document %s for ingestion (%s); it stays queued and the workers' "
        "sweep sends it again within RAG_REQUEUE_AFTER_SECONDS.",
    )


# A batched publish queued this long ago without starting is taken for lost (a broker that
# refused it, a worker killed holding it): the next new document queues another.
PUBLISH_QUEUE_LOST_SECONDS = 120


def _send_task(name: str, argument: int, cannot_queue: str, countdown: float = 0) -> None:
    """Run the task called name with argument in a worker, countdown seconds from now; a
    broker that cannot take it is logged with cannot_queue."""
    task = current_app.tasks[name]
    if task.app.conf.task_always_eager:
        task.delay(argument)  # runs here: its errors are the caller's
        return
    try:
        task.apply_async((argument,), countdown=countdown or None)
    except (KombuError, OSError) as error:
        logger.warning(cannot_queue, argument, error)


def publish_on_commit(knowledge_base_ids: Iterable[int]) -> None:
    """Queue one tasks.sync_index per knowledge base once the current transaction commits: the
    publish waits for the knowledge base's lock in a worker, never in a web request."""
    for knowledge_base_id in sorted(set(knowledge_base_ids)):
        transaction.on_commit(functools.partial(_send_sync, knowledge_base_id))


def _send_sync(knowledge_base_id: int) -> None:
    _send_task(
        SYNC_TASK,
        knowledge_base_id,
        "Cannot queue the index publish of knowledge base %s (%s); search already leaves "
        "disabled and deleted documents out, and the next publish (any change, or "
        "`manage.py rebuild_index`) brings the indexes in line.",
    )


def publish_soon(knowledge_base_id: int) -> None:
    """Once the current transaction commits, queue a tasks.sync_index of the knowledge base to
    run RAG_PUBLISH_DELAY seconds later, unless one is queued and has not started: the new
    documents that workers finish meanwhile are published together, as one index version.

    KnowledgeBase.publish_queued_at is the flag, set here by one atomic update and cleared by
    the publish before it reads the changes (tasks.sync_index): a change committed before a
    caller finds the flag set is read by the publish that clears it."""
    transaction.on_commit(functools.partial(_send_sync_soon, knowledge_base_id))


def publish_lost_before() -> datetime:
    """A batched publish queued, or a change noted, before this has waited longer than its
    publish may take: the publish is taken for lost."""
    return timezone.now() - timedelta(
        seconds=settings.RAG_PUBLISH_DELAY + PUBLISH_QUEUE_LOST_SECONDS
    )


def _send_sync_soon(knowledge_base_id: int) -> None:
    idle = Q(publish_queued_at__isnull=True) | Q(publish_queued_at__lt=publish_lost_before())
    queued = KnowledgeBase.objects.filter(idle, pk=knowledge_base_id)
    if queued.update(publish_queued_at=timezone.now()):
        _send_task(
            SYNC_TASK,
            knowledge_base_id,
            "Cannot queue the index publish of knowledge base %s (%s); the next document "
            "indexed, or the workers' sweep, queues it again.",
            countdown=settings.RAG_PUBLISH_DELAY,
        )


def merge_on_commit(knowledge_base_id: int) -> None:
    """Queue one tasks.merge_index once the current transaction commits (at once outside one)."""
    transaction.on_commit(functools.partial(_send_merge, knowledge_base_id))


def _send_merge(knowledge_base_id: int) -> None:
    _send_task(
        MERGE_TASK,
        knowledge_base_id,
        "Cannot queue the index merge of knowledge base %s (%s); the next publish queues it again.",
    )
