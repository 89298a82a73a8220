"""Retrieval protocols: the paper's 1 + 100 same-subcategory galleries and the full gallery."""

import numpy as np
import pytest

from fashionvlp.evaluation.retrieval import PaperProtocol, ProtocolError, full_gallery, paper_protocol


def _data(n_per_sub=110, subs=3, dim=16, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(n_per_sub * subs, dim))
    text = image + noise * rng.normal(size=image.shape)
    subcategories = np.repeat([f"s{i}" for i in range(subs)], n_per_sub)
    return image, text, subcategories


def test_perfect_embeddings_score_100_and_random_ones_chance():
    image, _, subs = _data()
    perfect = paper_protocol(image, image, subs, PaperProtocol(queries=200, repeats=2))
    assert perfect["ITR"] == perfect["TIR"] == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0}
    assert "1 positive + 100 same-subcategory negatives" in perfect["protocol"]
    rng = np.random.default_rng(1)
    random = paper_protocol(rng.normal(size=image.shape), rng.normal(size=image.shape), subs,
                            PaperProtocol(queries=300, repeats=5))
    assert abs(random["ITR"]["R@10"] - 100 * 10 / 101) < 4        # chance for a 101-item gallery
    full = full_gallery(rng.normal(size=image.shape), rng.normal(size=image.shape))
    assert full["TIR"]["R@10"] < 10 and full["protocol"].startswith("full gallery: 330 queries")


def test_negatives_come_from_the_same_subcategory():
    # Subcategory s1 holds exact copies of s0's images as texts: a gallery drawn across subcategories would
    # often contain a text scoring above the (noisy) positive; same-subcategory galleries never do.
    rng = np.random.default_rng(0)
    base = rng.normal(size=(110, 32))
    image = np.concatenate([base, base])
    text = np.concatenate([base + 0.2 * rng.normal(size=base.shape), base])
    subs = np.repeat(["s0", "s1"], 110)
    paper = paper_protocol(image, text, subs, PaperProtocol(queries=200, repeats=2))
    assert paper["ITR"]["R@1"] > 95
    assert full_gallery(image, text)["ITR"]["R@1"] < 55      # half the queries lose to their s1 copy


def test_small_subcategory_fails_unless_fallback_is_asked():
    image, text, subs = _data(n_per_sub=60)
    with pytest.raises(ProtocolError, match=r"≥ 101 products per subcategory; too small: s0 \(60\)"):
        paper_protocol(image, text, subs)
    result = paper_protocol(image, text, subs, PaperProtocol(queries=100, repeats=1), allow_fallback=True)
    assert "FALLBACK" in result["protocol"] and result["ITR"]["R@10"] > 0


def test_blockwise_scores_equal_the_whole_matrix(monkeypatch):
    """Scoring a block of query rows at a time (how a 32k gallery fits in memory) gives the hits of the
    whole matrix, for cosine scores and the attribute oracle's, both directions."""
    from fashionvlp.evaluation import retrieval
    from fashionvlp.evaluation.metrics import hits_at_k
    from fashionvlp.evaluation.oracle import AgreementScores, _Columns
    from fashionvlp.data.synth.generate import synthetic_schema

    image, text, subs = _data(n_per_sub=105, subs=2)
    dense = retrieval._cosine(image, text)
    galleries = retrieval.paper_galleries(subs, PaperProtocol(queries=50, repeats=2))
    whole_full = {"ITR": hits_at_k(dense, np.eye(len(dense), dtype=bool)),
                  "TIR": hits_at_k(dense.T, np.eye(len(dense), dtype=bool))}
    monkeypatch.setattr(retrieval, "BLOCK_ROWS", 7)
    blockwise = retrieval.cosine_scores(image, text)
    for direction in ("ITR", "TIR"):
        np.testing.assert_array_equal(retrieval.full_gallery_hits(blockwise)[direction], whole_full[direction])
        np.testing.assert_array_equal(retrieval.paper_hits(blockwise, galleries)[direction],
                                      retrieval.paper_hits(dense, galleries)[direction])
    assert 0 < whole_full["ITR"][:, 0].mean() < 1

    columns = _Columns(synthetic_schema())
    rng = np.random.default_rng(1)
    labels = (rng.random((30, len(columns.column))) < 0.1).astype(float)
    mentions = (rng.random((30, len(columns.column))) < 0.1).astype(float)
    oracle = AgreementScores(labels, mentions, columns)
    whole = np.vstack([oracle.rows(np.array([i])) for i in range(30)])
    np.testing.assert_array_equal(np.vstack([oracle.T.rows(np.array([j])) for j in range(30)]), whole.T)
    np.testing.assert_array_equal(retrieval.full_gallery_hits(oracle, "expected")["TIR"],
                                  hits_at_k(whole.T, np.eye(30, dtype=bool), ties="expected"))
