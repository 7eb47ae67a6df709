"""The dense index past its ANN threshold: IVF search, recall against exact, removal, files."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.dense import FaissIndex, inverted_lists_for

DIMENSION = 32


def clustered_vectors(count: int, seed: int = 7, clusters: int = 40) -> np.ndarray:
    """Unit vectors scattered around random centres, like embeddings of topical text."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIMENSION))
    vectors = centres[rng.integers(0, clusters, count)] + 0.6 * rng.normal(size=(count, DIMENSION))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray]:
    vectors = clustered_vectors(4000)
    return np.arange(1000, 1000 + len(vectors), dtype=np.int64), vectors


def ann_index(ids: np.ndarray, vectors: np.ndarray, threshold: int = 2000) -> FaissIndex:
    index = FaissIndex(DIMENSION, ann_threshold=threshold, probes=8)
    index.add(ids, vectors)
    return index


def recall_at_10(index: FaissIndex, exact: FaissIndex, queries: np.ndarray) -> float:
    found = index.search_batch(queries, 10)
    truth = exact.search_batch(queries, 10)
    overlaps = [
        len({h.chunk_id for h in a} & {h.chunk_id for h in b}) / 10
        for a, b in zip(found, truth, strict=True)
    ]
    return float(np.mean(overlaps))


def test_an_index_below_the_threshold_stays_exact(corpus) -> None:
    ids, vectors = corpus
    assert ann_index(ids[:1999], vectors[:1999]).kind == "flat"


def test_an_index_at_the_threshold_becomes_ivf_with_high_recall(corpus) -> None:
    ids, vectors = corpus
    index, exact = ann_index(ids, vectors), FaissIndex(DIMENSION)
    exact.add(ids, vectors)
    assert index.kind == "ivf"
    assert index._index.nlist == inverted_lists_for(len(ids))
    queries = clustered_vectors(100, seed=99)
    assert recall_at_10(index, exact, queries) >= 0.9
    assert index.search(vectors[5], k=1)[0].chunk_id == ids[5]


def test_an_ivf_index_removes_by_chunk_id(corpus) -> None:
    ids, vectors = corpus
    index = ann_index(ids, vectors)
    assert index.remove([ids[5], ids[6], 12345]) == 2
    assert index.kind == "ivf"
    assert len(index) == len(ids) - 2
    assert index.search(vectors[5], k=1)[0].chunk_id != ids[5]
    assert {int(ids[5]), int(ids[6])}.isdisjoint(index.ids().tolist())
    with pytest.raises(KeyError):
        index.vectors([ids[5]])


def test_an_ivf_index_keeps_exact_vectors_for_consistency_checks(corpus) -> None:
    ids, vectors = corpus
    index = ann_index(ids, vectors)
    np.testing.assert_allclose(index.vectors(ids[[3, 0, 2500]]), vectors[[3, 0, 2500]], atol=1e-6)


def test_an_ivf_index_survives_save_and_load(corpus, tmp_path) -> None:
    ids, vectors = corpus
    index = ann_index(ids, vectors)
    index.remove(ids[:10])
    index.save(tmp_path)
    loaded = FaissIndex.load(tmp_path, dimension=DIMENSION)
    assert (loaded.kind, loaded.ann_threshold, loaded.probes) == ("ivf", 2000, 8)
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    queries = clustered_vectors(20, seed=5)
    assert loaded.search_batch(queries, 10) == index.search_batch(queries, 10)
    loaded.add([ids[0]], vectors[:1])
    assert loaded.search(vectors[0], k=1)[0].chunk_id == ids[0]


def test_an_ivf_index_shrunk_below_half_the_threshold_is_exact_again(corpus) -> None:
    ids, vectors = corpus
    index = ann_index(ids[:2500], vectors[:2500])
    index.remove(ids[:1600])
    assert index.kind == "flat"
    assert len(index) == 900
    assert index.search(vectors[2000], k=1)[0].chunk_id == ids[2000]


def test_an_ivf_index_is_trained_again_after_fourfold_growth(corpus) -> None:
    ids, vectors = corpus
    index = ann_index(ids[:500], vectors[:500], threshold=500)
    assert (index.kind, index.trained_count) == ("ivf", 500)
    index.add(ids[500:], vectors[500:])
    assert index.trained_count == len(ids)
    assert index._index.nlist == inverted_lists_for(len(ids))


def test_a_loaded_index_takes_a_new_threshold_from_its_caller(corpus, tmp_path) -> None:
    ids, vectors = corpus
    small = FaissIndex(DIMENSION)
    small.add(ids[:100], vectors[:100])
    small.save(tmp_path)
    loaded = FaissIndex.load(tmp_path, ann_threshold=150)
    loaded.add(ids[100:200], vectors[100:200])
    assert loaded.kind == "ivf"


def test_it_rejects_a_negative_threshold_or_no_probes() -> None:
    with pytest.raises(ValueError, match="threshold"):
        FaissIndex(DIMENSION, ann_threshold=-1)
    with pytest.raises(ValueError, match="probes"):
        FaissIndex(DIMENSION, probes=0)
