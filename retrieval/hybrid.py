"""Hybrid search: a dense and a BM25 ranking over the chosen knowledge bases, fused into one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .dense import FaissIndex
from .embedders import Embedder
from .fusion import RRF_K, reciprocal_rank_fusion, weighted_fusion
from .sparse import Bm25Index, pooled_idf
from .text import language_of
from .types import Hit

FUSIONS = ("rrf", "weighted")
NORMALISATIONS = ("minmax", "zscore")


class HybridRetriever:
    """Search dense and BM25 indexes of some knowledge bases and fuse the two rankings.

    Only the index pairs given are searched, so choosing them is the knowledge-base filter.
    The query is embedded once. Each kind of index contributes one ranking: the hits of every
    pair are merged by score and cut to `depth`. Cosine scores of one model compare across
    knowledge bases; BM25 scores are made comparable by scoring every base with the idf of the
    bases taken together (`sparse.pooled_idf`), so a small base's own statistics do not skew them.

    Parameters:
        embedder: embeds queries; must be the model the dense indexes were built with.
        indexes: one (FaissIndex, Bm25Index) pair per knowledge base; chunk ids must be unique
            across pairs (a chunk found in two pairs keeps its best score).
        depth: candidates taken from each ranking before fusion, >= 1 (raised to k if smaller).
        fusion: "rrf" (reciprocal rank fusion, constant `rrf_k`) or "weighted" (min-max
            normalised scores, dense weighted `dense_weight` and BM25 1 - `dense_weight`).
        dense_weight: weight of the dense ranking in [0, 1]; used by "weighted" only.
        normalisation: how "weighted" puts each ranking's scores on one scale before adding
            them: "minmax" or "zscore" (`fusion.weighted_fusion`).
        rrf_k: the reciprocal rank fusion constant, >= 0; used by "rrf" only.
        uncovered_dense_weight: the dense weight for a query in a language the embedder does
            not cover (`embedder.languages`; "zh" for a mostly Chinese query, else "en"). At 0,
            the default, such a query is not embedded and BM25 ranks alone: on CMRC 2018's
            Chinese questions all-MiniLM-L6-v2 (English-only) scores nDCG@10 0.23 against BM25's
            0.98, and any dense weight from 0.05 to 0.3 changes BM25's score by at most 0.001
            (0.5 loses 0.11).

    Raises:
        ValueError: for an unknown fusion, depth < 1, dense_weight outside [0, 1] or rrf_k < 0.

    Example (embedder and indexes built as in their own modules):
        >>> retriever = HybridRetriever(embedder, [(dense, sparse)], fusion="weighted")
        >>> [hit.chunk_id for hit in retriever.search("how do I reset my password", k=3)]
        [12, 7, 31]
    """

    def __init__(
        self,
        embedder: Embedder,
        indexes: Sequence[tuple[FaissIndex, Bm25Index]],
        depth: int = 100,
        fusion: str = "rrf",
        dense_weight: float = 0.5,
        rrf_k: int = RRF_K,
        uncovered_dense_weight: float = 0.0,
        normalisation: str = "minmax",
    ) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"Unknown fusion {fusion!r}; known: {', '.join(FUSIONS)}.")
        if normalisation not in NORMALISATIONS:
            known = ", ".join(NORMALISATIONS)
            raise ValueError(f"Unknown normalisation {normalisation!r}; known: {known}.")
        if depth < 1:
            raise ValueError(f"The depth must be at least 1, got {depth}.")
        for weight in (dense_weight, uncovered_dense_weight):
            if not 0 <= weight <= 1:
                raise ValueError(f"The dense weight must be in [0, 1], got {weight}.")
        if rrf_k < 0:
            raise ValueError(f"The RRF constant must be >= 0, got {rrf_k}.")
        self.embedder = embedder
        self.indexes = list(indexes)
        self.depth = depth
        self.fusion = fusion
        self.dense_weight = dense_weight
        self.rrf_k = rrf_k
        self.uncovered_dense_weight = uncovered_dense_weight
        self.normalisation = normalisation

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """Return the k best chunks for a query, best first, with fused scores."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """Return the hits of each query, as `search` would, embedding all queries in one batch."""
        if not queries:
            return []
        embedded = [query for query in queries if self.dense_weight_for(query) > 0]
        vectors = (
            dict(zip(embedded, self.embedder.embed(embedded), strict=True)) if embedded else {}
        )
        return [self.search_vector(query, vectors.get(query), k) for query in queries]

    def dense_weight_for(self, query: str) -> float:
        """The dense ranking's weight for query: dense_weight when the embedder covers the
        query's language, else uncovered_dense_weight."""
        languages = getattr(self.embedder, "languages", None)
        if languages is None or language_of(query) in languages:
            return self.dense_weight if self.fusion == "weighted" else 1.0
        return self.uncovered_dense_weight

    def search_vector(self, query: str, vector: np.ndarray | None, k: int = 10) -> list[Hit]:
        """Return the k best chunks for a query whose embedding the caller already has (None
        for a query whose dense weight is 0: BM25 ranks alone)."""
        if k <= 0:
            return []
        depth = max(self.depth, k)
        sparse_indexes = [pair[1] for pair in self.indexes]
        idf = pooled_idf(sparse_indexes, query) if len(sparse_indexes) > 1 else None
        sparse = _merged([index.search(query, depth, idf) for index in sparse_indexes], depth)
        weight = self.dense_weight_for(query)
        if weight <= 0 or vector is None:
            return sparse[:k]
        dense = _merged([pair[0].search(vector, depth) for pair in self.indexes], depth)
        return self.fused([dense, sparse], weight)[:k]

    def fused(
        self, rankings: Sequence[Sequence[Hit]], dense_weight: float | None = None
    ) -> list[Hit]:
        """Fuse a dense and a sparse ranking (in that order) with this retriever's settings
        (dense_weight, when given, instead of the retriever's)."""
        if self.fusion == "rrf":
            return reciprocal_rank_fusion(rankings, k=self.rrf_k)
        weight = self.dense_weight if dense_weight is None else dense_weight
        return weighted_fusion(rankings, [weight, 1.0 - weight], self.normalisation)


def _merged(rankings: Sequence[Sequence[Hit]], depth: int) -> list[Hit]:
    """One ranking from several by score (ties: lower chunk id), cut to depth."""
    if len(rankings) == 1:
        return list(rankings[0][:depth])
    best: dict[int, float] = {}
    for ranking in rankings:
        for hit in ranking:
            best[hit.chunk_id] = max(hit.score, best.get(hit.chunk_id, hit.score))
    ordered = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:depth]
    return [Hit(chunk_id, score) for chunk_id, score in ordered]
