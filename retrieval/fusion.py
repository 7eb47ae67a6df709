"""Fusion of ranked result lists (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence

from .types import Hit

# k=60 is the constant of Cormack, Clarke and Buettcher (SIGIR 2009): it damps the weight of
# the very first ranks so that one list cannot dominate the fused order.
RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], k: int = RRF_K) -> list[Hit]:
    """Fuse rankings by summing 1 / (k + rank) over the lists each chunk appears in.

    rankings: lists of hits, each sorted best first. Returns hits sorted by fused score
    (ties broken by chunk id, so the order is deterministic).
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + rank)
    return [
        Hit(chunk_id, score)
        for chunk_id, score in sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    ]
