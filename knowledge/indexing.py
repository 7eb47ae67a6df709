"""The published indexes of each knowledge base: bring them in line with the database,
rebuild them, check them, and the per-process cache of loaded versions.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from retrieval.dense import FaissIndex
from retrieval.errors import IndexNotBuiltError
from retrieval.sparse import Bm25Index
from retrieval.store import IndexPair, IndexStore

from .components import get_embedder, get_index_store
from .locks import knowledge_base_lock
from .models import SEARCHABLE_STATES, Chunk, KnowledgeBase


def searchable_chunks(knowledge_base: KnowledgeBase):
    return Chunk.objects.filter(
        knowledge_base=knowledge_base, document__state__in=SEARCHABLE_STATES
    )


def sync_index(knowledge_base: KnowledgeBase) -> int:
    """Bring the published indexes in line with the database and publish a new version if
    anything changed. Returns the published version. Serialised per knowledge base."""
    with knowledge_base_lock(knowledge_base.pk):
        return sync_index_locked(knowledge_base)


def sync_index_locked(knowledge_base: KnowledgeBase) -> int:
    """sync_index for a caller that already holds the knowledge base's lock."""
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
