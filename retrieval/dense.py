"""FAISS index over chunk ids: add, remove, search by cosine similarity, save and load.

Vectors are L2-normalised on the way in, so inner product is cosine similarity. Today every
index is exact (`kind="flat"`); an approximate kind (HNSW or IVF-PQ, picked above a size
threshold) plugs in through `_INDEX_BUILDERS` without changing callers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retrieval.errors import IndexMismatchError, IndexNotBuiltError
from retrieval.files import fsync_path
from retrieval.ids import as_ids, last_occurrences
from retrieval.types import Hit

FORMAT_VERSION = 1
INDEX_FILE = "dense.faiss"
META_FILE = "dense.json"

_INDEX_BUILDERS: dict[str, Callable[[int], Any]] = {
    # IndexIDMap2 keeps a reverse id map, so ids can be removed and listed.
    "flat": lambda dimension: faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)),
}


class FaissIndex:
    """Dense vector index of chunks, identified by int64 chunk ids, searched by cosine.

    Parameters:
        dimension: length of the embedding vectors, > 0.
        kind: index structure; only "flat" (exact search) for now.

    Raises:
        ValueError: for a dimension <= 0 or an unknown kind.

    Not safe for adding or removing while another thread searches.

    Example:
        >>> index = FaissIndex(dimension=3)
        >>> index.add([7, 8], np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
        >>> index.search(np.array([0.9, 0.1, 0], dtype=np.float32), k=1)[0].chunk_id
        7
    """

    def __init__(self, dimension: int, kind: str = "flat") -> None:
        if dimension <= 0:
            raise ValueError(f"The dimension must be positive, got {dimension}.")
        if kind not in _INDEX_BUILDERS:
            known = ", ".join(sorted(_INDEX_BUILDERS))
            raise ValueError(f"Unknown index kind {kind!r}; known kinds: {known}.")
        self.dimension = dimension
        self.kind = kind
        self._index = _INDEX_BUILDERS[kind](dimension)
        self._ids: set[int] = set()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """Return the chunk ids in the index, ascending (int64)."""
        return np.sort(faiss.vector_to_array(self._index.id_map).astype(np.int64))

    def vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Return the stored (normalised) vectors of the given chunk ids, in that order.

        Raises:
            KeyError: if an id is not in the index.
        """
        wanted = as_ids(ids)
        stored_ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        order = np.argsort(stored_ids)
        positions = np.searchsorted(stored_ids, wanted, sorter=order)
        positions = np.minimum(positions, max(len(stored_ids) - 1, 0))
        if len(wanted) and (not len(stored_ids) or np.any(stored_ids[order[positions]] != wanted)):
            raise KeyError("Some ids are not in the dense index.")
        matrix = self._index.index.reconstruct_n(0, len(self)) if len(self) else None
        if matrix is None:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return matrix[order[positions]]

    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Index vectors; an id already present is replaced.

        Parameters:
            ids: chunk ids, one per row; if an id repeats, its last vector wins.
            vectors: array of shape (n, dimension); normalised here.

        Raises:
            IndexMismatchError: if the vectors have another dimension.
            ValueError: if ids and vectors differ in number or ids are not integers.
        """
        id_array = as_ids(ids)
        matrix = self._normalised(vectors)
        if len(id_array) != len(matrix):
            raise ValueError(f"Got {len(id_array)} ids for {len(matrix)} vectors.")
        id_array, keep = last_occurrences(id_array)
        matrix = np.ascontiguousarray(matrix[keep])
        self.remove(id_array)
        self._index.add_with_ids(matrix, id_array)
        self._ids.update(id_array.tolist())

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Remove vectors by chunk id and return how many were present.

        A flat index shifts the vectors after each removed one, so this costs O(n * dimension).
        """
        present = sorted(self._ids.intersection(as_ids(ids).tolist()))
        if not present:
            return 0
        self._index.remove_ids(np.array(present, dtype=np.int64))
        self._ids.difference_update(present)
        return len(present)

    def search(self, query: np.ndarray, k: int = 10) -> list[Hit]:
        """Return the k chunks most similar to one query vector, best first (ties: lower id).

        Parameters:
            query: array of shape (dimension,) or (1, dimension).
            k: number of hits wanted; fewer come back when the index holds fewer.

        Raises:
            IndexMismatchError: if the query has another dimension.
            ValueError: for several queries at once (use `search_batch`).
        """
        vector = np.asarray(query)
        if vector.ndim == 2 and vector.shape[0] == 1:
            vector = vector[0]
        if vector.ndim != 1:
            raise ValueError("search takes one query vector; use search_batch for several.")
        return self.search_batch(vector[np.newaxis, :], k)[0]

    def search_batch(self, queries: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """Return the hits of each row of `queries` (shape (q, dimension)), as for `search`.

        Raises:
            IndexMismatchError: if the queries have another dimension.
        """
        matrix = self._normalised(queries)
        if k <= 0 or len(self) == 0:
            return [[] for _ in range(len(matrix))]
        scores, ids = self._index.search(matrix, min(k, len(self)))
        return [_hits(row_scores, row_ids) for row_scores, row_ids in zip(scores, ids, strict=True)]

    def save(self, path: Path) -> None:
        """Write the index into directory `path` (created if missing), files fsynced.

        Writes dense.faiss and dense.json; publishing the directory atomically is the caller's job.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(path / INDEX_FILE))
        fsync_path(path / INDEX_FILE)
        meta = {"format": FORMAT_VERSION, "kind": self.kind, "dimension": self.dimension}
        meta["count"] = len(self)
        with open(path / META_FILE, "w", encoding="utf-8") as handle:
            json.dump(meta, handle)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_path(path)

    @classmethod
    def load(cls, path: Path, dimension: int | None = None) -> FaissIndex:
        """Read an index written by `save`.

        Parameters:
            path: the directory given to `save`.
            dimension: the dimension the caller's embedder produces, checked if given.

        Raises:
            IndexNotBuiltError: if `path` holds no saved dense index.
            IndexMismatchError: if the index is of another format, kind or dimension, or its
                files are damaged.
        """
        path = Path(path)
        if not (path / META_FILE).is_file() or not (path / INDEX_FILE).is_file():
            raise IndexNotBuiltError(f"There is no dense index in {path}; build the index first.")
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
            _check_meta(meta, path, dimension)
            index = cls(meta["dimension"], meta["kind"])
            index._index = faiss.read_index(str(path / INDEX_FILE))
        except (OSError, KeyError, TypeError, ValueError, RuntimeError) as error:
            raise IndexMismatchError(
                f"The dense index in {path} is damaged or incomplete; rebuild the index."
            ) from error
        if index._index.d != meta["dimension"] or len(index) != meta["count"]:
            raise IndexMismatchError(f"The dense index in {path} is inconsistent; rebuild it.")
        index._ids = set(faiss.vector_to_array(index._index.id_map).tolist())
        return index

    def _normalised(self, vectors: np.ndarray) -> np.ndarray:
        """Return a float32 copy of 2-d `vectors`, each row scaled to unit length."""
        matrix = np.array(vectors, dtype=np.float32, order="C", copy=True)
        if matrix.ndim != 2:
            raise ValueError(f"Expected a 2-d array of vectors, got shape {matrix.shape}.")
        if matrix.shape[1] != self.dimension:
            raise IndexMismatchError(
                f"Vectors of dimension {matrix.shape[1]} do not fit this index of dimension "
                f"{self.dimension}; was the embedding model changed? Rebuild the index."
            )
        faiss.normalize_L2(matrix)
        return matrix


def _check_meta(meta: dict[str, Any], path: Path, dimension: int | None) -> None:
    if meta.get("format") != FORMAT_VERSION or meta.get("kind") not in _INDEX_BUILDERS:
        raise IndexMismatchError(
            f"The dense index in {path} has format {meta.get('format')} and kind "
            f"{meta.get('kind')!r}, which this version cannot read; rebuild the index."
        )
    if dimension is not None and meta["dimension"] != dimension:
        raise IndexMismatchError(
            f"The dense index in {path} holds vectors of dimension {meta['dimension']}, but the "
            f"embedding model produces {dimension}; rebuild the index."
        )


def _hits(scores: np.ndarray, ids: np.ndarray) -> list[Hit]:
    """Hits from one row of FAISS results; -1 marks an empty place."""
    found = [(float(score), int(i)) for score, i in zip(scores, ids, strict=True) if i != -1]
    found.sort(key=lambda pair: (-pair[0], pair[1]))
    return [Hit(chunk_id, score) for score, chunk_id in found]
