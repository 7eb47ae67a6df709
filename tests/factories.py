"""Small builders for knowledge bases, users and documents; three personas for permissions."""

from __future__ import annotations

import io
from pathlib import Path

from django.contrib.auth import get_user_model

from knowledge import ingestion, uploads
from knowledge.models import Document, KnowledgeBase


def make_user(username: str, **extra):
    return get_user_model().objects.create_user(username, password="pw-" + username, **extra)


def make_knowledge_base(name: str = "handbook", members=()) -> KnowledgeBase:
    knowledge_base = KnowledgeBase.objects.create(name=name)
    knowledge_base.members.add(*members)
    return knowledge_base


def add_text(knowledge_base: KnowledgeBase, name: str, text: str, **kwargs) -> Document:
    upload = uploads.add_document(knowledge_base, name, io.BytesIO(text.encode()), **kwargs)
    return upload.document


def add_file(knowledge_base: KnowledgeBase, path: Path, **kwargs) -> Document:
    with path.open("rb") as handle:
        return uploads.add_document(knowledge_base, path.name, handle, **kwargs).document


def ingested(document: Document) -> Document:
    """The document after ingestion in this process (the real ingestion code)."""
    ingestion.ingest_document(document.pk)
    document.refresh_from_db()
    return document


def indexed_text(knowledge_base: KnowledgeBase, name: str, text: str) -> Document:
    """A text document, ingested in this process; it must come out indexed."""
    document = ingested(add_text(knowledge_base, name, text))
    assert document.state == Document.State.INDEXED, document.error
    return document
