"""Every objective on tiny tensors: masking rules, negatives, heads and losses, and the two combiners."""

from collections import Counter

import numpy as np
import pytest
import torch

from fashionvlp.config import ModelConfig
from fashionvlp.data.knowledge import mine_pseudo_attributes, swap_attributes, token_attribute_units
from fashionvlp.data.schema import load_knowledge_base
from fashionvlp.errors import ModelInputError
from fashionvlp.models.registry import build_model
from fashionvlp.objectives import OBJECTIVES
from fashionvlp.objectives.base import ObjectiveContext, build_objectives
from fashionvlp.objectives.combine import ObjectiveSuite
from fashionvlp.objectives.itm import sample_hard_negatives
from fashionvlp.objectives.masking import IGNORE, block_mask, choose_positions, mask_tokens

TEXTS = ["a blue v-neck dress with long sleeves", "red cotton shirt with buttons", "black leather heels"] * 30
CONTEXT = ObjectiveContext(num_pseudo_attributes=5, codebook_size=16)


def _model(tmp_path, arch, image_descriptor=None):
    cfg = ModelConfig.model_validate({
        "arch": arch, "image": {"name": "vit_micro_patch8", "image_size": 32}, "image_descriptor": image_descriptor,
        "text": {"source": "scratch", "scratch": {"vocab_size": 200, "hidden_size": 32, "layers": 1, "heads": 2,
                                                  "intermediate_size": 64}}})
    return build_model(cfg, train_texts=TEXTS, tokenizer_out=tmp_path / f"tok-{arch}")


def _batch(model, n=4):
    texts = ["blue dress with long sleeves", "red shirt with buttons", "black heels", "blue v-neck dress"][:n]
    enc = model.tokenizer(texts, padding=True, return_tensors="pt")
    word_ids = torch.tensor([[-1 if w is None else w for w in enc.word_ids(i)] for i in range(n)])
    units = torch.full_like(enc.input_ids, -1)
    units[:, 1] = 0                                   # pretend the first word is an attribute value
    neg = model.tokenizer(["red dress with short sleeves", "blue shirt", "white heels", "red crew neck dress"][:n],
                          padding=True, return_tensors="pt")
    return {
        "index": torch.arange(n), "pixels_a": torch.randn(n, 3, 32, 32), "pixels_b": torch.randn(n, 3, 32, 32),
        "input_ids": enc.input_ids, "attention_mask": enc.attention_mask, "word_ids": word_ids,
        "attribute_units": units, "negative_ids": neg.input_ids, "negative_mask": neg.attention_mask,
        "negative_valid": torch.tensor([True, True, False, True][:n]),
        "title_ids": enc.input_ids, "title_mask": enc.attention_mask,
        "codes": torch.randint(0, 16, (n, 16)), "pac_targets": torch.tensor([[.5, .5, 0, 0, 0]] * n),
    }


@pytest.mark.parametrize("arch, names", [
    ("fashionvil", ["itc", "mlm", "mlm_attr", "kg_mlim", "mpfc", "itm", "kg_itm", "mvc", "pac"]),
    ("kgflip", ["itc", "mlm", "kg_mlim", "itm", "kg_itm", "mvc", "pac", "lm"]),
])
def test_every_objective_gives_a_finite_loss_with_gradients(tmp_path, arch, names):
    torch.manual_seed(0)
    model = _model(tmp_path, arch)
    objectives = build_objectives(names, model, CONTEXT)
    batch = _batch(model)
    for name in names:
        model.zero_grad()
        out = objectives[name](model, dict(batch))   # a fresh dict: image features are cached per step
        loss = out[f"loss/{name}"]
        assert torch.isfinite(loss) and loss > 0, name
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name


def test_objectives_the_architecture_cannot_run_are_rejected(tmp_path):
    with pytest.raises(ModelInputError, match="'lm' needs decode.*fashionvil"):
        build_objectives(["lm"], _model(tmp_path, "fashionvil"), CONTEXT)
    with pytest.raises(ModelInputError, match="'mpfc' needs fused_image_tokens.*kgflip"):
        build_objectives(["mpfc"], _model(tmp_path, "kgflip"), CONTEXT)
    with pytest.raises(ModelInputError, match="unknown objective"):
        build_objectives(["itx"], _model(tmp_path, "kgflip"), CONTEXT)


def test_itc_scale_is_learnable_and_loss_matches_definition(tmp_path):
    model = _model(tmp_path, "fashionvil").eval()
    batch = _batch(model)
    out = OBJECTIVES["itc"](model, CONTEXT)(model, batch)
    image = model.encode_image(batch["pixels_a"]).global_
    text = model.encode_text(batch["input_ids"], batch["attention_mask"]).global_
    logits = 16 * torch.nn.functional.normalize(image, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).t()
    labels = torch.arange(4)
    expected = (torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.t(), labels)) / 2
    assert torch.isclose(out["loss/itc"], expected, atol=1e-5)
    out["loss/itc"].backward()
    assert model.contrastive_scale.grad is not None


def test_whole_word_masking_budget_and_policies():
    # 20 words: words 0..19, each of 1 token except word 5 (3 tokens); attribute mention 0 = tokens of words 2,3
    word_ids = [-1] + [w for w in range(20) for _ in range(3 if w == 5 else 1)] + [-1]
    units = [-1] * len(word_ids)
    for pos, w in enumerate(word_ids):
        if w in (2, 3):
            units[pos] = 0
    valid = sum(w >= 0 for w in word_ids)
    budget = round(0.15 * valid)
    torch.manual_seed(0)
    for _ in range(50):
        chosen = choose_positions(word_ids, units, 0.15, "random")
        assert 1 <= len(chosen) <= budget
        words = {word_ids[p] for p in chosen}
        for w in words:   # whole words only
            assert set(chosen) >= {p for p, x in enumerate(word_ids) if x == w}
        first = choose_positions(word_ids, units, 0.15, "attribute_first")
        assert {p for p, u in enumerate(units) if u == 0} <= set(first) and len(first) == budget
        only = choose_positions(word_ids, units, 0.15, "attribute_only")
        assert only and all(units[p] == 0 for p in only)
    # More attribute tokens than the budget: a random subset of mentions, still within budget.
    many = [-1] + [i for i in range(20)] + [-1]
    mention_units = [-1] + [i for i in range(20)] + [-1]
    seen = set()
    for _ in range(20):
        chosen = choose_positions(many, mention_units, 0.15, "attribute_first")
        assert len(chosen) == 3
        seen.update(chosen)
    assert len(seen) > 3
    assert choose_positions([-1, 0, 1, -1], [-1, -1, -1, -1], 0.15, "attribute_only") == []


def test_80_10_10_replacement():
    torch.manual_seed(0)
    ids = torch.randint(10, 1000, (400, 42))
    word_ids = torch.arange(42).repeat(400, 1)
    word_ids[:, 0] = word_ids[:, -1] = -1
    masked, labels = mask_tokens(ids, word_ids, torch.full_like(ids, -1), 0.15, "random", 3, 1000, [0, 1, 2, 3, 4])
    chosen = labels != IGNORE
    assert (labels[chosen] == ids[chosen]).all()
    assert abs(chosen.float().sum(1).mean().item() - 6) < 1e-6          # round(0.15 × 40)
    as_mask = (masked[chosen] == 3).float().mean().item()
    kept = (masked[chosen] == ids[chosen]).float().mean().item()
    assert 0.77 < as_mask < 0.83 and 0.07 < kept < 0.13
    assert (masked[~chosen] == ids[~chosen]).all()


def test_blockwise_patch_mask():
    torch.manual_seed(0)
    mask = block_mask(64, (14, 14), 0.16)
    ratios = mask.flatten(1).float().mean(1)
    assert ((ratios > 0.1) & (ratios < 0.25)).all()
    # Blocky: most masked patches have a masked 4-neighbour.
    m = mask.float()
    neighbours = torch.zeros_like(m)
    neighbours[:, 1:] += m[:, :-1]
    neighbours[:, :-1] += m[:, 1:]
    neighbours[:, :, 1:] += m[:, :, :-1]
    neighbours[:, :, :-1] += m[:, :, 1:]
    assert ((neighbours > 0) & mask).sum() / mask.sum() > 0.9


def test_hard_negatives_follow_similarity_and_never_the_same_product():
    torch.manual_seed(0)
    sim = torch.tensor([[9.0, 8.0, 0.0, 0.0], [0.0, 9.0, 8.0, 0.0], [0.0, 0.0, 9.0, 8.0], [8.0, 0.0, 0.0, 9.0]])
    product = torch.tensor([0, 1, 2, 3])
    picks = torch.stack([sample_hard_negatives(sim, product) for _ in range(200)])
    assert (picks != product).all()
    assert ((picks == torch.tensor([1, 2, 3, 0])).float().mean() > 0.9)
    same = torch.tensor([0, 0, 1, 1])    # two views of one product in a batch: never each other's negative
    picks = torch.stack([sample_hard_negatives(sim, same) for _ in range(200)])
    assert (same[picks] != same).all()


def test_attribute_swap_uses_values_of_the_same_attribute():
    schema = load_knowledge_base()
    text = "Blue v-neck dress with long sleeves"
    category = next(c for c in schema.categories if "neckline" in schema.attributes_for(c))
    mentions = schema.find_mentions(text, category)
    assert {m.attribute for m in mentions} >= {"color", "neckline"}
    rng = np.random.default_rng(0)
    for _ in range(20):
        swapped = swap_attributes(text, mentions, schema, rng)
        again = schema.find_mentions(swapped, category)
        assert [m.attribute for m in again] == [m.attribute for m in mentions]
        assert all(a.value != b.value for a, b in zip(again, mentions))
    assert swap_attributes("a plain thing", [], schema, rng) is None
    units = token_attribute_units([(0, 0), (0, 4), (5, 6), (6, 7), (7, 11), (12, 17), (0, 0)], mentions[:2])
    assert units[0] == -1 and units[1] == 0 and units[2] == units[3] == units[4] == 1 and units[5] == -1


def test_pseudo_attributes_are_frequent_phrases():
    vocab = mine_pseudo_attributes(TEXTS + ["a blue v-neck dress"], 5, 2, 2)
    assert "blue" in vocab and "the" not in vocab and len(vocab) == 5


def test_task_sampling_follows_probabilities_and_sum_adds(tmp_path):
    model = _model(tmp_path, "fashionvil")
    suite = ObjectiveSuite(model, {"itc": 0.2, "mvc": 0.8}, "sample", seed=3, context=CONTEXT)
    counts = Counter(suite.choose(step)[0] for step in range(2000))
    assert abs(counts["mvc"] / 2000 - 0.8) < 0.03
    assert [suite.choose(s) for s in range(10)] == [suite.choose(s) for s in range(10)]   # a function of the step
    summed = ObjectiveSuite(model, {"itc": 1.0, "mvc": 0.5}, "sum", seed=3, context=CONTEXT).eval()
    assert summed.choose(0) == ["itc", "mvc"]
    torch.manual_seed(0)
    total, logs = summed(_batch(model), ["itc", "mvc"])
    assert torch.isclose(total, logs["loss/itc"] + 0.5 * logs["loss/mvc"])


def test_objectives_summed_in_one_step_encode_the_image_once(tmp_path):
    model = _model(tmp_path, "kgflip")
    calls = []
    original = model.encode_image
    model.encode_image = lambda pixels, keys=None: calls.append(pixels.shape) or original(pixels, keys)
    suite = ObjectiveSuite(model, {"kg_mlim": 1.0, "kg_itm": 1.0, "lm": 1.0}, "sum", seed=0, context=CONTEXT)
    total, _ = suite(_batch(model), suite.choose(0))
    total.backward()
    assert len(calls) == 1


@pytest.mark.parametrize("arch", ["fashionvil", "kgflip"])
def test_the_task_heads_read_the_fused_tokens_the_image_embedding_and_the_descriptor(tmp_path, arch):
    # The classification and attribute heads' input, [first token | text-token mean | text-token max | image
    # embedding | descriptor]: a change of image alone moves the last two parts by exactly the change of the
    # unimodal image embedding and of the frozen descriptor, so the heads see the image even where fusion
    # ignores it; padding never wins the max.
    from fashionvlp.models.interface import masked_mean
    from fashionvlp.objectives.base import fused_readout

    model = _model(tmp_path, arch, image_descriptor="efficientnet_lite0_s16").eval()
    batch = _batch(model)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert not mask.all()                                  # some texts are padded
    with torch.no_grad():
        a = fused_readout(model, batch["pixels_a"], ids, mask)
        b = fused_readout(model, batch["pixels_b"], ids, mask)
        images = model.encode_image(batch["pixels_a"]), model.encode_image(batch["pixels_b"])
        fused = model.fuse(ids, mask, images[0])
        descriptors = model.image_descriptor(batch["pixels_a"]), model.image_descriptor(batch["pixels_b"])
    hidden = model.hidden_size
    assert a.shape == (4, model.readout_width) == (4, 4 * hidden + model.image_descriptor.dim)
    torch.testing.assert_close(a[:, :hidden], fused.pooled)
    torch.testing.assert_close(a[:, hidden:2 * hidden], masked_mean(fused.text_tokens, mask))
    for row in range(4):
        real = fused.text_tokens[row, mask[row].bool()]
        torch.testing.assert_close(a[row, 2 * hidden:3 * hidden], real.max(0).values)
    torch.testing.assert_close(a[:, 3 * hidden:4 * hidden], images[0].global_)
    torch.testing.assert_close(b[:, 3 * hidden:4 * hidden] - a[:, 3 * hidden:4 * hidden],
                               images[1].global_ - images[0].global_)
    torch.testing.assert_close(b[:, 4 * hidden:] - a[:, 4 * hidden:], descriptors[1] - descriptors[0])
    assert not torch.allclose(descriptors[0], descriptors[1])


class _Rescaled(torch.nn.Module):
    """The same descriptor on another scale: ×10 and +50 per feature."""

    def __init__(self, descriptor):
        super().__init__()
        self.descriptor, self.dim = descriptor, descriptor.dim

    def forward(self, pixels, keys=None):
        return self.descriptor(pixels, keys) * 10.0 + 50.0


def test_the_attribute_heads_read_their_features_standardised(tmp_path):
    # The frozen descriptor's activations sit on offsets and scales of their own; the heads standardise
    # each feature (batch statistics in training), so a rescaled descriptor gives them the same input.
    from fashionvlp.tasks.attributes import AttributeExtraction

    model = _model(tmp_path, "fashionvil", image_descriptor="efficientnet_lite0_s16").eval()
    head = AttributeExtraction(model, ObjectiveContext(attributes=(("color", 5), ("pattern", 3)))).train()
    batch = _batch(model)

    def logits():
        torch.manual_seed(0)  # the same dropout masks
        with torch.no_grad():
            return head.logits(model, batch["pixels_a"], batch["input_ids"], batch["attention_mask"])

    plain = logits()
    model.image_descriptor = _Rescaled(model.image_descriptor)
    rescaled = logits()
    for name in ("color", "pattern"):
        torch.testing.assert_close(rescaled[name], plain[name], atol=2e-3, rtol=1e-3)
    head.eval()  # evaluation and the ONNX graph: the running statistics, learned in training
    assert head.norm.running_mean.abs().sum() > 0


def test_outfit_items_read_the_descriptor_beside_the_image_embedding(tmp_path):
    # OCIR's compatibility turns on colour and pattern, which the frozen descriptor reads plainly: an item is
    # its image embedding plus a learned projection of the standardised descriptor (the image embedding alone
    # without one), and the projection trains with the task.
    from fashionvlp.tasks.ocir import OutfitCompletion

    context = ObjectiveContext(num_categories=3)
    plain = _model(tmp_path, "fashionvil")
    pixels = _batch(plain)["pixels_a"]
    head = OutfitCompletion(plain, context).eval()
    assert head.descriptor_proj is None
    with torch.no_grad():
        torch.testing.assert_close(head.item_embedding(plain, pixels), plain.encode_image(pixels).global_)

    model = _model(tmp_path, "fashionvil", image_descriptor="efficientnet_lite0_s16")
    head = OutfitCompletion(model, context).train()
    head(model, {"item_pixels": pixels[:, None].expand(-1, 2, -1, -1, -1), "item_mask": torch.ones(4, 2),
                 "item_keys": torch.arange(4)[:, None].expand(-1, 2), "blank_category": torch.tensor([0, 1, 2, 0]),
                 "blank_pixels": pixels.flip(0), "blank_key": torch.arange(3, -1, -1)})["loss/ocir"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.descriptor_proj.parameters())
    head.eval()
    with torch.no_grad():
        expected = model.encode_image(pixels).global_ + head.descriptor_proj(model.image_descriptor(pixels))
        torch.testing.assert_close(head.item_embedding(model, pixels), expected)
        shifted = pixels.roll(1, dims=0)
        moved = head.item_embedding(model, shifted) - head.item_embedding(model, pixels)
        assert not torch.allclose(moved, model.encode_image(shifted).global_ - model.encode_image(pixels).global_)


def test_the_attribute_heads_also_read_the_texts_words_directly(tmp_path):
    # Beside the MLP on the readout, each token of the text adds a learned logit per value (a linear model on
    # the bag of words): it starts at zero, a word adds its logit once per occurrence, and padding adds none.
    from fashionvlp.tasks.attributes import AttributeExtraction

    model = _model(tmp_path, "fashionvil").eval()
    head = AttributeExtraction(model, ObjectiveContext(attributes=(("color", 5), ("pattern", 3)))).eval()
    batch = _batch(model)
    ids, mask = batch["input_ids"], batch["attention_mask"]

    def logits():
        with torch.no_grad():
            return head.logits(model, batch["pixels_a"], ids, mask)

    before = logits()
    blue = model.tokenizer.convert_tokens_to_ids("blue")
    with torch.no_grad():
        head.words.weight[blue, 3] = 2.5                      # colour's 4th value
        head.words.weight[model.tokenizer.pad_token_id] = 100.0
    after = logits()
    occurrences = ((ids == blue) & mask.bool()).sum(1).float()
    assert occurrences.tolist() == [1, 0, 0, 1]
    expected = before["color"].clone()
    expected[:, 3] += 2.5 * occurrences
    torch.testing.assert_close(after["color"], expected)
    torch.testing.assert_close(after["pattern"], before["pattern"])


def test_the_attribute_words_start_from_the_schemas_one_token_names(tmp_path):
    # A token that is by itself a surface form of exactly one value starts at KNOWN_WORD_LOGIT for it; a token
    # that is a form of two values ("black" below) and the pieces of multi-token forms ("v", "neck") stay at 0.
    from fashionvlp.tasks.attributes import KNOWN_WORD_LOGIT, AttributeExtraction

    model = _model(tmp_path, "fashionvil").eval()
    forms = ((("blue", "navy"), ("red",), ("black",)), (("v-neck",), ("crew", "black")))
    head = AttributeExtraction(model, ObjectiveContext(attributes=(("color", 3), ("neckline", 2)),
                                                       attribute_forms=forms))
    token = model.tokenizer.convert_tokens_to_ids
    table = head.words.weight.detach()
    assert table[token("blue"), 0] == KNOWN_WORD_LOGIT and table[token("red"), 1] == KNOWN_WORD_LOGIT
    assert (table[token("blue")] != 0).sum() == 1
    assert (table[token("black")] == 0).all()             # colour "black" and neckline "crew / black"
    assert (table[token("v")] == 0).all() and (table[token("dress")] == 0).all()
    ids = model.tokenizer(["a red dress"], return_tensors="pt")
    with torch.no_grad():
        words = head.word_logits(ids.input_ids, ids.attention_mask)
    assert words[0].argmax(-1).item() == 1                # the text names red
    torch.testing.assert_close(words[1], torch.zeros(1, 2))

