"""The one interface both architectures expose; objectives and tasks are written against it only."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ImageFeatures:
    global_: torch.Tensor          # [B, H]
    patches: torch.Tensor          # [B, N, H], N = grid rows × cols


@dataclass
class TextFeatures:
    global_: torch.Tensor          # [B, H]
    tokens: torch.Tensor           # [B, L, H]


@dataclass
class FusedFeatures:
    pooled: torch.Tensor           # [B, H]  first token: ITM and classification read this
    embedding: torch.Tensor        # [B, H]  the fused global embedding (MVC, retrieval on fused features)
    text_tokens: torch.Tensor      # [B, L, H]  MLM reads these
    image_tokens: torch.Tensor | None  # [B, N, H] fused visual positions (single-stream only; MPFC reads these)


class VisionLanguageModel(nn.Module, abc.ABC):
    """``encode_image``, ``encode_text``, ``fuse`` and (if ``"decode"`` in capabilities) ``decode``."""

    arch: str = ""
    capabilities: frozenset[str] = frozenset()

    def __init__(self, hidden_size: int, contrastive_scale_init: float):
        super().__init__()
        self.hidden_size = hidden_size
        # logits = s²·cos, s learnable (FashionViL init 4 → temperature 1/16)
        self.contrastive_scale = nn.Parameter(torch.tensor(float(contrastive_scale_init)))
        # models/image_descriptor.py; attached by the registry when the config names one
        self.image_descriptor: nn.Module | None = None

    @property
    def readout_width(self) -> int:
        """Width of ``objectives.base.fused_readout``: first token, text mean and max, image embedding,
        descriptor."""
        return 4 * self.hidden_size + (self.image_descriptor.dim if self.image_descriptor is not None else 0)

    def contrastive_logits(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.contrastive_scale.square() * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t()

    @property
    @abc.abstractmethod
    def word_embeddings(self) -> nn.Embedding:
        """The text encoder's input embeddings (MLM and LM heads tie their output layer to them)."""

    @abc.abstractmethod
    def encode_image(self, pixels: torch.Tensor, image_keys: list[int] | None = None) -> ImageFeatures:
        """Unimodal image features. ``image_keys``: one per image, equal for equal pixels (a product's view
        and its flip), so a frozen image prior computes its features once per key in a fine-tuning."""

    @abc.abstractmethod
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        """Unimodal text features."""

    @abc.abstractmethod
    def fuse(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image: ImageFeatures) -> FusedFeatures:
        """Multimodal features of a text grounded in an image."""

    def decode(self, image: ImageFeatures, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from fashionvlp.errors import ModelInputError

        raise ModelInputError(f"the {self.arch} architecture has no text decoder (capabilities: "
                              f"{', '.join(sorted(self.capabilities)) or 'none'})")

    def image_parameters(self) -> list[nn.Parameter]:
        """The image encoder's parameters (FashionViL trains them at a higher learning rate)."""
        return list(self.image_encoder.parameters())


class PredictionHead(nn.Module):
    """BERT's LM head: transform (dense, GELU, LayerNorm) then a decoder tied to the word embeddings."""

    def __init__(self, word_embeddings: nn.Embedding, eps: float = 1e-12):
        super().__init__()
        hidden = word_embeddings.weight.shape[1]
        self.transform = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=eps))
        self.word_embeddings = word_embeddings
        self.bias = nn.Parameter(torch.zeros(word_embeddings.weight.shape[0]))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), self.word_embeddings.weight, self.bias)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def masked_max(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per feature, the largest value over the unmasked tokens (padding never wins)."""
    return tokens.masked_fill(~mask.bool().unsqueeze(-1), torch.finfo(tokens.dtype).min).amax(1)
