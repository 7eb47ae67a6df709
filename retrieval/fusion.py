"""Fusion of ranked result lists into one ranking (pure functions).

Two families: rank-based fusion (reciprocal rank fusion), which ignores scores, and score-based
fusion (a weighted sum of normalised scores), which keeps how far apart the hits of a list are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import sqrt

from .types import Hit

# k=60 is the constant of Cormack, Clarke and Buettcher (SIGIR 2009): it damps the weight of
# the very first ranks so that one list cannot dominate the fused order.
RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], k: int = RRF_K) -> list[Hit]:
    """Fuse rankings by summing 1 / (k + rank) over the lists each chunk appears in.

    Source: G. V. Cormack, C. L. A. Clarke, S. Buettcher, "Reciprocal Rank Fusion outperforms
    Condorcet and individual Rank Learning Methods", SIGIR 2009.

    Parameters:
        rankings: lists of hits, each sorted best first; scores are ignored, ranks start at 1.
        k: the damping constant, >= 0 (60 in the paper).

    Returns hits sorted by fused score, ties broken by chunk id so the order is deterministic.
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + rank)
    return _sorted_hits(scores)


def weighted_fusion(
    rankings: Sequence[Sequence[Hit]],
    weights: Sequence[float],
    normalisation: str = "minmax",
) -> list[Hit]:
    """Fuse rankings by a weighted sum of each list's normalised scores.

    A chunk missing from a list gets 0 from that list, which under min-max is the score of that
    list's last hit. With weights summing to 1 and min-max scores this is the convex combination
    that Bruch, Gai and Ingber found to beat reciprocal rank fusion in and out of domain once
    its weight is tuned: S. Bruch, S. Gai, A. Ingber, "An Analysis of Fusion Functions for Hybrid
    Retrieval", ACM TOIS 42(1), 2023 (arXiv:2210.11934).

    Parameters:
        rankings: lists of hits with their raw scores (higher is better), one list per retriever.
        weights: one non-negative weight per list.
        normalisation: "minmax" maps each list to [0, 1] ((s - min) / (max - min); a list whose
            scores are all equal maps to 1); "zscore" maps it to (s - mean) / standard deviation
            (0 when the deviation is 0). Under z-scores a missing chunk's 0 is a list's mean, so
            it can outrank hits that were retrieved below the mean.

    Returns hits with fused scores, best first, ties broken by chunk id.

    Raises:
        ValueError: if the numbers of rankings and weights differ, a weight is negative, or the
            normalisation is unknown.
    """
    if len(rankings) != len(weights):
        raise ValueError(f"Got {len(rankings)} rankings for {len(weights)} weights.")
    if any(weight < 0 for weight in weights):
        raise ValueError(f"Fusion weights must be non-negative, got {list(weights)}.")
    normalise = _NORMALISATIONS.get(normalisation)
    if normalise is None:
        known = ", ".join(sorted(_NORMALISATIONS))
        raise ValueError(f"Unknown normalisation {normalisation!r}; known: {known}.")
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        normalised = normalise([hit.score for hit in ranking])
        for hit, score in zip(ranking, normalised, strict=True):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight * score
    return _sorted_hits(scores)


def min_max_normalised(scores: Sequence[float]) -> list[float]:
    """Scale scores to [0, 1]: (s - min) / (max - min); all 1.0 when every score is equal."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high == low:
        return [1.0] * len(scores)
    return [(score - low) / (high - low) for score in scores]


def z_score_normalised(scores: Sequence[float]) -> list[float]:
    """Standardise scores: (s - mean) / population standard deviation; all 0.0 when it is 0."""
    if not scores:
        return []
    mean = sum(scores) / len(scores)
    deviation = sqrt(sum((score - mean) ** 2 for score in scores) / len(scores))
    if deviation == 0:
        return [0.0] * len(scores)
    return [(score - mean) / deviation for score in scores]


_NORMALISATIONS: dict[str, Callable[[Sequence[float]], list[float]]] = {
    "minmax": min_max_normalised,
    "zscore": z_score_normalised,
}


def _sorted_hits(scores: dict[int, float]) -> list[Hit]:
    """Hits best first; equal scores in ascending chunk id order."""
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [Hit(chunk_id, score) for chunk_id, score in ordered]
