"""The published indexes of each knowledge base: bring them in line with the database,
rebuild them, check them, and the per-process cache of loaded versions.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from retrieval.chunking import sparse_text
from retrieval.deltas import IndexDelta
from retrieval.dense import FaissIndex
from retrieval.errors import IndexNotBuiltError
from retrieval.store import IndexPair, IndexStore

from .components import empty_index_pair, get_embedder, get_index_store, with_search_settings
from .dispatch import merge_on_commit, publish_lost_before, publish_soon
from .locks import knowledge_base_lock
from .models import (
    HEADING_SEPARATOR,
    SEARCHABLE_STATES,
    Chunk,
    Document,
    IndexChange,
    KnowledgeBase,
)


def searchable_chunks(knowledge_base: KnowledgeBase):
    return Chunk.objects.filter(
        knowledge_base=knowledge_base, document__state__in=SEARCHABLE_STATES
    )


def note_index_changes(knowledge_base_id: int, document_ids: Iterable[int]) -> None:
    """Record that the chunks of these documents are changing (new chunks, deletion, a state
    that makes them searchable or not), with the chunks they hold now. Call it in the change's
    transaction, before any chunk is deleted: the next publish reads only these documents."""
    ids = sorted(set(document_ids))
    held: dict[int, list[int]] = {document_id: [] for document_id in ids}
    chunks = Chunk.objects.filter(document_id__in=ids).values_list("document_id", "pk")
    for document_id, chunk_id in chunks:
        held[document_id].append(chunk_id)
    IndexChange.objects.bulk_create(
        IndexChange(
            knowledge_base_id=knowledge_base_id, document_id=document_id, removed_chunk_ids=removed
        )
        for document_id, removed in held.items()
    )


def publish_started(knowledge_base_id: int) -> None:
    """Clear the knowledge base's queued-publish flag (dispatch.publish_soon): the publish about
    to run reads every change committed before this."""
    KnowledgeBase.objects.filter(pk=knowledge_base_id).exclude(publish_queued_at=None).update(
        publish_queued_at=None
    )


def publish_forgotten_changes() -> list[int]:
    """Queue a batched publish (dispatch.publish_soon) of each knowledge base whose changes
    have waited longer than a lost publish may take: its message lost with the broker, or its
    worker killed. Returns the knowledge bases' ids."""
    forgotten = IndexChange.objects.filter(created_at__lt=publish_lost_before())
    ids = sorted(set(forgotten.values_list("knowledge_base_id", flat=True)))
    for knowledge_base_id in ids:
        publish_soon(knowledge_base_id)
    return ids


def sync_index(knowledge_base: KnowledgeBase) -> int:
    """Publish the changes noted since the last publish as a new index version (a full one when
    none is on disk). Returns the published version. Serialised per knowledge base; a merge is
    queued once the lock is free if the deltas pile up."""
    with knowledge_base_lock(knowledge_base.pk):
        version = sync_index_locked(knowledge_base)
    queue_merge_if_needed(knowledge_base.pk)
    return version


def sync_index_locked(knowledge_base: KnowledgeBase) -> int:
    """sync_index for a caller that already holds the knowledge base's lock.

    Costs what the noted documents' chunks cost: their chunks are read and published as one
    delta (IndexStore.publish_delta), never the whole base.
    """
    version = KnowledgeBase.objects.values_list("index_version", flat=True).get(
        pk=knowledge_base.pk
    )
    store = get_index_store()
    changes = list(
        IndexChange.objects.filter(knowledge_base=knowledge_base)
        .order_by("pk")
        .values_list("pk", "document_id", "removed_chunk_ids")
    )
    try:
        if not version:
            raise IndexNotBuiltError("No index version is published yet.")
        if not changes:
            store.manifest(knowledge_base.pk, version)  # raises if it is not on disk
            return version
        delta = _delta_of(knowledge_base, changes)
        store.publish_delta(knowledge_base.pk, version + 1, version, delta)
    except IndexNotBuiltError:
        return _sync_in_full(knowledge_base, store, version, changes)
    return _record(knowledge_base, store, version + 1, changes, full=False)


def _delta_of(knowledge_base: KnowledgeBase, changes: list[tuple[int, int, list[int]]]):
    """The delta of the noted changes: the chunks the documents held then go, their searchable
    chunks now come (back)."""
    document_ids = {document_id for _, document_id, _ in changes}
    deleted = sorted({chunk_id for *_, removed in changes for chunk_id in removed})
    ids, texts, vectors = [], [], []
    rows = searchable_chunks(knowledge_base).filter(document_id__in=document_ids)
    for chunk_id, text, embedding in _indexed_rows(rows):
        ids.append(chunk_id)
        texts.append(text)
        vectors.append(bytes(embedding))
    if not ids:
        return IndexDelta.of(deleted=deleted)
    matrix = np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(len(ids), -1)
    return IndexDelta.of(ids, matrix, texts, deleted)


def _sync_in_full(
    knowledge_base: KnowledgeBase,
    store: IndexStore,
    version: int,
    changes: list[tuple[int, int, list[int]]],
) -> int:
    """Without a published version to build on: publish every searchable chunk as a new one."""
    pair = empty_index_pair()
    _add_chunks(pair, searchable_chunks(knowledge_base))
    store.publish(knowledge_base.pk, version + 1, pair)
    return _record(knowledge_base, store, version + 1, changes, full=True)


def _record(
    knowledge_base: KnowledgeBase,
    store: IndexStore,
    version: int,
    changes: list[tuple[int, int, list[int]]],
    full: bool,
) -> int:
    """Record a published version and drop the changes it holds, in one transaction."""
    update: dict[str, int | str] = {"index_version": version}
    if full or _embedder_may_differ(knowledge_base, changes):
        update["embedding_model"] = indexed_embedding_model(knowledge_base)[:500]
    published = [document_id for _, document_id, _ in changes]
    with transaction.atomic():
        KnowledgeBase.objects.filter(pk=knowledge_base.pk).update(**update)
        IndexChange.objects.filter(pk__in=[pk for pk, *_ in changes]).delete()
        Document.objects.awaiting_publish().filter(pk__in=published).update(
            state=Document.State.INDEXED, progress=100, indexed_at=timezone.now()
        )
    store.prune(knowledge_base.pk, version, keep=settings.RAG_INDEX_VERSIONS_KEPT)
    return version


def _embedder_may_differ(
    knowledge_base: KnowledgeBase, changes: list[tuple[int, int, list[int]]]
) -> bool:
    """Whether the changed documents may change the base's recorded embedder (reading every
    document's embedder is left to publishes that may change it)."""
    recorded = KnowledgeBase.objects.values_list("embedding_model", flat=True).get(
        pk=knowledge_base.pk
    )
    changed = _embedded_documents(knowledge_base).filter(
        pk__in=[document_id for _, document_id, _ in changes]
    )
    models = set(changed.values_list("embedding_model", flat=True))
    return recorded.startswith("mixed: ") or not models <= {recorded[:500]}


def queue_merge_if_needed(knowledge_base_id: int) -> None:
    """Queue tasks.merge_index when the published version's deltas are too many or too big."""
    version = (
        KnowledgeBase.objects.filter(pk=knowledge_base_id)
        .values_list("index_version", flat=True)
        .first()
    )
    try:
        if version and get_index_store().manifest(knowledge_base_id, version).needs_merge():
            merge_on_commit(knowledge_base_id)
    except IndexNotBuiltError:
        pass  # nothing to merge; the next publish writes a full version


def merge_index(knowledge_base: KnowledgeBase) -> int:
    """Merge the published version's deltas (IndexStore.merge) into a new version if they need
    it, under the knowledge base's lock. Returns the version published or kept."""
    with knowledge_base_lock(knowledge_base.pk):
        version = KnowledgeBase.objects.values_list("index_version", flat=True).get(
            pk=knowledge_base.pk
        )
        store = get_index_store()
        try:
            merged = version and store.merge(knowledge_base.pk, version, version + 1)
        except IndexNotBuiltError:
            return version
        if not merged:
            return version
        KnowledgeBase.objects.filter(pk=knowledge_base.pk).update(index_version=version + 1)
        store.prune(knowledge_base.pk, version + 1, keep=settings.RAG_INDEX_VERSIONS_KEPT)
        return version + 1


def rebuild_index(knowledge_base: KnowledgeBase) -> int:
    """Rebuild both indexes from the stored chunks and embeddings (no re-embedding)."""
    with knowledge_base_lock(knowledge_base.pk):
        version = KnowledgeBase.objects.values_list("index_version", flat=True).get(
            pk=knowledge_base.pk
        )
        changes = list(
            IndexChange.objects.filter(knowledge_base=knowledge_base).values_list(
                "pk", "document_id", "removed_chunk_ids"
            )
        )
        return _sync_in_full(knowledge_base, get_index_store(), version, changes)


def _indexed_rows(chunks, batch: int = 5000) -> Iterator[tuple[int, str, bytes]]:
    """(id, the text BM25 indexes, embedding) of each chunk, in id order: the text with its
    document's title and headings (retrieval.chunking.sparse_text)."""
    rows = chunks.order_by("pk").values_list(
        "pk", "text", "embedding", "document__title", "heading_path"
    )
    for chunk_id, text, embedding, title, headings in rows.iterator(chunk_size=batch):
        heading_path = headings.split(HEADING_SEPARATOR) if headings else []
        yield chunk_id, sparse_text(text, title, heading_path), embedding


def _add_chunks(pair: IndexPair, chunks, batch: int = 5000) -> None:
    ids: list[int] = []
    texts: list[str] = []
    vectors: list[bytes] = []
    for chunk_id, text, embedding in _indexed_rows(chunks, batch):
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


# Loaded indexes by (index folder, knowledge base id): (version, indexes), least recently used
# first. The folder is part of the key because ids repeat across data directories (tests, a
# restored database), and the size is bounded so a web process serving many knowledge bases
# keeps only the busiest in memory.
_loaded_indexes: OrderedDict[tuple[str, int], tuple[int, IndexPair]] = OrderedDict()


_loaded_indexes_lock = threading.Lock()
_updating_lock = threading.Lock()


def loaded_index(knowledge_base: KnowledgeBase) -> IndexPair | None:
    """The knowledge base's published indexes. A newer version than the one held is picked up
    by applying only its new deltas (IndexStore.update), or loaded whole after a rebuild."""
    store = get_index_store()
    key, version = (str(store.root), knowledge_base.pk), knowledge_base.index_version
    with _loaded_indexes_lock:
        cached = _loaded_indexes.get(key)
        if cached and cached[0] == version:
            _loaded_indexes.move_to_end(key)
            return cached[1]
    try:
        if cached and cached[0] < version:
            with _updating_lock:  # two threads must not apply deltas to one pair at once
                pair = store.update(knowledge_base.pk, version, cached[1])
        else:
            pair = store.load(knowledge_base.pk, version)
    except IndexNotBuiltError:
        return None
    with_search_settings(pair)
    with _loaded_indexes_lock:
        _loaded_indexes[key] = (version, pair)
        _loaded_indexes.move_to_end(key)
        while len(_loaded_indexes) > settings.RAG_INDEX_CACHE_SIZE:
            _loaded_indexes.popitem(last=False)
    return pair
