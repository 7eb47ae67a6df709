"""The glue between the database and the retrieval and generation libraries.

Views, the API, Celery tasks and management commands all go through these functions; they build
library objects from settings and convert rows to and from library dataclasses.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import logging
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO

import numpy as np
from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from kombu.exceptions import KombuError

from retrieval.chunking import chunk_sections
from retrieval.dense import FaissIndex
from retrieval.embedders import (
    Embedder,
    HashingEmbedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
)
from retrieval.errors import IndexNotBuiltError, ParseError
from retrieval.hybrid import HybridRetriever
from retrieval.limits import ParseLimits
from retrieval.ocr import TesseractOcr
from retrieval.parsing import parse_document
from retrieval.rerank import Candidate, CrossEncoderReranker, NoReranker, Reranker, WindowReranker
from retrieval.sparse import Bm25Index, present_idf
from retrieval.store import IndexPair, IndexStore
from retrieval.text import word_bigrams
from retrieval.types import Attachment, Hit, Passage

from . import metrics
from .locks import knowledge_base_lock, renewing_every
from .models import Chunk, Document, KnowledgeBase

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int], None]
# Ingestion progress (percent) once the file is read; OCR'd pages advance it up to here.
PARSED_PERCENT = 40  # then embedding takes it to 95
HEADING_SEPARATOR = " › "
# Documents whose chunks belong in the published indexes. A document being re-ingested keeps
# its old chunks searchable until the new ones replace them.
SEARCHABLE_STATES = (Document.State.INDEXED, Document.State.PROCESSING, Document.State.QUEUED)


class UploadRejectedError(Exception):
    """An upload was refused before it was stored; the message says why."""


class DocumentDeletedError(Exception):
    """The document was deleted while it was being ingested: the work stops."""


class DocumentBusyError(Exception):
    """Another worker holds the document's lease; try again after retry_after seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"The document is being ingested elsewhere; retry in {retry_after:.0f} s.")
        self.retry_after = retry_after


# --- Library objects built from settings -------------------------------------------------------

EMBEDDERS: dict[str, Callable[[str], Embedder]] = {
    "hashing": lambda name: HashingEmbedder(dimension=int(name.partition(":")[2] or 256)),
}


# What runs a real model (RAG_EMBEDDING_BACKEND). The ONNX backends export the model once into
# RAG_DATA_DIR/models/ (shared by the workers of one machine) and load it from there after.
EMBEDDING_BACKENDS: dict[str, Callable[[str], Embedder]] = {
    "torch": lambda model: SentenceTransformerEmbedder(
        model, batch_size=settings.RAG_EMBEDDING_BATCH_SIZE, threads=settings.RAG_EMBEDDING_THREADS
    ),
    "onnx": lambda model: _onnx_embedder(model, quantize=False),
    "onnx-int8": lambda model: _onnx_embedder(model, quantize=True),
}


def _onnx_embedder(model: str, quantize: bool) -> OnnxEmbedder:
    return OnnxEmbedder(
        model,
        settings.RAG_DATA_DIR / "models",
        quantize=quantize,
        batch_size=settings.RAG_EMBEDDING_BATCH_SIZE,
        threads=settings.RAG_EMBEDDING_THREADS,
    )


def get_embedder() -> Embedder:
    """The configured embedding model, loaded once per process."""
    return _load_embedder(settings.RAG_EMBEDDING_MODEL, settings.RAG_EMBEDDING_BACKEND)


def get_ocr(knowledge_base: KnowledgeBase | None = None) -> TesseractOcr | None:
    """The OCR engine for scanned pages and images, in the knowledge base's languages or else
    RAG_OCR_LANGUAGES; None when RAG_OCR_LANGUAGES is empty (OCR off)."""
    if not settings.RAG_OCR_LANGUAGES:
        return None
    own = knowledge_base.ocr_languages if knowledge_base else ""
    languages = own or settings.RAG_OCR_LANGUAGES
    return TesseractOcr(languages, settings.RAG_OCR_DPI, settings.RAG_OCR_PAGE_TIMEOUT)


def parse_limits() -> ParseLimits:
    """What one uploaded file may cost to read."""
    return ParseLimits(
        unpacked_bytes=settings.RAG_MAX_UNPACKED_MB * 1024 * 1024,
        xml_elements=settings.RAG_MAX_XML_ELEMENTS,
        sheet_cells=settings.RAG_MAX_SHEET_CELLS,
        image_pixels=settings.RAG_MAX_IMAGE_PIXELS,
        image_pages=settings.RAG_MAX_IMAGE_PAGES,
    )


@functools.cache
def _load_embedder(name: str, backend: str) -> Embedder:
    factory = EMBEDDERS.get(name.partition(":")[0])
    if factory:
        return factory(name)
    return EMBEDDING_BACKENDS[backend](name)


def get_index_store() -> IndexStore:
    return IndexStore(settings.RAG_DATA_DIR / "indexes")


# --- Uploads ------------------------------------------------------------------------------------


@dataclass
class UploadResult:
    document: Document
    created: bool


def add_document(
    knowledge_base: KnowledgeBase,
    name: str,
    content: IO[bytes],
    user=None,
    password: str = "",
    replaces: Document | None = None,
    attached_to: Document | None = None,
) -> UploadResult:
    """Store an upload as a queued Document, unless the same content is already in the base.

    A failed copy of the same content is queued again (with the new password, if given).
    Raises UploadRejectedError for an empty or oversized file.
    """
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        digest, size = _copy_and_hash(content, spool)
        if size == 0:
            raise UploadRejectedError(_("%(name)s is empty.") % {"name": name})
        existing = knowledge_base.documents.filter(sha256=digest).first()
        if existing:
            return UploadResult(_requeue_if_failed(existing, password), created=False)
        spool.seek(0)
        document = Document(
            knowledge_base=knowledge_base,
            original_name=Path(name).name[:255],
            title=Path(name).stem[:500],
            sha256=digest,
            size=size,
            password=password,
            uploaded_by=user if user and user.is_authenticated else None,
            replaces=replaces,
            attached_to=attached_to,
        )
        suffix = Path(name).suffix.lower()[:10]
        document.file.save(f"{digest}{suffix}", File(spool), save=False)
        try:
            with transaction.atomic():
                document.save()
        except IntegrityError:
            # The same content uploaded at the same moment was stored first: answer as a
            # duplicate sent afterwards would, and remove this upload's own copy of the file.
            document.file.delete(save=False)
            existing = knowledge_base.documents.filter(sha256=digest).first()
            if existing is None:
                raise
            return UploadResult(_requeue_if_failed(existing, password), created=False)
    return UploadResult(document, created=True)


def _copy_and_hash(source: IO[bytes], target: IO[bytes]) -> tuple[str, int]:
    limit = settings.RAG_MAX_UPLOAD_MB * 1024 * 1024
    digest, size = hashlib.sha256(), 0
    while block := source.read(1024 * 1024):
        size += len(block)
        if size > limit:
            raise UploadRejectedError(
                _("The file is larger than the %(mb)s MB upload limit.")
                % {"mb": settings.RAG_MAX_UPLOAD_MB}
            )
        digest.update(block)
        target.write(block)
    return digest.hexdigest(), size


def _requeue_if_failed(document: Document, password: str) -> Document:
    if document.state == Document.State.FAILED:
        document.state = Document.State.QUEUED
        document.progress = 0
        document.error = ""
        document.password = password or document.password
        document.save()
    return document


def enqueue_ingestion(document: Document) -> None:
    """Hand the document to a Celery worker once the current transaction commits. When the
    broker cannot take the message (Redis down), the document stays queued, the failure is
    logged, and the workers' sweep sends it again (recover_stalled_documents)."""
    transaction.on_commit(lambda: _send_to_worker(document.pk))


def _send_to_worker(document_id: int) -> None:
    from .tasks import ingest_document as ingest_task  # tasks import this module

    _send_task(
        ingest_task,
        document_id,
        "Cannot queue document %s for ingestion (%s); it stays queued and the workers' "
        "sweep sends it again within RAG_REQUEUE_AFTER_SECONDS.",
    )


def _send_task(task, argument: int, cannot_queue: str) -> None:
    """task.delay(argument); a broker that cannot take it is logged with cannot_queue."""
    if task.app.conf.task_always_eager:
        task.delay(argument)  # runs here: its errors are the caller's
        return
    try:
        task.delay(argument)
    except (KombuError, OSError) as error:
        logger.warning(cannot_queue, argument, error)


# --- Ingestion ----------------------------------------------------------------------------------


def ingest_document(
    document_id: int, progress: ProgressCallback | None = None, *, publish: bool = True
) -> Document | None:
    """Parse, chunk, embed and index one document; idempotent and safe to run again after a crash.

    Returns the document (indexed or failed), or None if it was deleted meanwhile. Raises
    DocumentBusyError while another live worker holds the document's lease. publish=False
    stores the chunks without publishing new indexes: for bulk imports, which call
    sync_index once at the end instead of once per document.
    """
    document = _claim(document_id)
    if document is None or document.state != Document.State.PROCESSING:
        return document
    with _lease_heartbeat(document.pk):
        try:
            return _ingest_claimed(document, _progress_reporter(document, progress), publish)
        except DocumentDeletedError:
            logger.info("Document %s was deleted during ingestion; its work stopped.", document_id)
            return None


def _ingest_claimed(
    document: Document, report: ProgressCallback, publish: bool = True
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
        embedder.split_tokens,  # type: ignore[attr-defined]
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
    if not _store_chunks(document, parsed, chunks, vectors, embedder.name, publish):
        return None
    finished = _finish(document)
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


def _ingest_attachments(message: Document, attachments: list[Attachment], publish: bool) -> None:
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
        Document.objects.filter(pk=document_id, state=Document.State.PROCESSING).update(
            lease_expires_at=lease
        )

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
    document, parsed, chunks, vectors: np.ndarray, embedding_model: str, publish: bool = True
) -> bool:
    """Swap the document's chunks for the new ones in one transaction (and retire what it
    replaces). Returns False if the document was deleted meanwhile.

    With publish, the index version holding the new chunks is published inside that
    transaction (under the knowledge base's lock, taken first), so that searches see the old
    chunks with the old version until both the new chunks and the new version are committed:
    a document indexed again never drops out of search.
    """
    lock = knowledge_base_lock(document.knowledge_base_id) if publish else nullcontext()
    with lock, transaction.atomic():
        if not Document.objects.select_for_update().filter(pk=document.pk).exists():
            return False
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
            title=(parsed.title or document.title)[:500],
            file_type=parsed.file_type,
            page_count=parsed.page_count,
            chunk_count=len(chunks),
            embedding_model=embedding_model[:500],
            warnings="\n".join(parsed.warnings),
            progress=96,
        )
        if document.replaces_id:
            Document.objects.filter(pk=document.replaces_id).delete()
        if publish:
            _sync_index_locked(document.knowledge_base)
    return True


def _fail(document: Document, message: str, reason: str | Exception) -> Document | None:
    """Mark the document failed and drop its chunks; None if it was deleted meanwhile. reason
    (a short code, or the parser's error) labels the failure in the metrics."""
    with transaction.atomic():
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


# --- Document management ------------------------------------------------------------------------


def manageable_knowledge_bases(user):
    """Knowledge bases whose documents the user may upload, replace, disable and delete: those
    it reads as a member when it is staff, and all of them for a superuser. Plain members
    only read (ask, search, open sources)."""
    if not user or not (user.is_staff or user.is_superuser):
        return KnowledgeBase.objects.none()
    return KnowledgeBase.objects.readable_by(user)


def delete_document(document: Document) -> None:
    """Delete the document, its chunks and its file; the indexes drop it in a queued publish."""
    delete_documents([document])


def delete_documents(documents: Iterable[Document]) -> int:
    """Delete the documents, their chunks and their files, and queue one publish per knowledge
    base (publish_on_commit): search leaves them out at once, without waiting for it."""
    knowledge_base_ids = []
    for document in documents:
        knowledge_base_ids.append(document.knowledge_base_id)
        storage, name = document.file.storage, document.file.name
        document.delete()
        if name and not Document.objects.filter(file=name).exists():
            storage.delete(name)
    publish_on_commit(knowledge_base_ids)
    return len(knowledge_base_ids)


def set_document_enabled(document: Document, enabled: bool) -> Document:
    """Disable a document or enable it again; the indexes follow in a queued publish."""
    return set_documents_enabled([document], enabled)[0]


def set_documents_enabled(documents: Iterable[Document], enabled: bool) -> list[Document]:
    """Disable documents (search leaves them out at once, since it reads only searchable
    states) or enable them again, and queue one publish per knowledge base (publish_on_commit).
    A document enabled before it was ever indexed is queued for ingestion."""
    changed = []
    for document in documents:
        if enabled and document.state == Document.State.DISABLED:
            state = Document.State.INDEXED if document.chunk_count else Document.State.QUEUED
            Document.objects.filter(pk=document.pk).update(state=state)
        elif not enabled:
            Document.objects.filter(pk=document.pk).update(state=Document.State.DISABLED)
        document.refresh_from_db()
        if document.state == Document.State.QUEUED:
            enqueue_ingestion(document)
        changed.append(document)
    publish_on_commit(document.knowledge_base_id for document in changed)
    return changed


def reindex_document(document: Document) -> Document:
    """Queue the document for parsing and embedding again (its old chunks stay searchable)."""
    _mark_queued(document.pk)
    document.refresh_from_db()
    enqueue_ingestion(document)
    return document


def reembed_document(document_id: int) -> Document | None:
    """Parse, chunk and embed the document again in this process, without publishing: for
    bulk re-embedding, which rebuilds the indexes once at the end."""
    _mark_queued(document_id)
    return ingest_document(document_id, publish=False)


def _mark_queued(document_id: int) -> None:
    Document.objects.filter(pk=document_id).update(
        state=Document.State.QUEUED, progress=0, error="", lease_expires_at=None
    )


# --- Indexes ------------------------------------------------------------------------------------


def searchable_chunks(knowledge_base: KnowledgeBase):
    return Chunk.objects.filter(
        knowledge_base=knowledge_base, document__state__in=SEARCHABLE_STATES
    )


def publish_on_commit(knowledge_base_ids: Iterable[int]) -> None:
    """Queue one tasks.sync_index per knowledge base once the current transaction commits: the
    publish waits for the knowledge base's lock in a worker, never in a web request."""
    for knowledge_base_id in sorted(set(knowledge_base_ids)):
        transaction.on_commit(functools.partial(_send_sync, knowledge_base_id))


def _send_sync(knowledge_base_id: int) -> None:
    from .tasks import sync_index as sync_task  # tasks import this module

    _send_task(
        sync_task,
        knowledge_base_id,
        "Cannot queue the index publish of knowledge base %s (%s); search already leaves "
        "disabled and deleted documents out, and the next publish (any change, or "
        "`manage.py rebuild_index`) brings the indexes in line.",
    )


def sync_index(knowledge_base: KnowledgeBase) -> int:
    """Bring the published indexes in line with the database and publish a new version if
    anything changed. Returns the published version. Serialised per knowledge base."""
    with knowledge_base_lock(knowledge_base.pk):
        return _sync_index_locked(knowledge_base)


def _sync_index_locked(knowledge_base: KnowledgeBase) -> int:
    version = KnowledgeBase.objects.values_list("index_version", flat=True).get(
        pk=knowledge_base.pk
    )
    store = get_index_store()
    try:
        pair = store.load(knowledge_base.pk, version)
        pair.dense.ann_threshold = settings.RAG_ANN_THRESHOLD  # applies from this change on
    except IndexNotBuiltError:
        pair, version = empty_index_pair(), 0
    wanted = set(searchable_chunks(knowledge_base).values_list("pk", flat=True))
    present = set(pair.dense.ids().tolist())
    missing, extra = wanted - present, present - wanted
    if version and not missing and not extra:
        return version
    pair.dense.remove(sorted(extra))
    pair.sparse.remove(sorted(extra))
    _add_chunks(pair, Chunk.objects.filter(pk__in=missing))
    return _publish(knowledge_base, store, pair, version + 1)


def rebuild_index(knowledge_base: KnowledgeBase) -> int:
    """Rebuild both indexes from the stored chunks and embeddings (no re-embedding)."""
    with knowledge_base_lock(knowledge_base.pk):
        version = KnowledgeBase.objects.values_list("index_version", flat=True).get(
            pk=knowledge_base.pk
        )
        pair = empty_index_pair()
        _add_chunks(pair, searchable_chunks(knowledge_base))
        return _publish(knowledge_base, get_index_store(), pair, version + 1)


def empty_index_pair() -> IndexPair:
    dense = FaissIndex(
        get_embedder().dimension,
        ann_threshold=settings.RAG_ANN_THRESHOLD,
        probes=settings.RAG_ANN_PROBES,
    )
    return IndexPair(dense, Bm25Index())


def _add_chunks(pair: IndexPair, chunks, batch: int = 5000) -> None:
    rows = chunks.order_by("pk").values_list("pk", "text", "embedding")
    ids: list[int] = []
    texts: list[str] = []
    vectors: list[bytes] = []
    for chunk_id, text, embedding in rows.iterator(chunk_size=batch):
        ids.append(chunk_id)
        texts.append(text)
        vectors.append(bytes(embedding))
        if len(ids) >= batch:
            _add_batch(pair, ids, texts, vectors)
            ids, texts, vectors = [], [], []
    if ids:
        _add_batch(pair, ids, texts, vectors)


def _add_batch(pair: IndexPair, ids: list[int], texts: list[str], vectors: list[bytes]) -> None:
    matrix = np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(len(ids), -1)
    pair.dense.add(ids, matrix)
    pair.sparse.add(ids, texts)


def _publish(
    knowledge_base: KnowledgeBase, store: IndexStore, pair: IndexPair, version: int
) -> int:
    store.publish(knowledge_base.pk, version, pair)
    KnowledgeBase.objects.filter(pk=knowledge_base.pk).update(
        index_version=version, embedding_model=indexed_embedding_model(knowledge_base)[:500]
    )
    store.prune(knowledge_base.pk, version, keep=settings.RAG_INDEX_VERSIONS_KEPT)
    return version


def indexed_embedding_model(knowledge_base: KnowledgeBase) -> str:
    """The embedder of the knowledge base's searchable vectors: one name, "mixed: a; b" when
    documents were embedded by different ones, or the configured one when there are none."""
    models = sorted(
        set(_embedded_documents(knowledge_base).values_list("embedding_model", flat=True))
    )
    if not models:
        return get_embedder().name
    if len(models) == 1:
        return models[0]
    return "mixed: " + "; ".join(models)


def stale_documents(knowledge_base: KnowledgeBase):
    """Searchable documents whose vectors another embedder made than the configured one: their
    vectors and the queries' do not compare until they are embedded again."""
    return (
        _embedded_documents(knowledge_base)
        .exclude(embedding_model=get_embedder().name)
        .order_by("pk")
    )


def _embedded_documents(knowledge_base: KnowledgeBase):
    """The knowledge base's searchable documents that have vectors."""
    return knowledge_base.documents.filter(state__in=SEARCHABLE_STATES, chunk_count__gt=0)


@dataclass
class IndexReport:
    """What check_index found for one knowledge base; consistent when problems is empty."""

    knowledge_base: str
    version: int
    chunks: int
    problems: list[str] = field(default_factory=list)


def check_index(knowledge_base: KnowledgeBase) -> IndexReport:
    """Compare the published indexes with the database, id by id and vector by vector."""
    knowledge_base.refresh_from_db()
    wanted = dict(searchable_chunks(knowledge_base).values_list("pk", "embedding"))
    report = IndexReport(knowledge_base.name, knowledge_base.index_version, len(wanted))
    report.problems += _misplaced_chunks(knowledge_base)
    try:
        pair = get_index_store().load(knowledge_base.pk, knowledge_base.index_version)
    except IndexNotBuiltError as error:
        if wanted or knowledge_base.index_version:
            report.problems.append(str(error))
        return report
    for label, index in (("dense", pair.dense), ("sparse", pair.sparse)):
        present = set(index.ids().tolist())
        report.problems += _id_differences(label, set(wanted), present)
    report.problems += _vector_differences(pair.dense, wanted)
    report.problems += _embedder_differences(knowledge_base)
    return report


def _misplaced_chunks(knowledge_base: KnowledgeBase) -> list[str]:
    """Chunks filed under this base whose document is in another one (moved behind our back):
    the old base's members would still find them, the new base's not."""
    misplaced = Chunk.objects.filter(knowledge_base=knowledge_base).exclude(
        document__knowledge_base=knowledge_base
    )
    documents = sorted(set(misplaced.values_list("document_id", flat=True)))
    if not documents:
        return []
    return [
        f"{misplaced.count()} chunk(s) belong to a document of another knowledge base, "
        f"e.g. document(s) {documents[:5]}; re-index those documents, then run "
        "`manage.py rebuild_index`"
    ]


def _embedder_differences(knowledge_base: KnowledgeBase) -> list[str]:
    stale = stale_documents(knowledge_base)
    counts: dict[str, int] = {}
    for model in stale.values_list("embedding_model", flat=True):
        counts[model] = counts.get(model, 0) + 1
    return [
        f"{count} document(s) were embedded with {model or 'an unrecorded model'!r}, not the "
        f"configured {get_embedder().name!r}; embed them again with "
        "`manage.py rebuild_index --reembed`"
        for model, count in sorted(counts.items())
    ]


def _id_differences(label: str, wanted: set[int], present: set[int]) -> list[str]:
    problems = []
    if missing := sorted(wanted - present):
        problems.append(f"{label} index lacks {len(missing)} chunk(s), e.g. {missing[:5]}")
    if extra := sorted(present - wanted):
        problems.append(
            f"{label} index holds {len(extra)} chunk(s) not in the database, e.g. {extra[:5]}"
        )
    return problems


def _vector_differences(dense: FaissIndex, wanted: dict[int, bytes]) -> list[str]:
    common = sorted(set(wanted) & set(dense.ids().tolist()))
    if not common:
        return []
    stored = np.frombuffer(b"".join(bytes(wanted[i]) for i in common), dtype=np.float32)
    stored = stored.reshape(len(common), -1)
    indexed = dense.vectors(common)
    bad = np.flatnonzero(np.abs(stored - indexed).max(axis=1) > 1e-5)
    if len(bad):
        return [
            f"dense index vectors differ from the database for {len(bad)} chunk(s), "
            f"e.g. {[common[i] for i in bad[:5]]}"
        ]
    return []


def orphan_upload_files(min_age_seconds: float = 600) -> list[str]:
    """Stored upload files that no document names (left by an upload or a deletion that died
    half-way), relative to MEDIA_ROOT. Files younger than min_age_seconds are left out: they
    may belong to an upload still under way."""
    root = Path(settings.MEDIA_ROOT)
    named = set(Document.objects.values_list("file", flat=True))
    newest = time.time() - min_age_seconds
    return sorted(
        relative
        for path in (root / "documents").rglob("*")
        if path.is_file()
        and (relative := path.relative_to(root).as_posix()) not in named
        and path.stat().st_mtime < newest
    )


def knowledge_bases_named(names: Iterable[str]) -> list[KnowledgeBase]:
    return list(KnowledgeBase.objects.filter(name__in=list(names)))


# --- Search -------------------------------------------------------------------------------------

# Loaded indexes by (index folder, knowledge base id): (version, indexes), least recently used
# first. The folder is part of the key because ids repeat across data directories (tests, a
# restored database), and the size is bounded so a web process serving many knowledge bases
# keeps only the busiest in memory.
_loaded_indexes: OrderedDict[tuple[str, int], tuple[int, IndexPair]] = OrderedDict()
_loaded_indexes_lock = threading.Lock()


def loaded_index(knowledge_base: KnowledgeBase) -> IndexPair | None:
    """The knowledge base's published indexes, reloaded when a newer version is published."""
    store = get_index_store()
    key = (str(store.root), knowledge_base.pk)
    with _loaded_indexes_lock:
        cached = _loaded_indexes.get(key)
        if cached and cached[0] == knowledge_base.index_version:
            _loaded_indexes.move_to_end(key)
            return cached[1]
    try:
        pair = store.load(knowledge_base.pk, knowledge_base.index_version)
    except IndexNotBuiltError:
        return None
    pair.dense.probes = settings.RAG_ANN_PROBES
    with _loaded_indexes_lock:
        _loaded_indexes[key] = (knowledge_base.index_version, pair)
        _loaded_indexes.move_to_end(key)
        while len(_loaded_indexes) > settings.RAG_INDEX_CACHE_SIZE:
            _loaded_indexes.popitem(last=False)
    return pair


# The reranker for each value of RAG_RERANKER_MODEL; any other value names a cross-encoder.
RERANKERS: dict[str, Callable[[str], Reranker]] = {
    "": lambda name: NoReranker(),
    "window": lambda name: WindowReranker(get_embedder()),
}


def get_reranker() -> Reranker:
    """The configured reranker, loaded once per process."""
    return _load_reranker(settings.RAG_RERANKER_MODEL, settings.RAG_EMBEDDING_MODEL)


@functools.cache
def _load_reranker(name: str, embedding_model: str) -> Reranker:
    # Keyed by the embedding model too: the window reranker embeds with it.
    factory = RERANKERS.get(name)
    return factory(name) if factory else CrossEncoderReranker(name)


def warm_up() -> None:
    """With RAG_WARM_UP, load the embedding model, the reranker and the Chinese word segmenter
    and run each once, so that a web worker's first question is as fast as the rest
    (rag_site/wsgi.py and asgi.py call this as a worker starts); says in the log what it loaded
    and how long it took."""
    if not settings.RAG_WARM_UP:
        return
    started = time.perf_counter()
    embedder = get_embedder()
    embedder.embed(["warm up"])
    reranker = get_reranker()
    reranker.rerank("warm up", [Candidate(0, "warm up", 0.0)], 1)
    word_bigrams("预热")  # jieba reads its dictionary on first use
    logger.info(
        "Warmed up in %.1f s: embedding model %s, reranker %s (RAG_WARM_UP)",
        time.perf_counter() - started,
        embedder.name,
        settings.RAG_RERANKER_MODEL or "none",
    )


def search_passages(
    knowledge_bases: Iterable[KnowledgeBase], query: str, top_k: int = 10, *, user=None
) -> list[Passage]:
    """Hybrid search (dense + BM25, fused, then reranked) over the given knowledge bases only.

    With a user, only those of the knowledge bases the user may read right now are searched,
    whatever the caller resolved before. A search that meets a version published while it ran
    (hits whose chunks were just replaced, or its index version already pruned) runs once
    more on the bases' current versions, so a document indexed again never drops out.
    """
    if top_k <= 0 or not query.strip():
        return []
    reranker = get_reranker()
    depth = top_k if isinstance(reranker, NoReranker) else max(top_k, settings.RAG_RERANK_DEPTH)
    passages: list[Passage] = []
    for _attempt in range(2):
        bases = KnowledgeBase.objects.filter(pk__in=[kb.pk for kb in knowledge_bases])
        if user is not None:
            bases = bases.filter(pk__in=KnowledgeBase.objects.readable_by(user).values("pk"))
        loaded = [(kb, loaded_index(kb)) for kb in bases]
        pairs = {kb.pk: pair for kb, pair in loaded if pair and len(pair.dense)}
        if not pairs:
            return []
        retriever = HybridRetriever(
            get_embedder(),
            [(pair.dense, pair.sparse) for pair in pairs.values()],
            depth=settings.RAG_RETRIEVAL_DEPTH,
            fusion=settings.RAG_FUSION,
            dense_weight=settings.RAG_FUSION_DENSE_WEIGHT,
        )
        hits = retriever.search(query, depth)
        passages = passages_for(hits, allowed=list(pairs))
        pruned = any(pair is None and kb.index_version for kb, pair in loaded)
        if len(passages) == len(hits) and not pruned:
            break
    return reranked(reranker, query, passages, top_k)


def reranked(reranker: Reranker, query: str, passages: list[Passage], top_k: int) -> list[Passage]:
    """The top_k passages in the reranker's order, with its scores."""
    candidates = [Candidate(p.chunk_id, p.text, p.score) for p in passages]
    by_id = {passage.chunk_id: passage for passage in passages}
    return [
        dataclasses.replace(by_id[hit.chunk_id], score=hit.score)
        for hit in reranker.rerank(query, candidates, top_k)
    ]


def passages_for(hits: list[Hit], allowed: list[int]) -> list[Passage]:
    """Load the hits' chunks, keeping only searchable ones of the allowed knowledge bases."""
    chunks = Chunk.objects.filter(
        pk__in=[hit.chunk_id for hit in hits],
        knowledge_base_id__in=allowed,
        document__state__in=SEARCHABLE_STATES,
    ).select_related("document")
    by_id = {chunk.pk: chunk for chunk in chunks}
    return [
        Passage(
            chunk_id=chunk.pk,
            text=chunk.text,
            score=hit.score,
            document_id=chunk.document_id,
            document_title=str(chunk.document),
            page=chunk.page,
            heading_path=tuple(filter(None, chunk.heading_path.split(HEADING_SEPARATOR))),
            knowledge_base_id=chunk.knowledge_base_id,
        )
        for hit in hits
        if (chunk := by_id.get(hit.chunk_id))
    ]


def idf_function(
    knowledge_bases: Iterable[KnowledgeBase],
) -> Callable[[Sequence[str]], dict[str, float]]:
    """The idf of BM25 terms over the knowledge bases' published indexes taken together, for
    weighing a question's words by how rare they are there (terms found nowhere left out)."""
    sparse = [
        pair.sparse for kb in knowledge_bases if (pair := loaded_index(kb)) and len(pair.sparse)
    ]

    def idf(terms: Sequence[str]) -> dict[str, float]:
        return present_idf(sparse, list(terms))

    return idf


# --- Access -------------------------------------------------------------------------------------


class KnowledgeBaseNotFoundError(Exception):
    """A requested knowledge base does not exist or the user may not read it (the two look the
    same, so that a caller learns nothing about knowledge bases it cannot read)."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        ids = sorted(ids)
        listed = ", ".join(str(i) for i in ids)
        super().__init__(f"No such knowledge base: {listed}." if ids else "No such knowledge base.")
        self.ids = ids


def cites_a_document(citation: object) -> bool:
    return isinstance(citation, dict) and isinstance(citation.get("document_id"), int)


def answers_hidden_from(user, conversation) -> set[int]:
    """The conversation's answers that the user may no longer see, since they quote sources it
    can no longer read: answers citing a document of a knowledge base the user no longer
    reads, or a deleted document while the conversation searched such a base. Pages show a
    notice instead, and new questions do not pass them on as history."""
    answers = [
        (pk, [c["document_id"] for c in citations or [] if cites_a_document(c)])
        for pk, citations in conversation.messages.filter(role="assistant").values_list(
            "pk", "citations"
        )
    ]
    cited = {document for _, documents in answers for document in documents}
    if not cited:
        return set()
    readable = KnowledgeBase.objects.readable_by(user).values("pk")
    bases = dict(Document.objects.filter(pk__in=cited).values_list("pk", "knowledge_base_id"))
    allowed = set(
        KnowledgeBase.objects.filter(pk__in=set(bases.values()))
        .filter(pk__in=readable)
        .values_list("pk", flat=True)
    )
    lost_base = conversation.knowledge_bases.exclude(pk__in=readable).exists()

    def unreadable(document: int) -> bool:
        return bases[document] not in allowed if document in bases else lost_base

    return {pk for pk, documents in answers if any(map(unreadable, documents))}


def readable_knowledge_bases(user, ids: Iterable[int] | None = None) -> list[KnowledgeBase]:
    """The knowledge bases the user may read; with ids, exactly those, or
    KnowledgeBaseNotFoundError if any is missing or not readable."""
    readable = KnowledgeBase.objects.readable_by(user)
    if ids is None:
        return list(readable)
    wanted = set()
    for value in ids:
        try:
            wanted.add(int(value))
        except (TypeError, ValueError):
            raise KnowledgeBaseNotFoundError() from None
    found = list(readable.filter(pk__in=wanted))
    if missing := wanted - {kb.pk for kb in found}:
        raise KnowledgeBaseNotFoundError(missing)
    return found
