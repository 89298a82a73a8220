"""Seeded percentile bootstrap over evaluation units: a headline's 95% interval, and the paired interval of
the difference between two models evaluated on the same units (the promotion gate).

Units are resampled with replacement within each stratum (a TGIR group, an OCIR blank category), so a
stratified headline keeps its strata. The replicates are weights [B, units] that any outcome's
``statistic`` accepts, which is what lets two models share the very same resamples. scipy's
``stats.bootstrap`` resamples raw samples only, without strata or a weighted statistic, hence this file.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from fashionvlp.evaluation.outcomes import Outcome

MIN_UNITS = 30
LEVEL = 0.95
RESAMPLES = 1000


class BootstrapWarning(UserWarning):
    """Too few units for the interval to mean much."""


class PairingError(ValueError):
    """Two outcomes that were not measured on the same units cannot be compared pairwise."""


@dataclass(frozen=True)
class Interval:
    value: float
    ci_low: float
    ci_high: float
    units: int
    resamples: int
    level: float = LEVEL

    def as_dict(self) -> dict:
        return {"ci_low": self.ci_low, "ci_high": self.ci_high, "units": self.units, "resamples": self.resamples,
                "level": self.level, "method": "percentile bootstrap over evaluation units, stratified"}


def replicate_weights(strata: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """[resamples, units]: how often each unit is drawn; every stratum keeps its size."""
    rng = np.random.default_rng(seed)
    weights = np.zeros((resamples, len(strata)))
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        weights[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=resamples)
    return weights


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _warn_if_small(n: int, what: str) -> None:
    if n < MIN_UNITS:
        warnings.warn(f"{what}: a bootstrap over {n} units (< {MIN_UNITS}); its interval is not meaningful",
                      BootstrapWarning, stacklevel=3)


def interval(outcome: Outcome, seed: int = 0, resamples: int = RESAMPLES, level: float = LEVEL,
             what: str = "headline") -> Interval:
    n = len(outcome.units)
    _warn_if_small(n, what)
    value = float(outcome.statistic(np.ones((1, n)))[0])
    low, high = _percentiles(outcome.statistic(replicate_weights(outcome.strata, resamples, seed)), level)
    return Interval(value, low, high, n, resamples, level)


def paired_difference(challenger: Outcome, champion: Outcome, seed: int = 0, resamples: int = RESAMPLES,
                      level: float = LEVEL, what: str = "metric") -> Interval:
    """Interval of challenger − champion, both statistics computed on the same resampled units."""
    if challenger.kind != champion.kind:
        raise PairingError(f"{what}: one outcome is a {challenger.kind}, the other a {champion.kind}")
    if not (np.array_equal(challenger.units, champion.units) and np.array_equal(challenger.strata, champion.strata)):
        raise PairingError(f"{what}: the two models were not evaluated on the same units "
                           f"({len(challenger.units)} vs {len(champion.units)}, or in another order)")
    n = len(challenger.units)
    _warn_if_small(n, what)
    ones = np.ones((1, n))
    value = float(challenger.statistic(ones)[0] - champion.statistic(ones)[0])
    weights = replicate_weights(challenger.strata, resamples, seed)
    low, high = _percentiles(challenger.statistic(weights) - champion.statistic(weights), level)
    return Interval(value, low, high, n, resamples, level)


def format_interval(value: float, ci: dict | None) -> str:
    """``29.07 [27.2, 30.9]``; the value alone when it has no interval. The bounds are rounded outwards,
    so a printed interval holds its printed value (0.18 with bounds 0.152, 1.121 is ``[0.1, 1.2]``)."""
    if not ci:
        return f"{value:.2f}"
    return f"{value:.2f} [{math.floor(ci['ci_low'] * 10 + 1e-9) / 10:.1f}, {math.ceil(ci['ci_high'] * 10 - 1e-9) / 10:.1f}]"
