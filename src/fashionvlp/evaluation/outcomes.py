"""Per-unit evidence behind a headline number, and the file that keeps it (``<task>.outcomes.npz``).

A headline (XMR's ITR, SCR accuracy, TGIR's mean, attribute R@90P, …) is a statistic of independent
evaluation units: query products, triplets, outfit queries, products. Keeping each unit's outcome lets
the same number be recomputed under bootstrap weights (its confidence interval) and compared unit by
unit with another model evaluated on the same units (the promotion gate's paired test).

``statistic(weights)`` takes replicate weights [B, units] (how often each unit is drawn) and returns
[B] values; with all weights 1 it is the headline itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SUFFIX = ".outcomes.npz"
# Where an exported bundle keeps the outcomes of the models it came from (the promotion gate pairs them).
BUNDLE_DIR = "evaluation"


def _default_strata(outcome) -> None:
    """No strata given: every unit in one stratum."""
    if outcome.strata is None:
        object.__setattr__(outcome, "strata", np.zeros(len(outcome.units), dtype="<U1"))


@dataclass(frozen=True)
class MeanOutcome:
    """A (stratified) mean: per stratum Σ w·value / Σ w·count, then the plain mean over strata.

    ``values`` are per-unit sums (percent), ``counts`` how many rows each unit holds (a query product that
    was drawn in several repeats of the papers' protocol is one unit with several rows). Without strata
    it is the plain mean over rows.
    """

    units: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    strata: np.ndarray = field(default=None)
    kind = "mean"

    def __post_init__(self):
        _default_strata(self)

    def statistic(self, weights: np.ndarray) -> np.ndarray:
        per_stratum = []
        for stratum in np.unique(self.strata):
            member = self.strata == stratum
            w = weights[:, member]
            per_stratum.append((w @ self.values[member]) / np.maximum(w @ self.counts[member], 1e-12))
        return np.mean(per_stratum, axis=0)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"values": self.values, "counts": self.counts}

    @classmethod
    def rows(cls, units, row_values, strata=None) -> "MeanOutcome":
        """One row per query; rows of the same unit (and stratum) are pooled into that unit."""
        units, row_values = np.asarray(units).astype(str), np.asarray(row_values, dtype=np.float64)
        strata = np.zeros(len(units), dtype="<U1") if strata is None else np.asarray(strata).astype(str)
        keys = np.char.add(np.char.add(strata, "\x1f"), units)
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        return cls(units[first], np.bincount(inverse, row_values, len(unique)),
                   np.bincount(inverse, minlength=len(unique)).astype(np.float64), strata[first])


@dataclass(frozen=True)
class RecallAtPrecisionOutcome:
    """The mean over attributes of recall at ``min_precision`` (R@90P), per product: whether its top value
    is right (``correct``, -1 where the product has no label) and its confidence."""

    units: np.ndarray
    correct: np.ndarray        # [units, attributes] in {1, 0, -1}
    confidence: np.ndarray     # [units, attributes]
    min_precision: float = 0.9
    strata: np.ndarray = field(default=None)
    kind = "recall_at_precision"

    def __post_init__(self):
        _default_strata(self)

    def statistic(self, weights: np.ndarray) -> np.ndarray:
        per_attribute = [weighted_recall_at_precision(self.correct[:, a], self.confidence[:, a], weights,
                                                      self.min_precision)
                         for a in range(self.correct.shape[1]) if (self.correct[:, a] >= 0).any()]
        return np.mean(per_attribute, axis=0) if per_attribute else np.zeros(len(weights))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"correct": self.correct, "confidence": self.confidence,
                "min_precision": np.asarray(self.min_precision)}


def weighted_recall_at_precision(correct: np.ndarray, confidence: np.ndarray, weights: np.ndarray,
                                 min_precision: float) -> np.ndarray:
    """[B]: highest recall (over labelled units, percent) whose precision ≥ ``min_precision`` when units
    with confidence ≥ a threshold are predicted, each unit counted ``weights[b, unit]`` times."""
    labelled = correct >= 0
    order = np.argsort(-confidence[labelled], kind="stable")
    conf, right = confidence[labelled][order], correct[labelled][order].astype(np.float64)
    w = weights[:, labelled][:, order]
    predicted, true_positive = np.cumsum(w, axis=1), np.cumsum(w * right, axis=1)
    # Thresholds sit at distinct confidences: only the last unit of a run of equal ones is an operating point.
    last_of_tie = np.append(conf[1:] != conf[:-1], True)
    predicted, true_positive = predicted[:, last_of_tie], true_positive[:, last_of_tie]
    precision = true_positive / np.maximum(predicted, 1e-12)
    recall = true_positive / np.maximum(predicted[:, -1:], 1e-12) * 100.0
    ok = (precision >= min_precision) & (true_positive > 0)
    return np.where(ok, recall, 0.0).max(axis=1)


@dataclass(frozen=True)
class AucOutcome:
    """ROC AUC (percent) of per-unit scores against binary labels: the weighted share of (positive, negative)
    unit pairs the scores order right, ties counting half (Polyvore's outfit-compatibility metric)."""

    units: np.ndarray
    scores: np.ndarray
    labels: np.ndarray          # 1 positive, 0 negative
    strata: np.ndarray = field(default=None)
    kind = "auc"

    def __post_init__(self):
        _default_strata(self)

    def statistic(self, weights: np.ndarray) -> np.ndarray:
        from scipy.sparse import csr_matrix

        levels, level_of = np.unique(self.scores, return_inverse=True)
        positive = self.labels.astype(bool)

        def per_level(member):
            """[B, score levels]: the weight of ``member`` units at each distinct score."""
            count = int(member.sum())
            onehot = csr_matrix((np.ones(count), (np.arange(count), level_of[member])), shape=(count, len(levels)))
            return np.asarray(onehot.T @ weights[:, member].T).T

        pos, neg = per_level(positive), per_level(~positive)
        below = np.cumsum(neg, axis=1) - neg
        ordered = (pos * (below + 0.5 * neg)).sum(axis=1)
        return 100.0 * ordered / np.maximum(pos.sum(axis=1) * neg.sum(axis=1), 1e-12)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores, "labels": self.labels}


KINDS = {cls.kind: cls for cls in (MeanOutcome, RecallAtPrecisionOutcome, AucOutcome)}
Outcome = MeanOutcome | RecallAtPrecisionOutcome | AucOutcome


def write_outcomes(path: Path, outcomes: dict[str, Outcome], fingerprint: dict) -> Path:
    """``fingerprint`` says what was evaluated (task, split, catalog, protocol); the gate compares it."""
    arrays, index = {}, {}
    for k, (name, outcome) in enumerate(outcomes.items()):
        index[name] = {"kind": outcome.kind, "key": f"h{k}"}
        arrays[f"h{k}.units"], arrays[f"h{k}.strata"] = outcome.units.astype(str), outcome.strata.astype(str)
        arrays |= {f"h{k}.{a}": v for a, v in outcome.arrays().items()}
    arrays["meta"] = np.asarray(json.dumps({"fingerprint": fingerprint, "headlines": index}, sort_keys=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def read_outcomes(path: Path) -> tuple[dict[str, Outcome], dict]:
    """(headline name → outcome, fingerprint)."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        outcomes = {}
        for name, entry in meta["headlines"].items():
            key, cls = entry["key"], KINDS[entry["kind"]]
            fields = {a.split(".", 1)[1]: data[a] for a in data.files if a.startswith(key + ".")}
            if "min_precision" in fields:
                fields["min_precision"] = float(fields["min_precision"])
            outcomes[name] = cls(**fields)
    return outcomes, meta["fingerprint"]


def outcomes_path(directory: Path, task: str) -> Path:
    return Path(directory) / f"{task}{SUFFIX}"
