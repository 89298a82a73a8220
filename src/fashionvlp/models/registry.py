"""Architectures by name (timm-style decorator), and building, saving and loading a model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from fashionvlp.config import ModelConfig
from fashionvlp.models.image_descriptor import build_image_descriptor
from fashionvlp.errors import ModelInputError
from fashionvlp.models.image_encoders import build_image_encoder

ARCHITECTURES: dict[str, type] = {}
MODEL_FILE, WEIGHTS_FILE, TOKENIZER_DIR = "model.json", "model.safetensors", "tokenizer"


def register_architecture(name: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        ARCHITECTURES[name] = cls
        return cls
    return add


def _architecture(name: str) -> type:
    from fashionvlp.models import fashionvil, kgflip  # noqa: F401  (they register themselves)

    if name not in ARCHITECTURES:
        raise ModelInputError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def build_model(cfg: ModelConfig, resolve: Callable[[Path], Path] = Path, train_texts: Iterable[str] | None = None,
                tokenizer_out: Path | None = None):
    """A fresh model: encoders from their configured (local) weights, fusion parts randomly initialised."""
    from fashionvlp.models.text_encoders import build_text_encoder

    cls = _architecture(cfg.arch)
    image = build_image_encoder(cfg.image, resolve(cfg.image.checkpoint) if cfg.image.checkpoint else None)
    bert, tokenizer = build_text_encoder(cfg.text, resolve, train_texts, tokenizer_out)
    model = cls(cfg, image, bert, tokenizer)
    model.image_descriptor = build_image_descriptor(cfg.image_descriptor, image.normalization)
    return model


def save_pretrained(model, out: Path, cfg: ModelConfig, extra: dict | None = None) -> Path:
    """``out/model.json`` (configs), ``out/model.safetensors`` (every weight), ``out/tokenizer/``."""
    from safetensors.torch import save_model

    out.mkdir(parents=True, exist_ok=True)
    meta = {"arch": model.arch, "model": cfg.model_dump(mode="json"), "bert_config": model.text.config.to_dict(),
            "image_grid": list(model.image_encoder.grid), **(extra or {})}
    (out / MODEL_FILE).write_text(json.dumps(meta, indent=2, default=str))
    model.tokenizer.save_pretrained(str(out / TOKENIZER_DIR))
    save_model(model, str(out / WEIGHTS_FILE))
    return out


def load_pretrained(path: Path, expect_arch: str | None = None):
    """Rebuilds a saved model without touching its original weight sources, then loads its weights."""
    from safetensors.torch import load_model
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = Path(path)
    if not (path / MODEL_FILE).is_file():
        raise ModelInputError(f"{path} is not a saved fashionvlp model (no {MODEL_FILE})")
    meta = json.loads((path / MODEL_FILE).read_text())
    if expect_arch and meta["arch"] != expect_arch:
        raise ModelInputError(f"{path} holds a {meta['arch']} model, but {expect_arch} was asked for")
    cfg = ModelConfig.model_validate(meta["model"])
    cfg = cfg.model_copy(update={"image": cfg.image.model_copy(update={"pretrained": False, "checkpoint": None})})
    image = build_image_encoder(cfg.image, prior_pretrained=False)
    bert = BertModel(BertConfig.from_dict(meta["bert_config"]), add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(str(path / TOKENIZER_DIR))
    model = _architecture(meta["arch"])(cfg, image, bert, tokenizer)
    model.image_descriptor = build_image_descriptor(cfg.image_descriptor, image.normalization, pretrained=False)
    load_model(model, str(path / WEIGHTS_FILE))
    model.model_config = cfg
    return model
