"""One contract for every index (dense, sparse): add, search order, save/load, empty, removal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import pytest

from retrieval.dense import FaissIndex
from retrieval.embedders import HashingEmbedder
from retrieval.errors import IndexMismatchError, IndexNotBuiltError
from retrieval.sparse import Bm25Index
from retrieval.types import Hit

DIMENSION = 64
EMBEDDER = HashingEmbedder(dimension=DIMENSION)
CORPUS = {
    11: "cats purr and sleep on warm windowsills",
    12: "dogs bark at the postman every morning",
    13: "parrots repeat words they hear often",
    14: "goldfish swim slowly around glass bowls",
    15: "horses gallop across open green fields",
    16: "rabbits dig burrows under garden hedges",
    17: "owls hunt mice silently at night",
    18: "bees collect nectar from spring flowers",
}
QUERIES = [
    "dogs bark postman",
    "owls hunt at night and cats sleep",
    "cats sleep warm horses",
    "bees dogs horses",
]


def hashing_embeddings(texts: list[str]) -> np.ndarray:
    """Vectors from the library's own weightless embedder (words and word pairs hashed)."""
    return EMBEDDER.embed(texts)


class Subject(Protocol):
    """What the contract needs of an index: texts in, hits out."""

    def add(self, ids: list[int], texts: list[str]) -> None: ...
    def search(self, text: str, k: int = 10) -> list[Hit]: ...
    def remove(self, ids: list[int]) -> int: ...
    def ids(self) -> np.ndarray: ...
    def __len__(self) -> int: ...
    def saved_and_loaded(self, path: Path) -> Subject: ...


class _Subject:
    """What both subjects pass straight through to their index."""

    index: FaissIndex | Bm25Index

    def remove(self, ids: list[int]) -> int:
        return self.index.remove(ids)

    def ids(self) -> np.ndarray:
        return self.index.ids()

    def __len__(self) -> int:
        return len(self.index)


class DenseSubject(_Subject):
    def __init__(self, index: FaissIndex | None = None) -> None:
        self.index = index or FaissIndex(DIMENSION)

    def add(self, ids: list[int], texts: list[str]) -> None:
        self.index.add(ids, hashing_embeddings(texts))

    def search(self, text: str, k: int = 10) -> list[Hit]:
        return self.index.search(hashing_embeddings([text])[0], k)

    def saved_and_loaded(self, path: Path) -> DenseSubject:
        self.index.save(path)
        return DenseSubject(FaissIndex.load(path))

    @staticmethod
    def load(path: Path) -> FaissIndex:
        return FaissIndex.load(path)


class IvfDenseSubject(DenseSubject):
    """The dense index past its ANN threshold: an IVF index from the fourth vector on."""

    def __init__(self, index: FaissIndex | None = None) -> None:
        super().__init__(index or FaissIndex(DIMENSION, ann_threshold=4))

    def saved_and_loaded(self, path: Path) -> IvfDenseSubject:
        self.index.save(path)
        return IvfDenseSubject(FaissIndex.load(path))


class SparseSubject(_Subject):
    def __init__(self, index: Bm25Index | None = None) -> None:
        self.index = index or Bm25Index()

    def add(self, ids: list[int], texts: list[str]) -> None:
        self.index.add(ids, texts)

    def search(self, text: str, k: int = 10) -> list[Hit]:
        return self.index.search(text, k)

    def saved_and_loaded(self, path: Path) -> SparseSubject:
        self.index.save(path)
        return SparseSubject(Bm25Index.load(path))

    @staticmethod
    def load(path: Path) -> Bm25Index:
        return Bm25Index.load(path)


@pytest.fixture(
    params=[DenseSubject, IvfDenseSubject, SparseSubject], ids=["dense", "dense-ivf", "sparse"]
)
def make_index(request: pytest.FixtureRequest) -> Callable[..., Subject]:
    """A factory for an index of the kind under test, holding the given documents."""

    def make(corpus: dict[int, str] | None = None) -> Subject:
        subject = request.param()
        corpus = CORPUS if corpus is None else corpus
        if corpus:
            subject.add(list(corpus), list(corpus.values()))
        return subject

    return make


def assert_same_hits(actual: list[Hit], expected: list[Hit]) -> None:
    assert [hit.chunk_id for hit in actual] == [hit.chunk_id for hit in expected]
    assert [hit.score for hit in actual] == pytest.approx([hit.score for hit in expected])


class TestIndexContract:
    def test_search_puts_the_best_match_first(self, make_index) -> None:
        assert make_index().search("dogs bark postman", k=3)[0].chunk_id == 12

    def test_scores_are_descending(self, make_index) -> None:
        for query in QUERIES[1:]:
            scores = [hit.score for hit in make_index().search(query, k=8)]
            assert len(scores) >= 2
            assert scores == sorted(scores, reverse=True)

    def test_search_returns_at_most_k_hits(self, make_index) -> None:
        assert len(make_index().search("bees dogs horses owls", k=2)) == 2

    def test_save_and_load_give_identical_results(self, make_index, tmp_path) -> None:
        index = make_index()
        loaded = index.saved_and_loaded(tmp_path)
        for query in QUERIES:
            assert loaded.search(query, k=5) == index.search(query, k=5)
        np.testing.assert_array_equal(loaded.ids(), index.ids())

    def test_loading_a_directory_without_an_index_fails_clearly(self, make_index, tmp_path):
        with pytest.raises(IndexNotBuiltError):
            type(make_index({})).load(tmp_path)

    def test_loading_a_damaged_index_fails_clearly(self, make_index, tmp_path) -> None:
        index, path = make_index(), tmp_path / "index"
        index.saved_and_loaded(path)
        for file in path.iterdir():
            file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
        with pytest.raises(IndexMismatchError, match="damaged"):
            type(index).load(path)

    def test_an_empty_index_returns_no_hits(self, make_index) -> None:
        index = make_index({})
        assert index.search("dogs", k=5) == []
        assert len(index) == 0
        assert len(index.ids()) == 0

    def test_an_empty_index_survives_save_and_load(self, make_index, tmp_path) -> None:
        loaded = make_index({}).saved_and_loaded(tmp_path)
        assert loaded.search("dogs", k=5) == []

    def test_an_index_emptied_by_removal_returns_no_hits(self, make_index) -> None:
        index = make_index()
        assert index.remove(list(CORPUS)) == len(CORPUS)
        assert index.search("dogs bark postman", k=5) == []

    def test_removed_ids_disappear_and_the_rest_match_a_fresh_index(self, make_index) -> None:
        index = make_index()
        assert index.remove([12, 15, 999]) == 2
        fresh = make_index({i: text for i, text in CORPUS.items() if i not in (12, 15)})
        for query in QUERIES:
            hits = index.search(query, k=8)
            assert {12, 15}.isdisjoint(hit.chunk_id for hit in hits)
            assert_same_hits(hits, fresh.search(query, k=8))

    def test_re_adding_an_id_replaces_it(self, make_index) -> None:
        index = make_index()
        index.add([12], ["whales sing deep songs"])
        replaced = make_index({**CORPUS, 12: "whales sing deep songs"})
        assert len(index) == len(CORPUS)
        assert index.search("whales sing", k=1)[0].chunk_id == 12
        for query in QUERIES:
            assert_same_hits(index.search(query, k=8), replaced.search(query, k=8))

    def test_a_repeated_id_in_one_call_keeps_its_last_text(self, make_index) -> None:
        index = make_index({})
        index.add([1, 2, 3, 1], ["dogs bark", "cats purr", "owls hunt", "whales sing"])
        assert len(index) == 3
        assert index.search("whales sing", k=1)[0].chunk_id == 1

    def test_ids_match_what_was_added(self, make_index) -> None:
        ids = make_index().ids()
        assert ids.dtype == np.int64
        np.testing.assert_array_equal(ids, sorted(CORPUS))


class TestFaissIndex:
    def test_vectors_of_another_dimension_are_rejected(self) -> None:
        with pytest.raises(IndexMismatchError, match="dimension 32"):
            FaissIndex(DIMENSION).add([1], np.ones((1, 32), dtype=np.float32))

    def test_a_query_of_another_dimension_is_rejected(self) -> None:
        index = DenseSubject()
        index.add([1], ["dogs bark"])
        with pytest.raises(IndexMismatchError):
            index.index.search(np.ones(32, dtype=np.float32), k=1)

    def test_loading_for_another_dimension_is_rejected(self, tmp_path) -> None:
        FaissIndex(DIMENSION).save(tmp_path)
        with pytest.raises(IndexMismatchError, match="384"):
            FaissIndex.load(tmp_path, dimension=384)

    def test_scores_are_cosine_similarities(self) -> None:
        index = FaissIndex(2)
        index.add([1, 2], np.array([[3.0, 0.0], [1.0, 1.0]]))
        hits = index.search(np.array([2.0, 0.0]), k=2)
        assert [(hit.chunk_id, round(hit.score, 6)) for hit in hits] == [(1, 1.0), (2, 0.707107)]

    def test_search_batch_answers_each_query(self) -> None:
        subject = DenseSubject()
        subject.add(list(CORPUS), list(CORPUS.values()))
        batch = subject.index.search_batch(hashing_embeddings(QUERIES), k=3)
        assert batch == [subject.search(query, k=3) for query in QUERIES]
