"""Image and text encoders: timm by name, packaged weights, local checkpoints only, clear errors."""

import pytest
import torch

from fashionvlp.config import ImageEncoderConfig, TextEncoderConfig
from fashionvlp.models.bert_blocks import embed_text, run_encoder
from fashionvlp.errors import ModelInputError
from fashionvlp.models.image_encoders import build_image_encoder
from fashionvlp.models.text_encoders import build_text_encoder, minilm_path, train_wordpiece

TEXTS = ["a blue v-neck dress with long sleeves", "red cotton shirt with buttons", "black leather heels"] * 30


@pytest.mark.parametrize("name, size, grid, dim", [
    ("vit_micro_patch8", 64, (8, 8), 128),
    ("vit_micro_patch16", 128, (8, 8), 128),
    ("resnet50", 224, (7, 7), 2048),          # FashionViL's paper encoder
    ("vit_base_patch16_224", 224, (14, 14), 768),
])
def test_timm_encoders_give_patch_grids(name, size, grid, dim):
    enc = build_image_encoder(ImageEncoderConfig(name=name, image_size=size))
    assert enc.grid == grid and enc.dim == dim
    with torch.no_grad():
        assert enc(torch.zeros(1, 3, size, size)).shape == (1, grid[0] * grid[1], dim)


def test_packaged_efficientnet_lite0_has_imagenet_weights():
    pretrained = build_image_encoder(ImageEncoderConfig(name="efficientnet_lite0_packaged", image_size=224, pretrained=True))
    random = build_image_encoder(ImageEncoderConfig(name="efficientnet_lite0_packaged", image_size=224))
    assert pretrained.grid == (7, 7) and pretrained.dim == 1280
    first = next(pretrained.backbone.parameters())
    assert not torch.equal(first, next(random.backbone.parameters()))


def test_timm_checkpoint_is_a_local_file(tmp_path):
    with pytest.raises(ModelInputError, match="does not exist.*never downloaded"):
        build_image_encoder(ImageEncoderConfig(name="resnet18", image_size=64, pretrained=True), tmp_path / "nope.pth")
    with pytest.raises(ModelInputError, match="needs a local checkpoint"):
        build_image_encoder(ImageEncoderConfig(name="resnet18", image_size=64, pretrained=True))
    source = build_image_encoder(ImageEncoderConfig(name="resnet18", image_size=64))
    path = tmp_path / "resnet18.pth"
    torch.save(source.backbone.state_dict(), path)
    loaded = build_image_encoder(ImageEncoderConfig(name="resnet18", image_size=64, pretrained=True), path)
    assert torch.equal(next(loaded.backbone.parameters()), next(source.backbone.parameters()))
    with pytest.raises(ModelInputError, match="unknown image encoder"):
        build_image_encoder(ImageEncoderConfig(name="no_such_net"))


def test_packaged_minilm_and_our_forward_match_hf():
    bert, tokenizer = build_text_encoder(TextEncoderConfig())
    bert.eval()
    enc = tokenizer(["a blue v-neck dress", "shoes"], padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = run_encoder(bert, embed_text(bert, enc.input_ids), enc.attention_mask)
        ref = bert(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
    keep = enc.attention_mask.bool()
    assert bert.config.hidden_size == 384 and bert.config.num_hidden_layers == 6
    assert (ours[keep] - ref[keep]).abs().max() < 1e-5


def test_scratch_bert_trains_a_catalog_wordpiece(tmp_path):
    cfg = TextEncoderConfig(source="scratch", scratch={"vocab_size": 200, "hidden_size": 32, "layers": 1, "heads": 2,
                                                       "intermediate_size": 64})
    bert, tokenizer = build_text_encoder(cfg, train_texts=TEXTS, tokenizer_out=tmp_path / "tok")
    assert bert.config.vocab_size == len(tokenizer) and (tmp_path / "tok" / "tokenizer.json").exists()
    assert "sleeves" in tokenizer.get_vocab() or "sleeve" in tokenizer.get_vocab()


def test_tokenizer_that_does_not_match_the_model(tmp_path):
    train_wordpiece(TEXTS, 200, tmp_path / "tok")
    with pytest.raises(ModelInputError, match="do not belong together"):
        build_text_encoder(TextEncoderConfig(tokenizer=tmp_path / "tok"))
    with pytest.raises(ModelInputError, match="nothing is downloaded"):
        build_text_encoder(TextEncoderConfig(source="path", path=tmp_path / "bert-base-uncased"))
    assert (minilm_path() / "config.json").exists()
