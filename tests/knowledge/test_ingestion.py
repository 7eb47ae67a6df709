"""Ingestion through the service layer, in process, with the real embedding model."""

from __future__ import annotations

import io

import pytest

from knowledge import components, documents, indexing, ingestion, search, uploads
from knowledge.errors import UploadRejectedError
from knowledge.models import Chunk, Document
from tests.conftest import PDFS
from tests.factories import add_file, add_text, make_knowledge_base

pytestmark = pytest.mark.django_db

HANDBOOK = """# Travel policy

Employees book flights through the travel desk at least two weeks ahead.

## Expenses

Receipts for meals above 25 euros must be uploaded within 30 days.
"""


def ingest(document: Document) -> Document:
    result = ingestion.ingest_document(document.pk)
    assert result is not None
    return result


def test_it_indexes_a_markdown_document_with_its_headings():
    knowledge_base = make_knowledge_base()
    document = ingest(add_text(knowledge_base, "travel.md", HANDBOOK))
    assert document.state == Document.State.INDEXED
    assert document.progress == 100
    chunks = list(document.chunks.order_by("order"))
    assert document.chunk_count == len(chunks) == 2
    assert chunks[1].heading_path == "Travel policy › Expenses"
    assert "Receipts" in chunks[1].text
    assert indexing.check_index(knowledge_base).problems == []


def test_search_finds_the_passage_and_its_page():
    knowledge_base = make_knowledge_base()
    ingest(add_file(knowledge_base, PDFS / "naacl06-shinyama.pdf"))
    passages = search.search_passages([knowledge_base], "unrestricted relation discovery")
    assert passages
    assert passages[0].page == 1
    assert passages[0].document_title


def test_the_same_content_is_not_ingested_twice():
    knowledge_base = make_knowledge_base()
    first = add_text(knowledge_base, "a.md", HANDBOOK)
    ingest(first)
    again = uploads.add_document(knowledge_base, "copy.md", io.BytesIO(HANDBOOK.encode()))
    assert not again.created
    assert again.document.pk == first.pk
    assert Document.objects.count() == 1


def test_running_ingestion_again_leaves_no_duplicate_chunks():
    knowledge_base = make_knowledge_base()
    document = ingest(add_text(knowledge_base, "travel.md", HANDBOOK))
    ids_before = set(document.chunks.values_list("pk", flat=True))
    documents.queue_reindex(document)
    document = ingest(document)
    assert document.chunks.count() == document.chunk_count == 2
    assert set(document.chunks.values_list("pk", flat=True)).isdisjoint(ids_before)
    assert indexing.check_index(knowledge_base).problems == []


def test_a_password_protected_pdf_fails_with_a_clear_error_and_no_chunks():
    knowledge_base = make_knowledge_base()
    document = ingest(add_file(knowledge_base, PDFS / "libreoffice-writer-password.pdf"))
    assert document.state == Document.State.FAILED
    assert "password" in document.error.lower()
    assert document.chunks.count() == 0


def test_a_failed_pdf_is_retried_with_its_password():
    knowledge_base = make_knowledge_base()
    ingest(add_file(knowledge_base, PDFS / "aes-256.pdf"))
    document = ingest(add_file(knowledge_base, PDFS / "aes-256.pdf", password="foo"))
    assert document.state == Document.State.INDEXED
    assert "Secret!" in document.chunks.get().text
    assert document.password == ""


def test_deleting_a_document_removes_it_from_database_and_indexes(
    eager_celery, django_capture_on_commit_callbacks
):
    knowledge_base = make_knowledge_base()
    keep = ingest(add_text(knowledge_base, "keep.md", "# Keep\n\nThe cafeteria opens at eight."))
    gone = ingest(add_text(knowledge_base, "gone.md", HANDBOOK))
    with django_capture_on_commit_callbacks(execute=True):  # the queued index publish
        documents.delete_document(gone)
    assert not Chunk.objects.filter(document_id=gone.pk).exists()
    knowledge_base.refresh_from_db()
    pair = indexing.loaded_index(knowledge_base)
    assert set(pair.dense.ids().tolist()) == set(keep.chunks.values_list("pk", flat=True))
    assert set(pair.sparse.ids().tolist()) == set(keep.chunks.values_list("pk", flat=True))


def test_disabling_a_document_takes_it_out_of_search_and_enabling_brings_it_back(
    eager_celery, django_capture_on_commit_callbacks
):
    knowledge_base = make_knowledge_base()
    document = ingest(add_text(knowledge_base, "travel.md", HANDBOOK))
    with django_capture_on_commit_callbacks(execute=True):  # the queued index publish
        documents.set_document_enabled(document, False)
    assert search.search_passages([knowledge_base], "receipts for meals") == []
    assert indexing.check_index(knowledge_base).problems == []
    with django_capture_on_commit_callbacks(execute=True):
        documents.set_document_enabled(document, True)
    assert search.search_passages([knowledge_base], "receipts for meals")


def test_a_replacement_swaps_the_chunks_once_it_is_indexed():
    knowledge_base = make_knowledge_base()
    old = ingest(add_text(knowledge_base, "travel.md", HANDBOOK))
    new = add_text(
        knowledge_base, "travel.md", HANDBOOK.replace("25 euros", "40 euros"), replaces=old
    )
    ingest(new)
    assert not Document.objects.filter(pk=old.pk).exists()
    texts = " ".join(
        Chunk.objects.filter(knowledge_base=knowledge_base).values_list("text", flat=True)
    )
    assert "40 euros" in texts and "25 euros" not in texts
    assert indexing.check_index(knowledge_base).problems == []


def test_a_failed_replacement_keeps_the_old_version():
    knowledge_base = make_knowledge_base()
    old = ingest(add_text(knowledge_base, "travel.md", HANDBOOK))
    with (PDFS / "unreadablemetadata.pdf").open("rb") as handle:
        new = uploads.add_document(knowledge_base, "travel.pdf", handle, replaces=old).document
    assert ingest(new).state == Document.State.FAILED
    assert Document.objects.get(pk=old.pk).state == Document.State.INDEXED
    assert search.search_passages([knowledge_base], "receipts for meals")


def test_an_oversized_upload_is_refused_before_it_is_stored(settings):
    settings.RAG_MAX_UPLOAD_MB = 1
    knowledge_base = make_knowledge_base()
    with pytest.raises(UploadRejectedError, match="1 MB"):
        uploads.add_document(knowledge_base, "big.txt", io.BytesIO(b"a" * (1024 * 1024 + 1)))
    assert not Document.objects.exists()


def test_no_chunk_is_longer_than_the_model_can_read():
    knowledge_base = make_knowledge_base()
    run_on = "x" * 20000 + " " + " ".join(["word"] * 3000)
    document = ingest(add_text(knowledge_base, "run-on.txt", run_on))
    limit = components.get_embedder().max_tokens
    counts = components.get_embedder().count_tokens(
        list(document.chunks.values_list("text", flat=True))
    )
    assert max(counts) <= limit


def test_rebuild_index_restores_a_deleted_index_without_reembedding():
    knowledge_base = make_knowledge_base()
    ingest(add_text(knowledge_base, "travel.md", HANDBOOK))
    components.get_index_store().drop(knowledge_base.pk)
    assert indexing.check_index(knowledge_base).problems
    indexing.rebuild_index(knowledge_base)
    assert indexing.check_index(knowledge_base).problems == []


def test_check_index_reports_a_chunk_missing_from_the_indexes():
    knowledge_base = make_knowledge_base()
    document = ingest(add_text(knowledge_base, "travel.md", HANDBOOK))
    chunk = document.chunks.first()
    Chunk.objects.create(
        document=document,
        knowledge_base=knowledge_base,
        order=99,
        text="stray",
        token_count=1,
        embedding=chunk.embedding,
    )
    problems = indexing.check_index(knowledge_base).problems
    assert any("lacks 1 chunk" in problem for problem in problems)
