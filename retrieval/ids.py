"""Chunk-id arrays as both indexes take them (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_ids(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Return chunk ids as a one-dimensional int64 array.

    Raises ValueError for anything but a one-dimensional sequence of integers.
    """
    array = np.asarray(ids)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError("Chunk ids must be a one-dimensional sequence of integers.")
    return array.astype(np.int64, copy=False)


def last_occurrences(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop all but the last occurrence of each id; return the kept ids and their positions."""
    _, first_from_end = np.unique(ids[::-1], return_index=True)
    if len(first_from_end) == len(ids):
        return ids, np.arange(len(ids))
    keep = np.sort(len(ids) - 1 - first_from_end)
    return ids[keep], keep
