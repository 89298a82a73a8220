"""A small convolutional VQ-VAE whose code map lines up with the image encoder's patch grid.

The encoder downsamples by exactly image_size / grid (a power of two), so code (i, j) covers patch (i, j).
The quantiser is vector-quantize-pytorch's EMA codebook, with dead codes re-seeded from the batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from vector_quantize_pytorch import VectorQuantize

from fashionvlp.errors import ModelInputError


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def downsample_factor(image_size: int, grid: tuple[int, int]) -> int:
    if grid[0] != grid[1] or image_size % grid[0]:
        raise ModelInputError(f"a {grid[0]}×{grid[1]} patch grid does not tile a {image_size} px image evenly")
    factor = image_size // grid[0]
    if factor < 2 or factor & (factor - 1):
        raise ModelInputError(f"the VQ-VAE needs image_size / grid to be a power of two ≥ 2, got {factor}")
    return factor


class VQVAE(nn.Module):
    def __init__(self, factor: int, hidden: int, code_dim: int, codebook_size: int, ema_decay: float,
                 commitment_weight: float, dead_code_threshold: float):
        super().__init__()
        steps = int(math.log2(factor))
        # Channels grow as resolution falls; no convolution runs at full resolution (CPU cost).
        widths = [max(8, hidden >> (steps - 1 - i)) for i in range(steps)]
        down: list[nn.Module] = []
        for c_in, c_out in zip([3] + widths[:-1], widths):
            down += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, nn.Conv2d(hidden, hidden, 3, padding=1), ResBlock(hidden), ResBlock(hidden),
                                     nn.ReLU(), nn.Conv2d(hidden, code_dim, 1))
        self.quantizer = VectorQuantize(dim=code_dim, codebook_size=codebook_size, decay=ema_decay,
                                        commitment_weight=commitment_weight, accept_image_fmap=True,
                                        threshold_ema_dead_code=dead_code_threshold, kmeans_init=True)
        up: list[nn.Module] = [nn.Conv2d(code_dim, hidden, 3, padding=1), ResBlock(hidden), ResBlock(hidden)]
        rev = widths[::-1]
        for c_in, c_out in zip(rev, rev[1:] + [3]):
            up += [nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*up)
        self.codebook_size = codebook_size

    def forward(self, pixels: torch.Tensor):
        """pixels in [-1, 1] → (reconstruction, codes [B, h, w], commitment loss)."""
        quantized, codes, commitment = self.quantizer(self.encoder(pixels))
        return self.decoder(quantized), codes, commitment

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        _, codes, _ = self.quantizer(self.encoder(pixels))
        return codes


def perplexity(codes: torch.Tensor, codebook_size: int) -> float:
    """exp(entropy) of code usage: the effective number of codes in use."""
    counts = torch.bincount(codes.flatten(), minlength=codebook_size).float()
    p = counts / counts.sum()
    return float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
