"""Rerankers: a second look at the top of the fused ranking, with the query and the texts.

Every reranker takes the query and the fused candidates (best first, with their texts) and
returns the k it ranks best, as hits with its own scores. Three implementations:

- `NoReranker` keeps the fused order;
- `CrossEncoderReranker` scores each (query, text) pair with a sentence-transformers
  cross-encoder (a local folder or a model name);
- `WindowReranker` needs no extra model: it embeds each candidate's full text in overlapping
  windows with the bi-encoder the indexes already use, scores a candidate by its best window
  (max-sim), and fuses that ranking with the fused one by reciprocal rank. It helps where a
  text is longer than the embedding model reads (the index vector covers only the first 256
  tokens). Measured on SciFact it does not help: over the first 40 test queries, reranking
  the top 10 of weighted hybrid with 254-token windows gave nDCG@10 0.834 / 0.812 / 0.790
  (window weight 0.5 / 1 / 2) against 0.841 without it, so it is not the default. Dense
  pseudo-relevance feedback (Rocchio) and RM3 on BM25 were also tried over all 300 queries and
  stayed below the fused list (best 0.7247 and 0.7216 against 0.7264).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .embedders import Embedder
from .errors import RetrievalError
from .fusion import RRF_K, reciprocal_rank_fusion
from .types import Hit


@dataclass(frozen=True)
class Candidate:
    """One chunk of the fused ranking as a reranker sees it: id, text and fused score."""

    chunk_id: int
    text: str
    score: float


class Reranker(Protocol):
    """Reorders fused candidates for a query."""

    name: str

    def rerank(self, query: str, candidates: Sequence[Candidate], k: int) -> list[Hit]: ...


class NoReranker:
    """Keeps the fused order and scores: the reranker used when none is configured."""

    name = "none"

    def rerank(self, query: str, candidates: Sequence[Candidate], k: int) -> list[Hit]:
        """Return the first k candidates as hits, unchanged."""
        return [Hit(candidate.chunk_id, candidate.score) for candidate in candidates[: max(k, 0)]]


class CrossEncoderReranker:
    """Scores (query, text) pairs with a sentence-transformers CrossEncoder.

    Parameters:
        model: a local folder (loaded offline) or a model name, e.g.
            "cross-encoder/ms-marco-MiniLM-L6-v2".
        batch_size: pairs scored per forward pass, >= 1.
        max_length: tokens per pair; longer pairs are truncated (None: the model's maximum).
        device: a torch device name.

    Raises:
        RetrievalError: if the model cannot be loaded (the message names it).

    Example:
        >>> reranker = CrossEncoderReranker("/models/ms-marco-MiniLM-L6-v2")
        >>> reranker.rerank("parental leave", [Candidate(7, "Leave is 16 weeks", 0.3)], k=1)
        [Hit(chunk_id=7, score=0.93)]
    """

    def __init__(
        self,
        model: str,
        batch_size: int = 32,
        max_length: int | None = None,
        device: str = "cpu",
    ) -> None:
        from sentence_transformers import CrossEncoder

        if batch_size < 1:
            raise ValueError(f"The batch size must be at least 1, got {batch_size}.")
        local = Path(model).is_dir()
        try:
            self._model = CrossEncoder(
                model, device=device, max_length=max_length, local_files_only=local
            )
        except (OSError, ValueError) as error:
            raise RetrievalError(f"The reranker model {model!r} could not be loaded.") from error
        self.name = model
        self.batch_size = batch_size

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Return the model's relevance score of each text for the query (higher is better)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        pairs = [(query, text) for text in texts]
        scores = self._model.predict(
            pairs, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(texts))

    def rerank(self, query: str, candidates: Sequence[Candidate], k: int) -> list[Hit]:
        """Return the k candidates the model scores best (ties keep the fused order)."""
        scores = self.scores(query, [candidate.text for candidate in candidates])
        return _ordered(candidates, scores, k)


class WindowReranker:
    """Max-sim over overlapping windows of each candidate, fused with the incoming order.

    Each candidate's text is cut into windows of `window` model tokens, `stride` apart, and
    embedded with the bi-encoder; its window score is the best cosine between the query and
    one of its windows. The candidates are then ordered by reciprocal rank fusion of the
    incoming (fused) ranking and the window ranking, the latter weighted `weight` (RRF terms
    are multiplied by their list's weight). Window vectors are kept in a cache of
    `cache_size` texts, so a text seen again costs nothing.

    Parameters:
        embedder: the bi-encoder (it must offer `split_tokens(text, size)`), usually the one
            the dense index was built with.
        window: tokens per window, 16 ... the embedder's max_tokens.
        stride: tokens between window starts, 1 ... window.
        weight: weight of the window ranking against 1.0 for the incoming one, >= 0.
        rrf_k: the reciprocal rank fusion constant.
        cache_size: texts whose window vectors are kept.

    Raises:
        ValueError: for a window, stride or weight out of range.
    """

    name = "window"

    def __init__(
        self,
        embedder: Embedder,
        window: int = 128,
        stride: int = 64,
        weight: float = 1.0,
        rrf_k: int = RRF_K,
        cache_size: int = 20_000,
    ) -> None:
        if not 16 <= window <= embedder.max_tokens or not 1 <= stride <= window or weight < 0:
            raise ValueError(
                f"Need 16 <= window <= {embedder.max_tokens}, 1 <= stride <= window and "
                f"weight >= 0; got window {window}, stride {stride}, weight {weight}."
            )
        self.embedder = embedder
        self.window = window
        self.stride = stride
        self.weight = weight
        self.rrf_k = rrf_k
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def window_texts(self, text: str) -> list[str]:
        """The overlapping windows of a text (the whole text if it fits in one)."""
        pieces = self.embedder.split_tokens(text, self.stride)
        per_window = self.window // self.stride
        if len(pieces) <= per_window:
            return [text]
        spans, cursor = [], 0
        for piece in pieces:  # pieces are consecutive substrings of text, in order
            start = text.find(piece, cursor)
            spans.append((start, start + len(piece)))
            cursor = start + len(piece)
        last = len(spans) - per_window
        return [text[spans[i][0] : spans[i + per_window - 1][1]] for i in range(last + 1)]

    def seed(self, text: str, vectors: np.ndarray) -> None:
        """Cache window vectors of a text computed elsewhere (shape (windows, dimension))."""
        self._cache[text] = np.asarray(vectors, dtype=np.float32)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def window_scores(self, query_vector: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """Best cosine between the query vector and any window of each text."""
        self._embed_missing(texts)
        return np.array([float(np.max(self._cache[text] @ query_vector)) for text in texts])

    def rerank(self, query: str, candidates: Sequence[Candidate], k: int) -> list[Hit]:
        """Return the k best candidates by fused rank and best-window rank."""
        if not candidates or k <= 0:
            return []
        query_vector = self.embedder.embed([query])[0]
        scores = self.window_scores(query_vector, [candidate.text for candidate in candidates])
        incoming = [Hit(candidate.chunk_id, candidate.score) for candidate in candidates]
        by_window = _ordered(candidates, scores, len(candidates))
        return _weighted_rrf([incoming, by_window], [1.0, self.weight], self.rrf_k)[:k]

    def _embed_missing(self, texts: Sequence[str]) -> None:
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        windows = [self.window_texts(text) for text in missing]
        flat = [piece for pieces in windows for piece in pieces]
        vectors = self.embedder.embed(flat) if flat else np.zeros((0, self.embedder.dimension))
        start = 0
        for text, pieces in zip(missing, windows, strict=True):
            self._cache[text] = np.asarray(vectors[start : start + len(pieces)], dtype=np.float32)
            start += len(pieces)
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _ordered(candidates: Sequence[Candidate], scores: np.ndarray, k: int) -> list[Hit]:
    """Candidates as hits with new scores, best first; equal scores keep the incoming order."""
    order = sorted(range(len(candidates)), key=lambda i: (-float(scores[i]), i))[: max(k, 0)]
    return [Hit(candidates[i].chunk_id, float(scores[i])) for i in order]


def _weighted_rrf(rankings: Sequence[Sequence[Hit]], weights: Sequence[float], k: int) -> list[Hit]:
    """Reciprocal rank fusion with one weight per ranking (equal weights: plain RRF)."""
    if len(set(weights)) == 1:
        return reciprocal_rank_fusion(rankings, k=k)
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (k + rank)
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [Hit(chunk_id, score) for chunk_id, score in ordered]
