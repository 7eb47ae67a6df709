"""Ranking quality per query, as BEIR defines it: nDCG@k, Recall@k and MRR@k (pure functions).

BEIR (Thakur et al., NeurIPS 2021 Datasets and Benchmarks, https://github.com/beir-cellar/beir)
computes nDCG@k and Recall@k with pytrec_eval, which wraps trec_eval (9.0.x, measures
`ndcg_cut.k` and `recall.k`), and MRR@k with its own code; all three are averaged over the
queries of the qrels. The functions here take one query: a ranking (ids best first, each once)
and its judgements (id -> graded relevance; ids not judged count as 0, as do grades <= 0).

Differences from running pytrec_eval on a score dictionary: ties are taken in the order given,
where trec_eval re-sorts equal scores by document id; and BEIR by default drops hits whose id
equals the query id (`ignore_identical_ids`), which the caller does if its data need it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from math import log2
from typing import TypeVar

Id = TypeVar("Id", bound=Hashable)


def ndcg_at_k(ranking: Sequence[Id], relevance: Mapping[Id, float], k: int) -> float:
    """Normalised discounted cumulative gain of the first k results, in [0, 1].

    DCG@k = sum over ranks r = 1..k of gain(r) / log2(r + 1), where gain is the relevance grade
    itself (linear: trec_eval's ndcg "gain values are the relevance values in the qrels file",
    not 2^rel - 1). The ideal DCG@k is that of the judged relevant ids sorted by grade, so
    relevant ids missing from the ranking lower the score. Returns 0.0 when nothing is relevant
    (trec_eval leaves such a query at 0; BEIR never evaluates one, as it has no qrels).

    Sources: K. Järvelin, J. Kekäläinen, "Cumulated gain-based evaluation of IR techniques",
    ACM TOIS 20(4), 2002; trec_eval's m_ndcg_cut.c, run by pytrec_eval in BEIR.

    Raises:
        ValueError: for k < 1 or an id repeated in the first k results.
    """
    top = _top(ranking, k)
    gains = [_grade(relevance, item) for item in top]
    ideal = sorted((grade for grade in relevance.values() if grade > 0), reverse=True)[:k]
    ideal_dcg = _dcg(ideal)
    return _dcg(gains) / ideal_dcg if ideal_dcg > 0 else 0.0


def recall_at_k(ranking: Sequence[Id], relevance: Mapping[Id, float], k: int) -> float:
    """Share of the relevant ids found in the first k results, in [0, 1].

    Recall@k = |relevant ids in the top k| / |relevant ids|, relevant meaning a grade > 0
    (trec_eval's `recall.k` at its default relevance level 1 for integer grades). Returns 0.0
    when nothing is relevant.

    Source: trec_eval's m_recall.c, run by pytrec_eval in BEIR.

    Raises:
        ValueError: for k < 1 or an id repeated in the first k results.
    """
    relevant = sum(1 for grade in relevance.values() if grade > 0)
    if relevant == 0:
        return 0.0
    found = sum(1 for item in _top(ranking, k) if _grade(relevance, item) > 0)
    return found / relevant


def mrr_at_k(ranking: Sequence[Id], relevance: Mapping[Id, float], k: int) -> float:
    """Reciprocal rank of the first relevant id in the top k: 1 / rank, or 0.0 if none is there.

    Averaged over queries this is MRR@k. Relevant means a grade > 0, as in BEIR's own
    `mrr` (beir/retrieval/custom_metrics.py), which pytrec_eval does not provide with a cutoff.

    Source: E. M. Voorhees, "The TREC-8 Question Answering Track Report", TREC 1999; BEIR.

    Raises:
        ValueError: for k < 1 or an id repeated in the first k results.
    """
    for rank, item in enumerate(_top(ranking, k), start=1):
        if _grade(relevance, item) > 0:
            return 1.0 / rank
    return 0.0


def _top(ranking: Sequence[Id], k: int) -> Sequence[Id]:
    if k < 1:
        raise ValueError(f"The cutoff k must be at least 1, got {k}.")
    top = ranking[:k]
    if len(set(top)) != len(top):
        raise ValueError("A ranking must list each id once.")
    return top


def _grade(relevance: Mapping[Id, float], item: Id) -> float:
    return max(float(relevance.get(item, 0.0)), 0.0)


def _dcg(gains: Sequence[float]) -> float:
    """Sum of gain / log2(rank + 1) over ranks 1, 2, ..."""
    return sum(gain / log2(rank + 1) for rank, gain in enumerate(gains, start=1) if gain > 0)
