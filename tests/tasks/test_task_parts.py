"""Task parts checked against brute force: attribute R@90P over labelled products, greedy decoding."""

import numpy as np
import pytest
import torch

from fashionvlp.tasks.attributes import _operating_point


def _brute_force_r90p(truth, top, confidence):
    labelled = truth >= 0
    t, p, c = truth[labelled], top[labelled], confidence[labelled]
    best = 0.0
    for threshold in np.unique(c):
        kept = c >= threshold
        right = (p[kept] == t[kept]).sum()
        if right / kept.sum() >= 0.9:
            best = max(best, right / len(t) * 100)
    return best


@pytest.mark.parametrize("seed", range(5))
def test_attribute_r90p_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 300
    truth = np.where(rng.random(n) < 0.2, -1, rng.integers(0, 4, n))
    confidence = rng.random(n)
    # Confident predictions are right more often, so a 90%-precision point exists for some seeds.
    right = rng.random(n) < 0.4 + 0.6 * confidence
    top = np.where(right, truth, (truth + 1) % 4)
    r90, threshold, labelled = _operating_point(truth, top, confidence)
    assert labelled == (truth >= 0).sum()
    assert r90 == pytest.approx(_brute_force_r90p(truth, top, confidence), abs=1e-9)
    if r90 > 0:
        kept = (truth >= 0) & (confidence >= threshold)
        assert (top[kept] == truth[kept]).mean() >= 0.9


def test_greedy_generation_follows_the_decoders_argmax(tiny_catalog, tmp_path):
    from fashionvlp.models.registry import build_model
    from fashionvlp.tasks.captioning import generate
    from tests.conftest import KGFLIP, tiny_params

    params = tiny_params(tmp_path, *KGFLIP)
    torch.manual_seed(0)
    model = build_model(params.model, params.resolve, ["a red dress", "blue denim trousers"] * 20,
                        tmp_path / "tok").eval()
    pixels = torch.randn(3, 3, 64, 64)
    generated = generate(model, pixels, max_tokens=8)
    tokenizer = model.tokenizer
    with torch.no_grad():
        image = model.encode_image(pixels)
        for row, tokens in enumerate(generated):
            ids = torch.tensor([[tokenizer.cls_token_id, *tokens]])
            logits = model.decode(type(image)(image.global_[row:row + 1], image.patches[row:row + 1]), ids,
                                  torch.ones_like(ids))
            # every generated token is the argmax after its prefix (specials are dropped from the output)
            special = set(tokenizer.all_special_ids)
            expected = [t for t in logits[0].argmax(-1).tolist()[:len(tokens)] if t not in special]
            assert tokens[:len(expected)] == expected[:len(tokens)]
