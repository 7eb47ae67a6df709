"""Index deltas: what one publish changes in a knowledge base's indexes, as one small file.

A delta holds the chunks it adds (ids, vectors, texts) and the chunk ids it deletes. Applying it
to an IndexPair removes the deleted ids, then adds the chunks (an id already present is
replaced), so applying a delta costs what its own chunks cost, whatever the size of the index.

Deltas combine: `earlier.then(later)` has the effect of applying both in turn. A combined delta
sets every id it touches to its final state, so it may also be applied over a pair that already
holds a prefix of what it combines (a web process that had applied `earlier` alone).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import IndexMismatchError
from retrieval.ids import as_ids, last_occurrences

if TYPE_CHECKING:  # the store imports this module
    from retrieval.store import IndexPair


@dataclass(frozen=True)
class IndexDelta:
    """Chunks to add (ids, their vectors and texts, row by row) and chunk ids to delete."""

    ids: np.ndarray  # int64, no repeats
    vectors: np.ndarray  # float32, shape (len(ids), dimension)
    texts: tuple[str, ...]
    deleted: np.ndarray  # int64, sorted, no repeats

    @classmethod
    def of(
        cls,
        ids: Sequence[int] | np.ndarray = (),
        vectors: np.ndarray | None = None,
        texts: Sequence[str] = (),
        deleted: Sequence[int] | np.ndarray = (),
    ) -> IndexDelta:
        """A delta from plain values; if an added id repeats, its last row wins.

        Raises:
            ValueError: if ids, vectors and texts differ in number.
        """
        id_array = as_ids(ids)
        matrix = np.zeros((0, 0), np.float32) if vectors is None else np.asarray(vectors)
        if not len(id_array) == len(matrix) == len(texts):
            raise ValueError(
                f"Got {len(id_array)} ids, {len(matrix)} vectors and {len(texts)} texts."
            )
        id_array, keep = last_occurrences(id_array)
        return cls(
            id_array,
            np.ascontiguousarray(matrix[keep], dtype=np.float32),
            tuple(texts[i] for i in keep),
            np.unique(as_ids(deleted)),
        )

    def __len__(self) -> int:
        """Rows the delta holds: added chunks plus deleted ids."""
        return len(self.ids) + len(self.deleted)

    def apply(self, pair: IndexPair) -> None:
        """Delete, then add, in both indexes of pair."""
        if len(self.deleted):
            pair.dense.remove(self.deleted)
            pair.sparse.remove(self.deleted)
        if len(self.ids):
            pair.dense.add(self.ids, self.vectors)
            pair.sparse.add(self.ids, list(self.texts))

    def then(self, later: IndexDelta) -> IndexDelta:
        """One delta with the effect of applying self, then later."""
        if not len(self.ids):
            return IndexDelta.of(later.ids, later.vectors, later.texts, self._deleted(later))
        overridden = np.concatenate([later.ids, later.deleted])
        keep = np.flatnonzero(~np.isin(self.ids, overridden))
        vectors = self.vectors[keep]
        if len(later.ids):
            vectors = np.concatenate([vectors, later.vectors])
        return IndexDelta.of(
            np.concatenate([self.ids[keep], later.ids]),
            vectors,
            [self.texts[i] for i in keep] + list(later.texts),
            self._deleted(later),
        )

    def _deleted(self, later: IndexDelta) -> np.ndarray:
        return np.union1d(self.deleted, later.deleted)

    def save(self, path: Path) -> None:
        """Write the delta as one file `path` (an .npz), fsynced."""
        encoded = [text.encode("utf-8") for text in self.texts]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        arrays = {
            "ids": self.ids,
            "vectors": self.vectors,
            "deleted": self.deleted,
            "text_offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "text_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        }
        with open(path, "xb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)
            handle.flush()
            os.fsync(handle.fileno())

    @classmethod
    def load(cls, path: Path) -> IndexDelta:
        """Read a delta written by `save`.

        Raises:
            IndexMismatchError: if its file is missing, damaged or inconsistent.
        """
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
            offsets, data = arrays["text_offsets"], arrays["text_bytes"].tobytes()
            texts = [
                data[start:stop].decode("utf-8")
                for start, stop in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
            ]
            return cls.of(arrays["ids"], arrays["vectors"], texts, arrays["deleted"])
        except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as error:
            raise IndexMismatchError(
                f"The index delta {path} is damaged or incomplete; rebuild the index."
            ) from error
