"""Pure metric functions: arrays in, numbers out. Library implementations where one exists
(scikit-learn, sacrebleu); the tests check them against independent ones (torchmetrics)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def recall_at_k(scores: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries (rows) with at least one relevant item among their top-k scores, in percent.

    ``scores`` and ``relevant`` are [queries, gallery]; ties are broken by gallery order (stable sort).
    """
    scores, relevant = np.asarray(scores, dtype=np.float64), np.asarray(relevant, dtype=bool)
    if scores.shape != relevant.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must be the same [Q, G] shape")
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(relevant, order, axis=1)
    first_hit = np.where(ranked.any(1), ranked.argmax(1), np.iinfo(np.int64).max)
    return {k: float((first_hit < k).mean() * 100.0) for k in ks}


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
