"""Our metric functions against independent implementations (torchmetrics), on random inputs."""

import numpy as np
import pytest
import torch
from torchmetrics.classification import BinaryRecallAtFixedPrecision, MulticlassAccuracy, MulticlassF1Score
from torchmetrics.retrieval import RetrievalRecall
from torchmetrics.text import BLEUScore

from fashionvlp.evaluation.metrics import accuracy, bleu4, macro_f1, recall_at_k, recall_at_precision


@pytest.mark.parametrize("seed", range(5))
def test_recall_at_k_matches_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(40, 101))
    relevant = np.zeros_like(scores, dtype=bool)
    relevant[np.arange(40), rng.integers(0, 101, 40)] = True       # one positive per query (the papers' setting)
    relevant[rng.random(scores.shape) < 0.01] = True                # and a few queries with several
    ours = recall_at_k(scores, relevant, (1, 5, 10))
    indexes = torch.arange(40).repeat_interleave(101)
    for k in (1, 5, 10):
        # torchmetrics' recall@k is the share of positives retrieved; the "hit" rate is recall@k > 0
        hit = RetrievalRecall(top_k=k, aggregation=lambda x, dim=None: (x > 0).float().mean())
        ref = hit(torch.tensor(scores).flatten(), torch.tensor(relevant).flatten(), indexes=indexes).item() * 100
        assert ours[k] == pytest.approx(ref)
    single = recall_at_k(scores[:, :1] * 0 + 1, np.ones((40, 1), bool), (1,))
    assert single[1] == 100.0


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_and_macro_f1_match_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    classes = 7
    y_true = rng.integers(0, classes, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, classes, 300))
    t, p = torch.tensor(y_true), torch.tensor(y_pred)
    assert accuracy(y_true, y_pred) == pytest.approx(MulticlassAccuracy(classes, average="micro")(p, t).item() * 100)
    ref = MulticlassF1Score(classes, average="macro")(p, t).item() * 100
    assert macro_f1(y_true, y_pred, labels=list(range(classes))) == pytest.approx(ref, abs=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_recall_at_90_precision_matches_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, 500)
    y_score = y_true * 0.35 + rng.random(500) * 0.8        # continuous, no ties
    ours, threshold = recall_at_precision(y_true, y_score, 0.9)
    # torchmetrics compares a float32 precision with 0.9, so a point at exactly 126/140 falls just short
    # of it; a hair below 0.9 compares the same operating points.
    ref_recall, _ = BinaryRecallAtFixedPrecision(min_precision=0.9 - 1e-6, thresholds=None)(
        torch.tensor(y_score, dtype=torch.float64), torch.tensor(y_true))
    assert ours == pytest.approx(ref_recall.item() * 100, abs=1e-4)
    brute = max((((y_score >= t)[y_true == 1]).mean() for t in y_score
                 if (y_true[y_score >= t] == 1).mean() >= 0.9), default=0.0)
    assert ours == pytest.approx(brute * 100)
    predicted = y_score >= threshold
    assert (y_true[predicted] == 1).mean() >= 0.9                     # the saved threshold keeps its promise
    assert predicted[y_true == 1].mean() * 100 == pytest.approx(ours)


def test_recall_at_precision_when_unreachable():
    assert recall_at_precision([0, 1, 0, 1], [0.9, 0.1, 0.8, 0.2], 0.9) == (0.0, float("inf"))
    assert recall_at_precision([0, 0], [0.9, 0.1], 0.9) == (0.0, float("inf"))


def test_bleu4_matches_torchmetrics_on_pretokenised_text():
    rng = np.random.default_rng(0)
    words = "blue red long short sleeve dress shirt cotton v-neck midi mini skirt".split()
    refs = [" ".join(rng.choice(words, 8)) for _ in range(30)]
    hyps = [" ".join(w if rng.random() < 0.7 else rng.choice(words) for w in r.split()) for r in refs]
    ref = BLEUScore(n_gram=4)(hyps, [[r] for r in refs]).item() * 100
    assert bleu4(hyps, refs) == pytest.approx(ref, abs=1e-3)
    assert bleu4(refs, refs) == pytest.approx(100.0)
