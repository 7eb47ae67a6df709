"""Storing uploaded files as queued documents, deduplicated by content.

One rule decides what may be stored (`refusal`): every surface - the pages, the API, the admin
and `manage.py ingest` - goes through add_document, which applies it, and maps the kind of a
refusal to its own status or message.
"""

from __future__ import annotations

import enum
import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import IO

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from .dispatch import enqueue_ingestion
from .errors import UploadRejectedError
from .models import Document, KnowledgeBase

# File types the parsers read (retrieval.parsing sniffs the content again at ingestion).
ACCEPTED_SUFFIXES = (
    *(".pdf", ".docx", ".pptx", ".xlsx", ".csv", ".tsv", ".eml"),
    *(".html", ".htm", ".md", ".markdown", ".txt", ".text"),
    *(".png", ".jpg", ".jpeg", ".tif", ".tiff"),
)
# How a file of these types begins; one that begins otherwise is not of its type.
MAGIC = {
    ".pdf": (b"%PDF",),
    **dict.fromkeys((".docx", ".pptx", ".xlsx"), (b"PK\x03\x04",)),
    ".png": (b"\x89PNG",),
    **dict.fromkeys((".jpg", ".jpeg"), (b"\xff\xd8\xff",)),
    **dict.fromkeys((".tif", ".tiff"), (b"II*\x00", b"MM\x00*")),
}
HEAD_BYTES = 1024  # what the type check reads of a file


class Refusal(enum.StrEnum):
    """Why an upload is refused: each surface maps the kind to its own status or wording."""

    WRONG_TYPE = "wrong_type"  # a file type ingestion does not read
    WRONG_CONTENT = "wrong_content"  # named .pdf (say) but something else inside
    TOO_LARGE = "too_large"  # over RAG_MAX_UPLOAD_MB
    EMPTY = "empty"


def refusal(name: str, size: int | None = None, head: bytes = b"") -> UploadRejectedError | None:
    """The one upload rule: why a file called name, of size bytes (None: not known yet) and
    beginning with head, is refused; None if it may be stored."""
    name = PurePath(name or "").name
    suffix = PurePath(name).suffix.lower()
    if suffix not in ACCEPTED_SUFFIXES:
        return UploadRejectedError(refused_type(name), Refusal.WRONG_TYPE)
    if size is not None and size > settings.RAG_MAX_UPLOAD_MB * 1024 * 1024:
        return UploadRejectedError(too_large(name), Refusal.TOO_LARGE)
    if size == 0:
        return UploadRejectedError(_("%(name)s is empty.") % {"name": name}, Refusal.EMPTY)
    magic = MAGIC.get(suffix)
    if head and magic and not any(m in head for m in magic):
        message = _("%(name)s is named %(type)s but its content is not of that type.")
        return UploadRejectedError(message % {"name": name, "type": suffix}, Refusal.WRONG_CONTENT)
    return None


def refused_type(name: str) -> str:
    """Why a file of a type we do not read is refused: what was uploaded and what would be read
    (the upload page's script says the same)."""
    suffix = PurePath(name).suffix.lower()
    names = {"name": name, "type": suffix, "accepted": " ".join(ACCEPTED_SUFFIXES)}
    if suffix:
        refused = _("%(name)s is a %(type)s file, which cannot be read; upload %(accepted)s files.")
    else:
        refused = _(
            "%(name)s has no file type ending (such as .pdf), so it cannot be read; "
            "upload %(accepted)s files."
        )
    return refused % names


def too_large(name: str | None = None) -> str:
    """Why a file over the upload limit is refused (name: when it is known)."""
    if name is None:
        return _("The file is larger than the %(mb)s MB upload limit.") % {
            "mb": settings.RAG_MAX_UPLOAD_MB
        }
    return _("%(name)s is larger than the %(mb)s MB upload limit.") % {
        "name": name,
        "mb": settings.RAG_MAX_UPLOAD_MB,
    }


def upload_refusal(upload) -> UploadRejectedError | None:
    """The upload rule applied to a Django UploadedFile (name, size and first bytes), for forms
    that refuse a file before anything is stored."""
    head = upload.read(HEAD_BYTES)
    upload.seek(0)
    return refusal(upload.name or "", upload.size, head)


@dataclass
class UploadResult:
    document: Document
    created: bool


def default_title(name: str) -> str:
    """A document's title until ingestion reads the file's own: its file name without suffix."""
    return Path(name).stem[:500]


def add_document(
    knowledge_base: KnowledgeBase,
    name: str,
    content: IO[bytes],
    user=None,
    password: str = "",
    replaces: Document | None = None,
    attached_to: Document | None = None,
    title: str = "",
) -> UploadResult:
    """Store an upload as a queued Document, unless the same content is already in the base.

    A failed copy of the same content is queued again (with the new password, if given). The
    title, when given, is kept; otherwise the file's own (or its name) is taken at ingestion.
    Raises UploadRejectedError (with its Refusal kind) for what the upload rule refuses.
    """
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        digest, size = _copy_and_hash(name, content, spool)
        existing = knowledge_base.documents.filter(sha256=digest).first()
        if existing:
            return UploadResult(_requeue_if_failed(existing, password), created=False)
        spool.seek(0)
        document = Document(
            knowledge_base=knowledge_base,
            original_name=Path(name).name[:255],
            title=(title.strip() or default_title(name))[:500],
            sha256=digest,
            size=size,
            password=password,
            uploaded_by=user if user and user.is_authenticated else None,
            replaces=replaces,
            attached_to=attached_to,
        )
        suffix = Path(name).suffix.lower()[:10]
        document.file.save(f"{digest}{suffix}", File(spool), save=False)
        if (first := _save_or_first(document)) is not document:
            return UploadResult(_requeue_if_failed(first, password), created=False)
    return UploadResult(document, created=True)


def _save_or_first(document: Document) -> Document:
    """Save the new document, or, when the same content uploaded at the same moment was stored
    first, remove this upload's own copy of the file and return that one (as a duplicate sent
    afterwards would find it)."""
    try:
        with transaction.atomic():
            document.save()
    except IntegrityError:
        document.file.delete(save=False)
        existing = document.knowledge_base.documents.filter(sha256=document.sha256).first()
        if existing is None:
            raise
        return existing
    return document


def _copy_and_hash(name: str, source: IO[bytes], target: IO[bytes]) -> tuple[str, int]:
    """Copy source to target and return its sha256 and size, applying the upload rule to the
    first block, to the size as it grows (a large body stops at the limit) and at the end."""
    digest, size, head = hashlib.sha256(), 0, b""
    while block := source.read(1024 * 1024):
        head = head or block[:HEAD_BYTES]
        size += len(block)
        if refused := refusal(name, size, head):
            raise refused
        digest.update(block)
        target.write(block)
    if refused := refusal(name, size, head):
        raise refused
    return digest.hexdigest(), size


def store_and_queue(knowledge_base: KnowledgeBase, name: str, content: IO[bytes], **details):
    """Store an upload (add_document, with its keyword details) and queue its ingestion once
    the transaction commits when it is new or failed before: what every surface that accepts
    files does. Raises UploadRejectedError as add_document does."""
    with transaction.atomic():
        stored = add_document(knowledge_base, name, content, **details)
        if stored.document.state == Document.State.QUEUED:
            enqueue_ingestion(stored.document)
    return stored


def _requeue_if_failed(document: Document, password: str) -> Document:
    if document.state == Document.State.FAILED:
        document.state = Document.State.QUEUED
        document.progress = 0
        document.error = ""
        document.password = password or document.password
        document.save()
    return document


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
