"""Ties count against the positive in every recall@K: constant scores never look like a good model."""

import numpy as np
import pytest
from scipy.stats import rankdata

from fashionvlp.evaluation.metrics import first_hit_ranks, hits_at_k, recall_at_k
from fashionvlp.evaluation.retrieval import PaperProtocol, full_gallery, paper_protocol

KS = (1, 5, 10)


def test_constant_embeddings_score_at_or_below_chance_under_both_xmr_protocols():
    subs = np.repeat(["s0", "s1", "s2"], 120)
    same = np.ones((len(subs), 8))
    paper = paper_protocol(same, same, subs, PaperProtocol(queries=200, repeats=2))
    full = full_gallery(same, same)
    for result in (paper, full):
        for direction in ("ITR", "TIR"):
            assert result[direction] == {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0}   # ranked last, not first


def test_expected_ties_give_exactly_chance_for_constant_scores():
    scores, relevant = np.zeros((7, 101)), np.zeros((7, 101), bool)
    relevant[np.arange(7), [0, 3, 50, 100, 7, 9, 60]] = True
    assert recall_at_k(scores, relevant, KS, ties="expected") == pytest.approx({k: 100 * k / 101 for k in KS})


@pytest.mark.parametrize("seed", range(6))
def test_pessimistic_ranks_on_heavily_tied_scores_match_scipy_rankdata(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(60, 40)).astype(float)      # 4 distinct values: ties everywhere
    positive = rng.integers(0, 40, 60)
    relevant = np.zeros_like(scores, bool)
    relevant[np.arange(60), positive] = True
    # rankdata's "max" rank of the positive counts every item scoring ≥ it, the positive included.
    reference = np.array([rankdata(-row, method="max")[p] - 1 for row, p in zip(scores, positive)])
    assert np.array_equal(first_hit_ranks(scores, relevant), reference)
    hits = hits_at_k(scores, relevant, KS)
    assert np.array_equal(hits, (reference[:, None] < np.array(KS)).astype(float))


@pytest.mark.parametrize("seed", range(4))
def test_several_positives_and_expected_ties_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(30, 25)).astype(float)
    relevant = rng.random(scores.shape) < 0.08
    relevant[0] = False                                                # a query with no positive: never a hit
    for q in range(30):
        best = scores[q][relevant[q]].max() if relevant[q].any() else None
        rank = 25 if best is None else sum(1 for g in range(25) if not relevant[q, g] and scores[q, g] >= best)
        assert first_hit_ranks(scores, relevant)[q] == rank
    one = np.zeros_like(relevant)
    one[np.arange(30), rng.integers(0, 25, 30)] = True
    expected = hits_at_k(scores, one, KS, ties="expected")
    # Brute force: average the pessimistic hit over many random tie orders (a random tiny jitter).
    trials = np.mean([hits_at_k(scores + 1e-6 * rng.random(scores.shape), one, KS) for _ in range(3000)], axis=0)
    assert np.abs(expected - trials).max() < 0.04


def test_nan_scores_never_count_as_a_hit():
    scores = np.array([[np.nan, 0.1, 0.2]])
    relevant = np.array([[True, False, False]])
    assert recall_at_k(scores, relevant, (1, 2, 3)) == {1: 0.0, 2: 0.0, 3: 100.0}
