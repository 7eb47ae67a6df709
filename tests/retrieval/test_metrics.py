"""BEIR's ranking metrics on cases worked out by hand."""

from __future__ import annotations

from math import log2

import pytest

from retrieval.metrics import mrr_at_k, ndcg_at_k, recall_at_k


def test_ndcg_discounts_by_log2_of_rank_plus_one_against_the_ideal_from_the_qrels():
    # Relevant at ranks 1 and 3; d is relevant but not retrieved.
    relevance = {"a": 1, "c": 1, "d": 1}
    dcg = 1 + 1 / log2(4)  # 1.5
    ideal = 1 + 1 / log2(3) + 1 / log2(4)  # 2.1309
    assert ndcg_at_k(["a", "b", "c"], relevance, k=3) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["a", "b", "c"], relevance, k=3) == pytest.approx(0.703918, abs=1e-6)


def test_ndcg_gain_is_the_grade_itself_not_two_to_the_grade_minus_one():
    relevance = {"a": 2, "b": 1}
    dcg = 1 + 2 / log2(3)  # b first, then a
    ideal = 2 + 1 / log2(3)
    assert ndcg_at_k(["b", "a"], relevance, k=2) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["b", "a"], relevance, k=2) == pytest.approx(0.859719, abs=1e-6)


def test_ndcg_is_one_for_a_perfect_top_k_even_with_more_relevant_ids_below_it():
    relevance = {"a": 1, "b": 1, "c": 1, "d": 1}
    assert ndcg_at_k(["a", "b", "x", "c"], relevance, k=2) == pytest.approx(1.0)


def test_ndcg_ignores_hits_past_the_cutoff_and_non_positive_grades():
    relevance = {"a": 1, "z": 0, "n": -1}
    assert ndcg_at_k(["z", "n", "x", "a"], relevance, k=3) == 0.0
    assert ndcg_at_k(["z", "n", "x", "a"], relevance, k=4) == pytest.approx(1 / log2(5))


def test_a_query_with_nothing_relevant_scores_zero():
    assert ndcg_at_k(["a"], {"a": 0}, k=10) == 0.0
    assert recall_at_k(["a"], {}, k=10) == 0.0
    assert mrr_at_k(["a"], {}, k=10) == 0.0


def test_recall_is_relevant_found_in_the_top_k_over_all_relevant():
    relevance = {"a": 1, "b": 2, "c": 1, "d": 1}
    ranking = ["a", "x", "b", "y", "c"]
    assert recall_at_k(ranking, relevance, k=3) == pytest.approx(2 / 4)
    assert recall_at_k(ranking, relevance, k=5) == pytest.approx(3 / 4)


def test_mrr_is_one_over_the_rank_of_the_first_relevant_hit_within_k():
    relevance = {"c": 1, "e": 1}
    ranking = ["a", "b", "c", "d", "e"]
    assert mrr_at_k(ranking, relevance, k=10) == pytest.approx(1 / 3)
    assert mrr_at_k(ranking, relevance, k=2) == 0.0


def test_metrics_work_on_integer_ids_and_short_rankings():
    assert recall_at_k([7], {7: 1, 8: 1}, k=100) == 0.5
    assert mrr_at_k([], {7: 1}, k=10) == 0.0


def test_metrics_reject_a_repeated_id_or_a_cutoff_below_one():
    with pytest.raises(ValueError, match="once"):
        ndcg_at_k(["a", "a"], {"a": 1}, k=2)
    with pytest.raises(ValueError, match="at least 1"):
        recall_at_k(["a"], {"a": 1}, k=0)
