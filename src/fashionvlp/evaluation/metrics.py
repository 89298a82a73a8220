"""Pure metric functions: arrays in, numbers out. Library implementations where one exists
(scikit-learn, sacrebleu); the tests check them against independent ones (torchmetrics)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


TIES = ("pessimistic", "expected")


def first_hit_ranks(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Per query (row), the 0-based rank of its best-scored relevant item, ties broken *against* it.

    Every non-relevant item that scores at least as high as the best relevant one ranks above it, so a
    model that scores everything alike ranks the positive last (never first by gallery order). NaN
    scores count as -inf. A row without a relevant item gets rank = gallery size (never a hit).
    """
    scores, relevant = _checked(scores, relevant)
    best = np.where(relevant, scores, -np.inf).max(axis=1, initial=-np.inf)
    above = (~relevant & (scores >= best[:, None])).sum(axis=1)
    return np.where(relevant.any(axis=1), above, scores.shape[1])


def hits_at_k(scores: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = (1, 5, 10),
              ties: str = "pessimistic") -> np.ndarray:
    """[queries, len(ks)]: 1 where the query has a relevant item in its top k, else 0.

    ``ties="pessimistic"``: items scoring the same as the positive rank above it (``first_hit_ranks``).
    ``ties="expected"``: ties are broken uniformly at random and the hit is its probability, the
    expected recall of an oracle whose scores are coarse counts (one relevant item per row).
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, not {ties!r}")
    ks_arr = np.asarray(ks)[None, :]
    if ties == "pessimistic":
        return (first_hit_ranks(scores, relevant)[:, None] < ks_arr).astype(np.float64)
    scores, relevant = _checked(scores, relevant)
    best = np.where(relevant, scores, -np.inf).max(axis=1, initial=-np.inf)
    higher = (~relevant & (scores > best[:, None])).sum(axis=1)[:, None]
    tied = (~relevant & (scores == best[:, None])).sum(axis=1)[:, None]
    # The positive is equally likely at each of positions higher … higher + tied.
    expected = np.clip((ks_arr - higher) / (tied + 1), 0.0, 1.0)
    return np.where(relevant.any(axis=1)[:, None], expected, 0.0)


def recall_at_k(scores: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = (1, 5, 10),
                ties: str = "pessimistic") -> dict[int, float]:
    """Share of queries (rows) with a relevant item among their top-k scores, in percent (see ``hits_at_k``)."""
    hits = hits_at_k(scores, relevant, ks, ties)
    return {k: float(hits[:, i].mean() * 100.0) for i, k in enumerate(ks)}


def _checked(scores: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, relevant = np.asarray(scores, dtype=np.float64), np.asarray(relevant, dtype=bool)
    if scores.shape != relevant.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must be the same [Q, G] shape")
    return np.where(np.isnan(scores), -np.inf, scores), relevant


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, y_pred) * 100.0)


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int] | None = None) -> float:
    """Unweighted mean of per-class F1 over ``labels`` (default: every class seen in either array)."""
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0) * 100.0)


def recall_at_precision(y_true: Sequence[int], y_score: Sequence[float], min_precision: float = 0.9) -> tuple[float, float]:
    """(highest recall with precision ≥ ``min_precision`` in percent, the score threshold that gives it).

    With no operating point reaching that precision the recall is 0 and the threshold +inf (predict
    nothing), which is what a serving system should then do.
    """
    from sklearn.metrics import precision_recall_curve

    y_true = np.asarray(y_true).astype(int)
    if y_true.sum() == 0:
        return 0.0, float("inf")
    precision, recall, thresholds = precision_recall_curve(y_true, np.asarray(y_score, dtype=np.float64))
    # precision/recall have one more entry than thresholds (the final point: recall 0, no threshold)
    ok = precision[:-1] >= min_precision
    if not ok.any():
        return 0.0, float("inf")
    best = np.flatnonzero(ok)[np.argmax(recall[:-1][ok])]
    return float(recall[best] * 100.0), float(thresholds[best])


def bleu4(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 (sacrebleu, 13a tokenisation, one reference per hypothesis)."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)
