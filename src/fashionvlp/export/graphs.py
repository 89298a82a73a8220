"""The modules that become ONNX graphs: thin views of a model (and its task heads) with tensor-only
inputs and outputs, in the order serving feeds and reads them."""

from __future__ import annotations

import torch
from torch import nn


class ImageGraph(nn.Module):
    """pixels [B,3,S,S] → global embedding [B,H], patch embeddings [B,N,H]."""

    input_names = ("pixels",)

    def __init__(self, model):
        super().__init__()
        self.model = model

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("image_embedding", "patch_embeddings")

    def forward(self, pixels: torch.Tensor):
        features = self.model.encode_image(pixels)
        return features.global_, features.patches


class TextGraph(nn.Module):
    """input_ids, attention_mask [B,L] → global embedding [B,H]."""

    input_names = ("input_ids", "attention_mask")

    def __init__(self, model):
        super().__init__()
        self.model = model

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("text_embedding",)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.model.encode_text(input_ids, attention_mask).global_


class FusedHeadGraph(nn.Module):
    """pixels, input_ids, attention_mask → a task head's outputs on the fused features."""

    input_names = ("pixels", "input_ids", "attention_mask")

    def __init__(self, model, head):
        super().__init__()
        self.model, self.head = model, head


class AttributeGraph(FusedHeadGraph):
    """→ one probability vector per attribute (schema order)."""

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(f"attribute_{name}" for name in self.head.names)

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        logits = self.head.logits(self.model, pixels, input_ids, attention_mask)
        return tuple(torch.softmax(logits[name], -1) for name in self.head.names)


class CategoryGraph(FusedHeadGraph):
    """→ category logits [B,C], subcategory logits [B,S]."""

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("category_logits", "subcategory_logits")

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.head.logits(self.model, pixels, input_ids, attention_mask)
