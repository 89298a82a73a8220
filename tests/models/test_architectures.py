"""FashionViL and KG-FLIP behind one interface; KG-FLIP's encoder is bidirectional, its decoder causal."""

import pytest
import torch

from fashionvlp.config import ModelConfig
from fashionvlp.errors import ModelInputError
from fashionvlp.models.registry import build_model, load_pretrained, save_pretrained

TEXTS = ["a blue v-neck dress with long sleeves", "red cotton shirt with buttons", "black leather heels"] * 30


def _model(tmp_path, arch, **extra):
    cfg = ModelConfig.model_validate({
        "arch": arch, "image": {"name": "vit_micro_patch8", "image_size": 32},
        "text": {"source": "scratch", "scratch": {"vocab_size": 200, "hidden_size": 32, "layers": 2, "heads": 2,
                                                  "intermediate_size": 64}}, **extra})
    return build_model(cfg, train_texts=TEXTS, tokenizer_out=tmp_path / f"tok-{arch}").eval(), cfg


def _batch(model):
    enc = model.tokenizer(["blue dress with long sleeves", "red shirt"], padding=True, return_tensors="pt")
    return enc.input_ids, enc.attention_mask, torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("arch", ["fashionvil", "kgflip"])
def test_one_interface(tmp_path, arch):
    model, cfg = _model(tmp_path, arch)
    ids, mask, pixels = _batch(model)
    image = model.encode_image(pixels)
    text = model.encode_text(ids, mask)
    fused = model.fuse(ids, mask, image)
    h = model.hidden_size
    assert image.patches.shape == (2, 16, h) and image.global_.shape == (2, h) and text.global_.shape == (2, h)
    assert fused.pooled.shape == (2, h) and fused.text_tokens.shape[:2] == ids.shape
    if arch == "fashionvil":
        assert fused.image_tokens.shape == (2, 16, h)
        # fused embedding = mean of the fusion outputs at the visual positions
        assert torch.allclose(fused.embedding, fused.image_tokens.mean(1))
        # image global = mean of the projected patches; logits = s²·cos with s = 4
        assert torch.allclose(image.global_, image.patches.mean(1))
        assert torch.isclose(model.contrastive_scale, torch.tensor(4.0))
    else:
        assert fused.image_tokens is None and model.decode(image, ids, mask).shape == (*ids.shape, len(model.tokenizer))
    save_pretrained(model, tmp_path / "saved", cfg)
    again = load_pretrained(tmp_path / "saved", expect_arch=arch).eval()
    assert torch.allclose(again.fuse(ids, mask, again.encode_image(pixels)).pooled, fused.pooled, atol=1e-6)
    other = "kgflip" if arch == "fashionvil" else "fashionvil"
    with pytest.raises(ModelInputError, match=f"holds a {arch} model"):
        load_pretrained(tmp_path / "saved", expect_arch=other)


def test_fashionvil_shared_or_separate_fusion_encoder(tmp_path):
    shared, _ = _model(tmp_path, "fashionvil")
    separate, _ = _model(tmp_path, "fashionvil", shared_fusion=False)
    assert shared.fusion is shared.text
    assert separate.fusion is not separate.text
    assert not set(map(id, separate.fusion.parameters())) & set(map(id, separate.text.parameters()))
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(separate) - n(shared) == n(separate.fusion)


def test_kgflip_encoder_is_bidirectional_and_decoder_causal(tmp_path):
    model, _ = _model(tmp_path, "kgflip")
    ids, mask, pixels = _batch(model)
    image = model.encode_image(pixels)
    changed = ids.clone()
    last = int(mask[0].sum()) - 2          # a real token near the end of sample 0
    vocab = len(model.tokenizer) - 2          # stay below [ENC]/[DEC]
    changed[0, last] = (changed[0, last] + 7) % (vocab - 5) + 5
    with torch.no_grad():
        enc_a = model.fuse(ids, mask, image).text_tokens
        enc_b = model.fuse(changed, mask, image).text_tokens
        dec_a = model.decode(image, ids, mask)
        dec_b = model.decode(image, changed, mask)
        txt_a, txt_b = model.text_mode(ids, mask), model.text_mode(changed, mask)
    # A later token changes earlier outputs of the encoder (bidirectional) …
    assert not torch.allclose(enc_a[0, :last], enc_b[0, :last])
    assert not torch.allclose(txt_a[0, :last], txt_b[0, :last])
    # … but never earlier outputs of the decoder (causal).
    assert torch.allclose(dec_a[0, :last], dec_b[0, :last], atol=1e-6)
    assert not torch.allclose(dec_a[0, last:], dec_b[0, last:])
    # The image matters to the grounded encoder; text mode ignores it.
    with torch.no_grad():
        other = model.fuse(ids, mask, model.encode_image(torch.randn(2, 3, 32, 32))).text_tokens
    assert not torch.allclose(enc_a, other)


def test_kgflip_decoder_shares_all_but_self_attention(tmp_path):
    model, _ = _model(tmp_path, "kgflip")
    enc_sa = {id(p) for layer in model.text.encoder.layer for p in layer.attention.parameters()}
    dec_sa = {id(p) for m in model.decoder_self_attention for p in m.parameters()}
    assert not enc_sa & dec_sa
    # Everything else the decoder runs (embeddings, cross-attention, FFN, LM head tied to word embeddings) is shared.
    assert model.lm_head.word_embeddings is model.text.embeddings.word_embeddings
    assert len(model.decoder_self_attention) == len(model.cross_attention) == model.text.config.num_hidden_layers
    tok = model.tokenizer
    assert tok.convert_tokens_to_ids("[ENC]") == model.enc_token_id != model.dec_token_id
    assert len(tok) == model.text.config.vocab_size
