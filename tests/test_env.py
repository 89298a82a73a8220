"""fix_threads makes torch's kernels deterministic: the accumulating index_put_ (the backward of advanced
indexing) otherwise adds repeated indices with atomics in the order two threads happen to arrive."""

import pytest
import torch

from fashionvlp.env import fix_threads


def _accumulate(index: torch.Tensor, values: torch.Tensor) -> bytes:
    out = torch.zeros(50, values.shape[1])
    out.index_put_((index,), values, accumulate=True)
    return out.numpy().tobytes()


def test_accumulating_index_put_gives_the_same_bits_every_time_on_two_threads():
    previous = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    try:
        generator = torch.Generator().manual_seed(0)
        index = torch.randint(0, 50, (4000,), generator=generator)   # many repeats per row
        values = torch.randn(4000, 384, generator=generator)           # over torch's parallel grain
        assert fix_threads(2)["torch_threads"] == 2
        assert torch.are_deterministic_algorithms_enabled()
        assert len({_accumulate(index, values) for _ in range(20)}) == 1
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])


def _inference_bits(model, ids, mask, pixels) -> bytes:
    with torch.no_grad():
        image = model.encode_image(pixels)
        parts = [image.global_, model.encode_text(ids, mask).global_, model.fuse(ids, mask, image).pooled]
    return b"".join(t.numpy().tobytes() for t in parts)


@pytest.mark.parametrize("arch", ["fashionvil", "kgflip"])
def test_inference_gives_the_same_bits_on_one_and_two_threads(tmp_path, arch):
    """What lets ``evaluation.threads`` differ between a standalone evaluation and the retrain flow's
    workers: at the default model's widths (384, batch 64, 40 tokens + 64 patches, big enough for MKL and
    torch to split the work), the image, text and fused outputs do not depend on the thread count."""
    from fashionvlp.config import ModelConfig
    from fashionvlp.models.registry import build_model

    previous = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    try:
        cfg = ModelConfig.model_validate({
            "arch": arch, "image": {"name": "vit_micro_patch8", "image_size": 64},
            "text": {"source": "scratch", "max_length": 40,
                     "scratch": {"vocab_size": 300, "hidden_size": 384, "layers": 2, "heads": 6,
                                 "intermediate_size": 1536}}})
        texts = [f"a {c} {g} with {d} sleeves" for c in ("red", "blue", "black", "white") for g in
                 ("dress", "shirt", "skirt", "coat") for d in ("long", "short", "no")] * 4
        model = build_model(cfg, train_texts=texts, tokenizer_out=tmp_path / "tok").eval()
        generator = torch.Generator().manual_seed(0)
        enc = model.tokenizer((texts * 2)[:64], padding="max_length", max_length=40, return_tensors="pt")
        pixels = torch.randn(64, 3, 64, 64, generator=generator)
        bits = {}
        for threads in (1, 2):
            fix_threads(threads)
            bits[threads] = _inference_bits(model, enc.input_ids, enc.attention_mask, pixels)
        assert torch.get_num_threads() == 2 and bits[1] == bits[2]
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])
