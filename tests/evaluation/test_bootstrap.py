"""Per-unit outcomes and their seeded bootstrap: the point value is the headline, intervals are
reproducible and stratified, the paired difference shares resamples, small samples warn."""

import numpy as np
import pytest

from fashionvlp.evaluation.bootstrap import BootstrapWarning, PairingError, interval, paired_difference
from fashionvlp.evaluation.outcomes import (MeanOutcome, RecallAtPrecisionOutcome, read_outcomes,
                                            weighted_recall_at_precision, write_outcomes)
from fashionvlp.tasks.attributes import _operating_point


def test_mean_interval_is_seeded_covers_the_value_and_matches_the_binomial_width():
    rng = np.random.default_rng(0)
    hits = (rng.random(2000) < 0.3) * 100.0
    outcome = MeanOutcome.rows([f"p{i}" for i in range(2000)], hits)
    a, b = interval(outcome, seed=3), interval(outcome, seed=3)
    assert a == b and a.value == pytest.approx(hits.mean())
    assert a.ci_low < a.value < a.ci_high
    half_width = 1.96 * np.sqrt(0.3 * 0.7 / 2000) * 100                 # normal approximation
    assert (a.ci_high - a.ci_low) / 2 == pytest.approx(half_width, rel=0.15)
    assert interval(outcome, seed=4) != a


def test_rows_of_one_unit_are_resampled_together_and_strata_keep_equal_weight():
    # Unit u0 has 3 rows: the statistic is the mean over rows, and resampling moves all 3 at once.
    pooled = MeanOutcome.rows(["u0", "u0", "u0", "u1"], [100, 100, 100, 0])
    assert pooled.statistic(np.ones((1, 2)))[0] == pytest.approx(75.0)
    assert list(pooled.counts) == [3, 1]
    # Two strata of unequal size: the headline is the mean of the two stratum means.
    stratified = MeanOutcome.rows([f"q{i}" for i in range(40)], [100.0] * 10 + [0.0] * 30, ["a"] * 10 + ["b"] * 30)
    assert stratified.statistic(np.ones((1, 40)))[0] == pytest.approx(50.0)
    # All of stratum a scores 100 and all of b scores 0: stratified resampling cannot move the mean.
    ci = interval(stratified)
    assert ci.ci_low == ci.ci_high == 50.0


@pytest.mark.parametrize("seed", range(4))
def test_weighted_recall_at_precision_equals_the_sklearn_operating_point(seed):
    rng = np.random.default_rng(seed)
    n = 300
    truth = np.where(rng.random(n) < 0.15, -1, rng.integers(0, 4, n))
    top = np.where(rng.random(n) < 0.7, truth, rng.integers(0, 4, n))
    confidence = np.round(rng.random(n) * (0.5 + 0.5 * (top == truth)), 2)      # rounded: many ties
    expected, _, _ = _operating_point(truth, top, confidence)
    correct = np.where(truth >= 0, (top == truth).astype(int), -1)
    ours = weighted_recall_at_precision(correct, confidence, np.ones((1, n)), 0.9)[0]
    assert ours == pytest.approx(expected)
    # Counting a unit twice is the same as duplicating it.
    weights = rng.integers(0, 3, size=(1, n)).astype(float)
    duplicated = np.repeat(np.arange(n), weights[0].astype(int))
    again, _, _ = _operating_point(truth[duplicated], top[duplicated], confidence[duplicated])
    assert weighted_recall_at_precision(correct, confidence, weights, 0.9)[0] == pytest.approx(again)


def test_paired_difference_of_a_model_with_itself_is_exactly_zero_and_a_better_one_is_above_zero():
    rng = np.random.default_rng(1)
    units = [f"p{i}" for i in range(500)]
    base = (rng.random(500) < 0.4) * 100.0
    better = np.where(rng.random(500) < 0.3, 100.0, base)
    a, b = MeanOutcome.rows(units, base), MeanOutcome.rows(units, better)
    same = paired_difference(a, a)
    assert same.value == same.ci_low == same.ci_high == 0.0
    diff = paired_difference(b, a)
    assert diff.value > 0 and diff.ci_low > 0
    # Paired intervals are narrower than the two separate intervals would suggest.
    assert diff.ci_high - diff.ci_low < (interval(b).ci_high - interval(b).ci_low)
    with pytest.raises(PairingError, match="not evaluated on the same units"):
        paired_difference(b, MeanOutcome.rows(units[:400], better[:400]))


def test_fewer_than_30_units_warn_that_the_interval_is_not_meaningful():
    with pytest.warns(BootstrapWarning, match="not meaningful"):
        interval(MeanOutcome.rows([f"p{i}" for i in range(12)], [100.0, 0.0] * 6), what="tiny TGIR")


def test_outcomes_round_trip_through_their_file(tmp_path):
    rng = np.random.default_rng(2)
    mean = MeanOutcome.rows(["a", "b", "a", "c"], [1.0, 2.0, 3.0, 4.0], ["x", "x", "x", "y"])
    r90 = RecallAtPrecisionOutcome(np.array(["a", "b", "c"]), np.array([[1, -1], [0, 1], [1, 1]]),
                                   rng.random((3, 2)), 0.9)
    path = write_outcomes(tmp_path / "t.outcomes.npz", {"TGIR": mean, "ATTR_R@90P": r90}, {"split": "test"})
    outcomes, fingerprint = read_outcomes(path)
    assert fingerprint == {"split": "test"} and set(outcomes) == {"TGIR", "ATTR_R@90P"}
    weights = np.ones((1, 3))
    for name, original in (("TGIR", mean), ("ATTR_R@90P", r90)):
        assert np.array_equal(outcomes[name].units, original.units)
        assert outcomes[name].statistic(weights) == pytest.approx(original.statistic(weights))


def test_a_printed_interval_holds_its_printed_value():
    from fashionvlp.evaluation.bootstrap import format_interval

    # A default run's R@90P: the interval holds 0.18, but rounding both bounds to the nearest printed
    # "0.18 [0.2, 1.1]". Outward rounding keeps it honest; exact bounds stay as they are.
    assert format_interval(0.18, {"ci_low": 0.152, "ci_high": 1.121}) == "0.18 [0.1, 1.2]"
    assert format_interval(29.07, {"ci_low": 27.2, "ci_high": 30.9}) == "29.07 [27.2, 30.9]"
    assert format_interval(0.3, {"ci_low": 0.3, "ci_high": 0.3}) == "0.30 [0.3, 0.3]"
    assert format_interval(12.5, None) == "12.50"
