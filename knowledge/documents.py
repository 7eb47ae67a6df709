"""Managing stored documents: delete, disable and enable, queue for re-indexing, re-embed."""

from __future__ import annotations

from collections.abc import Iterable

from .dispatch import enqueue_ingestion, publish_on_commit
from .indexing import note_index_changes
from .ingestion import Publish, ingest_document
from .models import Document


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
        note_index_changes(document.knowledge_base_id, [document.pk])
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
        note_index_changes(document.knowledge_base_id, [document.pk])
        document.refresh_from_db()
        if document.state == Document.State.QUEUED:
            enqueue_ingestion(document)
        changed.append(document)
    publish_on_commit(document.knowledge_base_id for document in changed)
    return changed


def queue_reindex(document: Document) -> Document:
    """Queue the document for parsing and embedding again (its old chunks stay searchable)."""
    _mark_queued(document.pk)
    document.refresh_from_db()
    enqueue_ingestion(document)
    return document


def reembed_in_process(document_id: int) -> Document | None:
    """Parse, chunk and embed the document again in this process, without publishing: for
    bulk re-embedding, which rebuilds the indexes once at the end."""
    _mark_queued(document_id)
    return ingest_document(document_id, publish=Publish.BY_CALLER)


def _mark_queued(document_id: int) -> None:
    Document.objects.filter(pk=document_id).update(
        state=Document.State.QUEUED, progress=0, error="", lease_expires_at=None
    )
