"""Rank fusion and score fusion, checked against sums worked out by hand."""

from __future__ import annotations

import pytest

from retrieval.fusion import (
    min_max_normalised,
    reciprocal_rank_fusion,
    weighted_fusion,
    z_score_normalised,
)
from retrieval.types import Hit


def hits(*pairs: tuple[int, float]) -> list[Hit]:
    return [Hit(chunk_id, score) for chunk_id, score in pairs]


def scores_of(fused: list[Hit]) -> dict[int, float]:
    return {hit.chunk_id: hit.score for hit in fused}


def test_rrf_sums_one_over_k_plus_rank_across_lists():
    fused = reciprocal_rank_fusion([hits((1, 9.0), (2, 5.0)), hits((2, 0.9), (3, 0.1))], k=60)
    assert [hit.chunk_id for hit in fused] == [2, 1, 3]
    assert scores_of(fused) == pytest.approx({2: 1 / 62 + 1 / 61, 1: 1 / 61, 3: 1 / 62})


def test_rrf_ignores_scores_and_breaks_ties_by_chunk_id():
    fused = reciprocal_rank_fusion([hits((9, 100.0)), hits((4, 0.001))])
    assert [hit.chunk_id for hit in fused] == [4, 9]


def test_min_max_maps_a_list_onto_zero_to_one():
    assert min_max_normalised([10.0, 7.0, 4.0]) == pytest.approx([1.0, 0.5, 0.0])


def test_min_max_gives_one_to_a_list_of_equal_scores():
    assert min_max_normalised([3.0, 3.0]) == [1.0, 1.0]
    assert min_max_normalised([]) == []


def test_z_score_uses_the_population_deviation():
    # mean 2, population standard deviation sqrt(2/3)
    assert z_score_normalised([1.0, 2.0, 3.0]) == pytest.approx([-1.224745, 0.0, 1.224745])
    assert z_score_normalised([5.0, 5.0]) == [0.0, 0.0]


def test_weighted_fusion_adds_weighted_min_max_scores():
    dense = hits((1, 0.9), (2, 0.7), (3, 0.5))  # normalised 1, 0.5, 0
    sparse = hits((3, 12.0), (4, 6.0), (1, 2.0))  # normalised 1, 0.4, 0
    fused = weighted_fusion([dense, sparse], [0.7, 0.3])
    expected = {1: 0.7 * 1.0, 2: 0.7 * 0.5, 3: 0.3 * 1.0, 4: 0.3 * 0.4}
    assert scores_of(fused) == pytest.approx(expected)
    assert [hit.chunk_id for hit in fused] == [1, 2, 3, 4]


def test_a_chunk_missing_from_a_list_gets_nothing_from_it():
    fused = weighted_fusion([hits((1, 5.0), (2, 1.0)), hits((3, 2.0), (4, 1.0))], [0.5, 0.5])
    assert scores_of(fused) == pytest.approx({1: 0.5, 3: 0.5, 2: 0.0, 4: 0.0})
    assert [hit.chunk_id for hit in fused] == [1, 3, 2, 4]


def test_weighted_fusion_can_use_z_scores():
    fused = weighted_fusion([hits((1, 3.0), (2, 2.0), (3, 1.0))], [2.0], normalisation="zscore")
    assert scores_of(fused) == pytest.approx({1: 2.449490, 2: 0.0, 3: -2.449490})


def test_weighted_fusion_rejects_bad_arguments():
    with pytest.raises(ValueError, match="weights"):
        weighted_fusion([hits((1, 1.0))], [0.5, 0.5])
    with pytest.raises(ValueError, match="non-negative"):
        weighted_fusion([hits((1, 1.0))], [-1.0])
    with pytest.raises(ValueError, match="normalisation"):
        weighted_fusion([hits((1, 1.0))], [1.0], normalisation="softmax")
