"""Ingesting one document: claim it under a lease, parse, chunk, embed, store its chunks and
publish, or mark it failed with a message for its owner.
"""

from __future__ import annotations

import enum
import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from retrieval.chunking import chunk_sections
from retrieval.embedders import Embedder
from retrieval.errors import ParseError
from retrieval.parsing import parse_document
from retrieval.types import Attachment

from . import metrics
from .components import get_embedder, get_ocr, parse_limits
from .dispatch import enqueue_ingestion, publish_soon
from .errors import DocumentBusyError, DocumentDeletedError, UploadRejectedError
from .indexing import note_index_changes, sync_index, sync_index_locked
from .locks import knowledge_base_lock, renewing_every
from .models import AWAITING_PUBLISH_PROGRESS, HEADING_SEPARATOR, Chunk, Document
from .uploads import add_document, default_title

logger = logging.getLogger(__name__)


ProgressCallback = Callable[[int], None]


# Ingestion progress (percent) once the file is read; OCR'd pages advance it up to here.
PARSED_PERCENT = 40  # then embedding takes it to 95


class Publish(enum.Enum):
    """When the index version holding a document's new chunks is published."""

    NOW = "now"  # in the transaction that stores them
    # A new document with the others that workers finish within RAG_PUBLISH_DELAY seconds
    # (dispatch.publish_soon); a document whose indexed chunks it replaces, now.
    BATCHED = "batched"
    BY_CALLER = "by caller"  # bulk imports: sync_index once at the end, or every few seconds


def ingest_document(
    document_id: int, progress: ProgressCallback | None = None, *, publish: Publish = Publish.NOW
) -> Document | None:
    """Parse, chunk, embed and index one document; idempotent and safe to run again after a crash.

    Returns the document (indexed or failed; batched, processing until its publish marks it
    indexed), or None if it was deleted meanwhile. Raises
    DocumentBusyError while another live worker holds the document's lease. publish says when
    its chunks become searchable (Publish).
    """
    document = _claim(document_id)
    if document is None or document.state != Document.State.PROCESSING:
        return document
    if document.lease_expires_at is None:  # not claimed: it waits for its batched publish
        return document
    with _lease_heartbeat(document.pk):
        try:
            return _ingest_claimed(document, _progress_reporter(document, progress), publish)
        except DocumentDeletedError:
            logger.info("Document %s was deleted during ingestion; its work stopped.", document_id)
            return None


def _ingest_claimed(
    document: Document, report: ProgressCallback, publish: Publish
) -> Document | None:
    try:
        with document.file.open("rb") as handle:
            data = handle.read()
        parsed = parse_document(
            data,
            document.original_name,
            document.password or None,
            ocr=get_ocr(document.knowledge_base),
            limits=parse_limits(),
            progress=_page_progress(report),
        )
    except ParseError as error:
        return _fail(document, str(error), reason=error)
    except OSError:
        logger.exception("Cannot read the stored file of document %s", document.pk)
        return _fail(
            document, "The stored file is missing or unreadable; upload it again.", "unreadable"
        )
    if problem := _too_large(parsed):
        return _fail(document, problem, "too_large")
    embedder = get_embedder()
    chunks = chunk_sections(
        parsed.sections,
        embedder.count_tokens,
        embedder.split_tokens,
        settings.RAG_CHUNK_TOKENS,
        settings.RAG_CHUNK_OVERLAP,
        embedder.max_tokens,
    )
    if not chunks:
        return _fail(document, "The document holds no text to index.", "no_text")
    if len(chunks) > settings.RAG_MAX_DOCUMENT_CHUNKS:
        limit = settings.RAG_MAX_DOCUMENT_CHUNKS
        return _fail(document, _too_many(len(chunks), limit, "chunks"), "too_large")
    report(PARSED_PERCENT)
    vectors = _embed_in_slices(
        embedder,
        [chunk.text for chunk in chunks],
        progress=lambda done, total: report(PARSED_PERCENT + 55 * done // total),
    )
    stored = _store_chunks(document, parsed, chunks, vectors, embedder.name, publish)
    if stored is None:
        return None
    finished = _await_publish(document) if stored is Publish.BATCHED else _finish(document)
    _ingest_attachments(finished, parsed.attachments, publish)
    return finished


def _page_progress(report: ProgressCallback) -> Callable[[int, int], None]:
    """Turn the parser's pages done into percent (up to PARSED_PERCENT), reported on change:
    reading scanned pages with OCR takes seconds a page."""
    last = [0]

    def pages_done(done: int, total: int) -> None:
        percent = 1 + (PARSED_PERCENT - 1) * done // max(total, 1)
        if percent != last[0]:
            last[0] = percent
            report(percent)

    return pages_done


def _ingest_attachments(message: Document, attachments: list[Attachment], publish: Publish) -> None:
    """Store each readable attachment of an indexed e-mail as a document of its own, linked to
    the message (deleted with it), and ingest it now, so that both are searchable together."""
    for attachment in attachments:
        try:
            upload = add_document(
                message.knowledge_base,
                attachment.name,
                io.BytesIO(attachment.data),
                user=message.uploaded_by,
                attached_to=message,
            )
        except UploadRejectedError as error:
            logger.info("Attachment %s of document %s: %s", attachment.name, message.pk, error)
            continue
        if upload.document.state == Document.State.QUEUED:  # new, or failed before
            ingest_document(upload.document.pk, publish=publish)


def _too_large(parsed) -> str | None:
    """Why the extracted text is too much for one document (RAG_MAX_DOCUMENT_CHARS), checked
    before chunking and embedding, which would hold the worker for minutes; None if it fits."""
    characters = sum(len(section.text) for section in parsed.sections)
    if characters > settings.RAG_MAX_DOCUMENT_CHARS:
        return _too_many(characters, settings.RAG_MAX_DOCUMENT_CHARS, "characters")
    return None


def _too_many(count: int, limit: int, what: str) -> str:
    message = {
        "characters": _(
            "The document holds %(count)s characters of text, more than the %(limit)s one "
            "document may have; split it into smaller files."
        ),
        "chunks": _(
            "The document makes %(count)s passages, more than the %(limit)s one document may "
            "have; split it into smaller files."
        ),
    }[what]
    return message % {"count": f"{count:,}", "limit": f"{limit:,}"}


def _embed_in_slices(
    embedder: Embedder, texts: list[str], progress: Callable[[int, int], None]
) -> np.ndarray:
    """Embed a few batches at a time, reporting progress after each slice: the report raises
    DocumentDeletedError once the document is gone, so deleting a large document stops its
    embedding within seconds instead of at the end."""
    step = settings.RAG_EMBEDDING_BATCH_SIZE * 8
    parts = []
    for start in range(0, len(texts), step):
        part = texts[start : start + step]

        def in_slice(done: int, _: int, at: int = start) -> None:
            progress(at + done, len(texts))

        parts.append(embedder.embed(part, progress=in_slice))
        progress(start + len(part), len(texts))
    return np.vstack(parts)


def _claim(document_id: int) -> Document | None:
    """Move a queued (or abandoned) document to processing under a lease, atomically."""
    with transaction.atomic():
        document = (
            Document.objects.select_for_update()
            .select_related("knowledge_base")
            .filter(pk=document_id)
            .first()
        )
        if document is None or document.state in (
            Document.State.INDEXED,
            Document.State.FAILED,
            Document.State.DISABLED,
        ):
            return document
        if document.state == Document.State.PROCESSING and document.lease_expires_at is None:
            return document  # stored, awaiting its batched publish: a second message has no work
        now = timezone.now()
        if (
            document.state == Document.State.PROCESSING
            and document.lease_expires_at
            and (document.lease_expires_at > now)
        ):
            raise DocumentBusyError((document.lease_expires_at - now).total_seconds())
        document.state = Document.State.PROCESSING
        document.progress = 1
        document.attempts = F("attempts") + 1
        document.lease_expires_at = now + timedelta(seconds=settings.RAG_INGEST_LEASE_SECONDS)
        document.save()
        document.refresh_from_db()
        return document


@contextmanager
def _lease_heartbeat(document_id: int) -> Iterator[None]:
    """Renew the document's lease from a thread while this process works on it, so that only a
    dead (or hung) worker's lease runs out, however long one step takes."""

    def renew() -> None:
        lease = timezone.now() + timedelta(seconds=settings.RAG_INGEST_LEASE_SECONDS)
        holding = Document.objects.filter(
            pk=document_id, state=Document.State.PROCESSING, lease_expires_at__isnull=False
        )  # a document waiting for its batched publish has no lease to renew
        holding.update(lease_expires_at=lease)

    # cleanup closes the thread's own database connection.
    with renewing_every(
        settings.RAG_INGEST_LEASE_SECONDS / 3,
        renew,
        name=f"lease-{document_id}",
        cleanup=lambda: connection.close(),  # resolved in the thread itself
    ):
        yield


def _progress_reporter(document: Document, callback: ProgressCallback | None) -> ProgressCallback:
    def report(percent: int) -> None:
        lease = timezone.now() + timedelta(seconds=settings.RAG_INGEST_LEASE_SECONDS)
        if not Document.objects.filter(pk=document.pk).update(
            progress=percent, lease_expires_at=lease
        ):
            raise DocumentDeletedError(document.pk)
        if callback:
            callback(percent)

    return report


def _store_chunks(
    document, parsed, chunks, vectors: np.ndarray, embedding_model: str, publish: Publish
) -> Publish | None:
    """Swap the document's chunks for the new ones in one transaction (and retire what it
    replaces). Returns when they are published, or None if the document was deleted meanwhile.

    Published now, the index version holding the new chunks is published inside that
    transaction (under the knowledge base's lock, taken first), so that searches see the old
    chunks with the old version until both the new chunks and the new version are committed:
    a document indexed again never drops out of search. That is why a batched document that
    replaces indexed chunks is published now too; a new one has nothing to drop out, and
    waits for its publish in the same transaction (DocumentQuerySet.awaiting_publish).
    """
    if publish is Publish.BATCHED and _replaces_indexed_chunks(document):
        publish = Publish.NOW
    now = publish is Publish.NOW
    lock = knowledge_base_lock(document.knowledge_base_id) if now else nullcontext()
    with lock, transaction.atomic():
        if not Document.objects.select_for_update().filter(pk=document.pk).exists():
            return None
        note_index_changes(document.knowledge_base_id, [document.pk])
        Chunk.objects.filter(document=document).delete()
        Chunk.objects.bulk_create(
            [
                Chunk(
                    document=document,
                    knowledge_base_id=document.knowledge_base_id,
                    order=chunk.order,
                    text=chunk.text,
                    page=chunk.page,
                    heading_path=HEADING_SEPARATOR.join(chunk.heading_path)[:1000],
                    token_count=chunk.token_count,
                    embedding=vector.astype(np.float32).tobytes(),
                )
                for chunk, vector in zip(chunks, vectors, strict=True)
            ],
            batch_size=500,
        )
        Document.objects.filter(pk=document.pk).update(
            title=_title(document, parsed),
            file_type=parsed.file_type,
            page_count=parsed.page_count,
            chunk_count=len(chunks),
            embedding_model=embedding_model[:500],
            warnings="\n".join(parsed.warnings),
            **_awaiting_publish() if publish is Publish.BATCHED else {"progress": 96},
        )
        if document.replaces_id:
            note_index_changes(document.knowledge_base_id, [document.replaces_id])
            Document.objects.filter(pk=document.replaces_id).delete()
        if now:
            sync_index_locked(document.knowledge_base)
        elif publish is Publish.BATCHED:
            publish_soon(document.knowledge_base_id)
    return publish


def _title(document: Document, parsed) -> str:
    """The title the file carries, unless the document was given one (an importer, an admin):
    a title other than its file name's is kept."""
    if document.title and document.title != default_title(document.original_name):
        return document.title
    return (parsed.title or document.title)[:500]


def _awaiting_publish() -> dict[str, object]:
    """The fields of a document waiting for its batched publish: no worker holds it now."""
    return {
        "progress": AWAITING_PUBLISH_PROGRESS,
        "lease_expires_at": None,
        "error": "",
        "password": "",
    }


def _replaces_indexed_chunks(document: Document) -> bool:
    """Whether storing the document's new chunks deletes chunks that searches may be finding:
    its own (indexed again) or those of the document it replaces."""
    owners = [document.pk, document.replaces_id] if document.replaces_id else [document.pk]
    return Chunk.objects.filter(document_id__in=owners).exists()


def _fail(document: Document, message: str, reason: str | Exception) -> Document | None:
    """Mark the document failed and drop its chunks; None if it was deleted meanwhile. reason
    (a short code, or the parser's error) labels the failure in the metrics."""
    with transaction.atomic():
        note_index_changes(document.knowledge_base_id, [document.pk])
        Chunk.objects.filter(document=document).delete()
        failed = Document.objects.filter(pk=document.pk).update(
            state=Document.State.FAILED, error=message, progress=100, lease_expires_at=None
        )
    sync_index(document.knowledge_base)
    if not failed:
        return None
    document.refresh_from_db()
    metrics.observe_failed(reason)
    logger.info("Document %s failed: %s", document.pk, message)
    return document


def fail_document(document_id: int, message: str, reason: str = "stopped") -> Document | None:
    """Mark a document failed with a message for its owner (used when a task is stopped)."""
    document = Document.objects.select_related("knowledge_base").filter(pk=document_id).first()
    return _fail(document, message, reason) if document else None


def _await_publish(document: Document) -> Document:
    """A document stored for a batched publish, which marks it indexed (indexing._record)."""
    document.refresh_from_db()
    metrics.observe_indexed(document.page_count, document.chunk_count)
    return document


def _finish(document: Document) -> Document:
    Document.objects.filter(pk=document.pk, state=Document.State.PROCESSING).update(
        state=Document.State.INDEXED,
        progress=100,
        error="",
        password="",
        lease_expires_at=None,
        indexed_at=timezone.now(),
    )
    document.refresh_from_db()
    metrics.observe_indexed(document.page_count, document.chunk_count)
    return document


def recover_stalled_documents(include_queued: bool) -> list[int]:
    """Queue again the documents whose worker died or whose message was lost: processing ones
    whose lease ran out, and queued ones untouched for RAG_REQUEUE_AFTER_SECONDS (all queued
    ones with include_queued, at worker start-up). Each is sent at most once per that period.
    Safe from any number of workers at once, since ingestion is idempotent."""
    now = timezone.now()
    expired = Document.objects.filter(state=Document.State.PROCESSING, lease_expires_at__lt=now)
    ids = [
        pk
        for pk in expired.values_list("pk", flat=True)
        if expired.filter(pk=pk).update(state=Document.State.QUEUED, updated_at=now)
    ]
    queued = Document.objects.filter(state=Document.State.QUEUED)
    if not include_queued:
        waited = timedelta(seconds=settings.RAG_REQUEUE_AFTER_SECONDS)
        queued = queued.filter(updated_at__lt=now - waited)
    ids += [
        pk
        for pk in queued.exclude(pk__in=ids).values_list("pk", flat=True)
        if queued.filter(pk=pk).update(updated_at=now)
    ]
    for document in Document.objects.filter(pk__in=ids):
        enqueue_ingestion(document)
    return ids
