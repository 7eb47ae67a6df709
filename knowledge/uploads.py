"""Storing uploaded files as queued documents, deduplicated by content."""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from .errors import UploadRejectedError
from .models import Document, KnowledgeBase


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
