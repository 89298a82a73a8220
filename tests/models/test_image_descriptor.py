import pytest
import torch

from fashionvlp.models.image_descriptor import (EFFICIENTNET_LITE0_S16, EFFICIENTNET_LITE0_S16_GRID,
                                                build_image_descriptor)
from fashionvlp.errors import ModelInputError
from fashionvlp.models.image_encoders import IMAGENET_MEAN, IMAGENET_STD, Normalization
from tests.conftest import tiny_params

ITC_ONLY = "pretrain.objectives={itc: 1, itm: 0, mlm: 0, mpfc: 0, mvc: 0, pac: 0}"


def test_the_descriptor_converts_the_models_normalisation_and_stays_frozen():
    half = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    for_vit = build_image_descriptor(EFFICIENTNET_LITE0_S16, half)
    for_imagenet = build_image_descriptor(EFFICIENTNET_LITE0_S16, Normalization())
    raw = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    imagenet = (raw - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(for_vit((raw - 0.5) / 0.5), for_imagenet(imagenet), atol=1e-4)

    for_vit.train()
    assert not for_vit.blocks.training and not for_vit.stem.training  # BatchNorm keeps ImageNet's statistics
    for_vit(imagenet).square().sum().backward()
    trained = {name for name, p in for_vit.named_parameters() if p.grad is not None}
    assert trained == {"norm.weight", "norm.bias"}
    assert for_vit.dim == 2 * (40 + 112) and for_vit(imagenet).shape == (2, for_vit.dim)


def test_the_grid_descriptor_keeps_where_a_shape_sits_which_the_pooled_one_discards():
    grid = build_image_descriptor(EFFICIENTNET_LITE0_S16_GRID, Normalization())
    grid.norm = torch.nn.Identity()  # compare the raw slices, not LayerNorm's mix of them
    pooled_dim = 2 * (40 + 112)
    assert grid.dim == pooled_dim + 112 * 4 * 4
    top_left, bottom_right = torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)
    top_left[..., 4:20, 4:20] = 2.0
    bottom_right[..., 44:60, 44:60] = 2.0
    with torch.no_grad():
        a, b = grid(top_left)[0], grid(bottom_right)[0]
    assert a.shape == (grid.dim,)
    relative = lambda x, y: float((x - y).norm() / (x.norm() + y.norm()))  # noqa: E731
    # The same square anywhere pools to nearly the same mean and max; the grid moves with it.
    assert relative(a[pooled_dim:], b[pooled_dim:]) > 3 * relative(a[:pooled_dim], b[:pooled_dim])


def test_an_unknown_descriptor_is_refused_by_name():
    with pytest.raises(ModelInputError, match="'resnet_s16'.*efficientnet_lite0_s16"):
        build_image_descriptor("resnet_s16", Normalization())
    assert build_image_descriptor(None, Normalization()) is None


def test_attaching_a_descriptor_leaves_the_models_own_initialisation_and_later_draws_as_they_were(tmp_path):
    from fashionvlp.models.registry import build_model

    texts = ["red floral midi dress", "blue striped cotton shirt", "black leather ankle boots"] * 20

    def fresh(descriptor):
        torch.manual_seed(0)
        model = build_model(tiny_params(tmp_path, f"model.image_descriptor={descriptor}").model,
                            train_texts=texts, tokenizer_out=tmp_path / f"tokenizer-{descriptor}")
        return model, torch.rand(4)

    (plain, plain_draw), (described, described_draw) = fresh("null"), fresh(EFFICIENTNET_LITE0_S16)
    assert described.image_descriptor is not None and plain.image_descriptor is None
    own = {k: v for k, v in described.state_dict().items() if not k.startswith("image_descriptor.")}
    assert own.keys() == plain.state_dict().keys()
    for name, value in plain.state_dict().items():
        assert torch.equal(own[name], value), name
    assert torch.equal(plain_draw, described_draw)


def test_a_fine_tuning_attaches_the_descriptor_to_a_pre_trained_model_without_one(tmp_path, tiny_catalog):
    from safetensors.torch import load_file

    from fashionvlp.models.registry import load_pretrained
    from fashionvlp.stages.finetune import finetune
    from fashionvlp.stages.pretrain import config_fingerprint, pretrain

    plain = tiny_params(tmp_path, "model.image_descriptor=null", ITC_ONLY,
                        "evaluation.allow_fallback=true")
    described = tiny_params(tmp_path, f"model.image_descriptor={EFFICIENTNET_LITE0_S16}",
                            ITC_ONLY, "evaluation.allow_fallback=true")
    assert config_fingerprint(plain) == config_fingerprint(described)  # pre-training does not read it
    pretrained = pretrain(plain, tiny_catalog).model_dir
    assert load_pretrained(pretrained).image_descriptor is None

    result = finetune(described, "classification", pretrained, tiny_catalog, out=tmp_path / "classification")
    model = load_pretrained(result.model_dir)
    assert model.model_config.image_descriptor == EFFICIENTNET_LITE0_S16
    fresh = build_image_descriptor(EFFICIENTNET_LITE0_S16, model.image_encoder.normalization)
    frozen = {k: v for k, v in fresh.state_dict().items() if not k.startswith("norm.")}
    saved = load_file(str(result.model_dir / "objectives.safetensors"))
    heads_in = saved["classification.subcategory_head.1.weight"].shape[1]
    assert heads_in == 4 * model.hidden_size + fresh.dim == model.readout_width
    for name, value in frozen.items():  # the fine-tuning did not move the frozen weights
        assert torch.equal(model.image_descriptor.state_dict()[name], value), name
    assert 0.0 <= result.metrics["SCR"]["accuracy"] <= 100.0


def test_heads_learn_at_their_own_rate_and_the_frozen_descriptor_not_at_all(tmp_path, tiny_catalog):
    import fashionvlp.tasks.attributes  # noqa: F401  (registers its objective)
    from fashionvlp.stages.pretrain import prepare
    from fashionvlp.training.loop import _param_groups

    params = tiny_params(tmp_path, ITC_ONLY, "pretrain.lr=0.001", "pretrain.lr_multiplier=2",
                         "model.image.prior=efficientnet_lite0_s16")
    loop = params.pretrain.model_copy(update={"objectives": {"attributes": 1.0}, "head_lr_multiplier": 5.0})
    suite = prepare(params, tiny_catalog, objectives={"attributes": 1.0}, train_cfg=loop).suite
    lr_of = {id(p): group["lr"] for group in _param_groups(suite, loop) for p in group["params"]}
    lr_of_heads = list(suite.objectives.parameters())
    assert [lr_of[id(p)] for p in suite.objectives.parameters()] == pytest.approx([0.01] * len(lr_of_heads))
    assert {lr_of[id(p)] for p in suite.model.text.parameters()} == {0.001}
    encoder = suite.model.image_encoder
    assert {lr_of[id(p)] for p in encoder.backbone.parameters()} == {0.002}
    assert {lr_of[id(p)] for p in encoder.prior.norm.parameters()} == {0.002}
    assert not any(id(p) in lr_of for p in encoder.prior.blocks.parameters())
    descriptor = suite.model.image_descriptor
    assert {lr_of[id(p)] for p in descriptor.norm.parameters()} == {0.002}
    assert not any(id(p) in lr_of for p in descriptor.blocks.parameters())


def test_keyed_images_run_the_frozen_convolutions_once_and_read_the_same():
    # OCIR's items are the products' unaugmented views, seen every epoch: keyed by product, their frozen
    # features are computed once; the trained LayerNorm still applies each time, so the output is unchanged.
    descriptor = build_image_descriptor(EFFICIENTNET_LITE0_S16, Normalization())
    pixels = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    computed = []
    original = descriptor.frozen_features
    descriptor.frozen_features = lambda x: computed.append(len(x)) or original(x)
    with torch.no_grad():
        plain = descriptor(pixels)
        first = descriptor(pixels, [7, 8, 9])
        again = descriptor(pixels[[2, 0]], [9, 7])
    assert computed == [3, 3]                                # unkeyed, then the three keys once
    torch.testing.assert_close(first, plain)
    torch.testing.assert_close(again, plain[[2, 0]])
    descriptor.norm.bias.data += 1.0                          # the LayerNorm trains: applied after the kept features
    with torch.no_grad():
        torch.testing.assert_close(descriptor(pixels, [7, 8, 9]), plain + 1.0)
    assert computed == [3, 3]


def test_keyed_features_beyond_the_cap_are_computed_each_time(monkeypatch):
    # Memory stays bounded on a large catalog: past MAX_KEPT keys, features are computed, not kept.
    import fashionvlp.models.image_descriptor as module

    monkeypatch.setattr(module, "MAX_KEPT", 2)
    descriptor = build_image_descriptor(EFFICIENTNET_LITE0_S16, Normalization())
    pixels = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = descriptor(pixels)
        first = descriptor(pixels, [1, 2, 3])
        again = descriptor(pixels, [1, 2, 3])
    assert set(descriptor._kept) == {1, 2}
    torch.testing.assert_close(first, plain)
    torch.testing.assert_close(again, plain)


def test_the_grid_prior_adds_the_frozen_map_to_every_patch_token_and_keeps_it_per_key():
    from fashionvlp.config import ImageEncoderConfig
    from fashionvlp.errors import ModelInputError
    from fashionvlp.models.image_encoders import build_image_encoder

    config = ImageEncoderConfig(name="vit_micro_patch8", image_size=64, prior=EFFICIENTNET_LITE0_S16)
    encoder = build_image_encoder(config)
    pixels = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = encoder(pixels)
        keyed = encoder(pixels, [7, 8, 9])
        again = encoder(pixels, [7, 8, 9])
    assert plain.shape == (3, encoder.num_patches, encoder.backbone_dim + 112) and encoder.dim == plain.shape[-1]
    torch.testing.assert_close(keyed, plain)
    torch.testing.assert_close(again, plain)
    assert set(encoder.prior._kept) == {7, 8, 9}
    # the prior's part of a token reads its own region of the image: the 4 x 4 stride-16 map on 8 x 8 patches
    prior = plain[..., encoder.backbone_dim:]
    assert not torch.allclose(prior[0, 0], prior[0, -1])
    torch.testing.assert_close(prior[0, 0], prior[0, 1])  # two patches of one stride-16 cell
    encoder.train()
    assert not encoder.prior.blocks.training and encoder.backbone.training
    assert not any(p.requires_grad for p in encoder.prior.blocks.parameters())
    # a saved model's prior is rebuilt without the package's weights, then loaded
    fresh = build_image_encoder(config, prior_pretrained=False)
    fresh.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(pixels), encoder.eval()(pixels))
    with pytest.raises(ModelInputError, match="model.image.prior"):
        build_image_encoder(config.model_copy(update={"prior": "no_such_prior"}))
