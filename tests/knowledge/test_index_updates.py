"""Index publishes that cost what the changed documents cost: each change is noted, published as
a delta of just those documents, picked up by web processes without a full load, and merged in
the background; check_index agrees with the database after every step."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from knowledge import documents, indexing, ingestion, tasks
from knowledge.components import get_index_store
from knowledge.models import Chunk, Document, IndexChange, KnowledgeBase
from retrieval.store import MAX_DELTAS
from tests.factories import add_text, make_knowledge_base

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_settings(settings):
    settings.RAG_EMBEDDING_MODEL = "hashing:64"


def indexed(knowledge_base: KnowledgeBase, name: str) -> Document:
    text = f"# {name}\n\nThe {name} policy covers meal receipts and travel by {name}.\n"
    document = ingestion.ingest_document(add_text(knowledge_base, f"{name}.md", text).pk)
    assert document is not None and document.state == Document.State.INDEXED
    return document


def manifest(knowledge_base: KnowledgeBase):
    knowledge_base.refresh_from_db()
    return get_index_store().manifest(knowledge_base.pk, knowledge_base.index_version)


def held_ids(knowledge_base: KnowledgeBase) -> set[int]:
    knowledge_base.refresh_from_db()
    return set(indexing.loaded_index(knowledge_base).dense.ids().tolist())


def chunk_ids(document: Document) -> set[int]:
    return set(document.chunks.values_list("pk", flat=True))


def test_each_change_is_published_as_a_delta_of_its_document_only():
    knowledge_base = make_knowledge_base()
    first = indexed(knowledge_base, "train")  # the first publish writes a whole version
    assert manifest(knowledge_base).deltas == []
    second = indexed(knowledge_base, "plane")
    entry = manifest(knowledge_base).deltas[-1]
    assert entry.rows == len(chunk_ids(second)) > 0  # the new chunks, nothing of the first
    documents.set_document_enabled(first, False)
    indexing.sync_index(knowledge_base)
    assert manifest(knowledge_base).deltas[-1].rows == len(chunk_ids(first))  # deleted ids
    assert held_ids(knowledge_base) == chunk_ids(second)
    documents.set_document_enabled(first, True)
    indexing.sync_index(knowledge_base)
    documents.delete_document(second)
    indexing.sync_index(knowledge_base)
    assert held_ids(knowledge_base) == chunk_ids(first)
    assert not IndexChange.objects.exists()
    assert indexing.check_index(knowledge_base).problems == []


def test_a_document_indexed_again_replaces_its_chunks_in_the_next_delta():
    knowledge_base = make_knowledge_base()
    indexed(knowledge_base, "train")
    document = indexed(knowledge_base, "plane")
    old = chunk_ids(document)
    documents.queue_reindex(document)
    ingestion.ingest_document(document.pk)
    assert chunk_ids(document).isdisjoint(old)
    assert held_ids(knowledge_base) >= chunk_ids(document)
    assert held_ids(knowledge_base).isdisjoint(old)
    assert indexing.check_index(knowledge_base).problems == []


def test_a_web_process_applies_the_new_delta_to_the_indexes_it_holds():
    knowledge_base = make_knowledge_base()
    indexed(knowledge_base, "train")
    knowledge_base.refresh_from_db()
    held = indexing.loaded_index(knowledge_base)
    document = indexed(knowledge_base, "plane")
    knowledge_base.refresh_from_db()
    assert indexing.loaded_index(knowledge_base) is held  # updated in place, not loaded again
    assert chunk_ids(document) <= set(held.sparse.ids().tolist())


def test_a_publish_without_a_version_on_disk_writes_a_whole_one():
    knowledge_base = make_knowledge_base()
    indexed(knowledge_base, "train")
    get_index_store().drop(knowledge_base.pk)
    indexed(knowledge_base, "plane")
    assert manifest(knowledge_base).deltas == []
    assert indexing.check_index(knowledge_base).problems == []


def test_the_merge_task_keeps_the_deltas_few(eager_celery, django_capture_on_commit_callbacks):
    knowledge_base = make_knowledge_base()
    for number in range(MAX_DELTAS + 3):
        document = indexed(knowledge_base, f"trip{number}")
        with django_capture_on_commit_callbacks(execute=True) as queued:
            tasks.ingest_document.apply(args=[document.pk])  # queues a merge when needed
        assert len(queued) == (number == MAX_DELTAS + 1)  # one delta too many: a merge
        assert len(manifest(knowledge_base).deltas) <= MAX_DELTAS
    assert indexing.check_index(knowledge_base).problems == []
    version = knowledge_base.index_version
    assert tasks.merge_index.apply(args=[knowledge_base.pk]).get() == version  # nothing to do


def test_the_ingest_command_publishes_a_folder_once_not_once_per_file(tmp_path, monkeypatch):
    from knowledge.management.commands import ingest

    monkeypatch.setattr(ingest, "PUBLISH_EVERY_SECONDS", 3600.0)  # a run shorter than that
    knowledge_base = make_knowledge_base()
    indexed(knowledge_base, "train")
    knowledge_base.refresh_from_db()
    version = knowledge_base.index_version
    folder = tmp_path / "trips"
    folder.mkdir()
    for name in ("bus", "ferry", "bicycle"):
        (folder / f"{name}.md").write_text(f"# {name}\n\nReceipts of the {name} count too.\n")
    call_command("ingest", str(folder), "--kb", knowledge_base.name, stdout=StringIO())
    knowledge_base.refresh_from_db()
    assert knowledge_base.index_version == version + 1  # one delta of the three files
    assert (
        manifest(knowledge_base).deltas[-1].rows
        == Chunk.objects.filter(
            document__original_name__in=["bus.md", "ferry.md", "bicycle.md"]
        ).count()
    )
    assert indexing.check_index(knowledge_base).problems == []


@pytest.mark.slow
def test_merges_keep_the_deltas_few_over_500_documents_uploaded_one_by_one(
    eager_celery, django_capture_on_commit_callbacks
):
    knowledge_base = make_knowledge_base()
    most = 0
    for number in range(500):
        sections = [
            f"## Day {day}\n\nMeal receipts of trip {number}, day {day}." for day in range(4)
        ]
        text = f"# Trip {number}\n\n" + "\n\n".join(sections)
        document = add_text(knowledge_base, f"trip{number}.md", text)
        with django_capture_on_commit_callbacks(execute=True):  # its publish, then any merge
            tasks.ingest_document.apply(args=[document.pk])
        most = max(most, len(manifest(knowledge_base).deltas))

    assert most <= MAX_DELTAS
    assert manifest(knowledge_base).base_covers > 0  # the deltas were folded into a new base
    assert Document.objects.filter(state=Document.State.INDEXED).count() == 500
    assert held_ids(knowledge_base) == set(Chunk.objects.values_list("pk", flat=True))
    assert indexing.check_index(knowledge_base).problems == []
