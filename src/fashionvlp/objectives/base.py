"""The objective interface: ``forward(model, batch) → {"loss/<name>": …, "acc/<name>": …}``.

An objective owns its batch preparation (masking, negatives), its head and its loss. It declares the
model capabilities it needs, so a config asking for, say, LM on FashionViL fails before training.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from fashionvlp.errors import ModelInputError
from fashionvlp.models.interface import masked_max, masked_mean

OBJECTIVES: dict[str, Callable[..., "Objective"]] = {}


@dataclass(frozen=True)
class ObjectiveContext:
    mask_probability: float = 0.15
    mpfc_mask_ratio: float = 0.16
    num_pseudo_attributes: int = 0
    codebook_size: int = 0
    num_categories: int = 0
    num_subcategories: int = 0
    # (attribute, number of values) in the schema's order: the attribute-extraction heads
    attributes: tuple[tuple[str, int], ...] = ()
    # per attribute, per value (same order): the schema's surface forms ("navy", "cobalt" for blue)
    attribute_forms: tuple[tuple[tuple[str, ...], ...], ...] = ()


class Objective(nn.Module, abc.ABC):
    name: str = ""
    requires: frozenset[str] = frozenset()
    needs_patch_labels: bool = False

    @abc.abstractmethod
    def forward(self, model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named losses (``loss/<name>``, with a graph) and detached diagnostics (``acc/<name>``…)."""


# The batch entry that keys a batch's pixels (one key per image, equal for equal pixels), where there is one.
_IMAGE_KEYS = {"pixels_a": "image_key_a"}


def encoded_image(model, batch: dict, key: str = "pixels_a"):
    """``model.encode_image(batch[key])``, computed once per step: objectives summed in one step share it."""
    cache = batch.setdefault("_image_features", {})
    if key not in cache:
        keys = batch.get(_IMAGE_KEYS.get(key, ""))
        cache[key] = model.encode_image(batch[key], None if keys is None else keys.tolist())
    return cache[key]


def fused_readout(model, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  image_keys: list[int] | None = None) -> torch.Tensor:
    """[B, model.readout_width]: the fused first token, the mean and the max of the fused text tokens, the
    unimodal image embedding and the frozen image descriptor (if the model has one): what the classification
    and attribute heads read. Why not the first token alone: a short fine-tuning of a head on it learns
    little more than each value's prior, while the text's words (the mean keeps which ones are there) and
    the image features (colour, pattern) hold the answer plainly. The max keeps a single word that the
    mean of 20 tokens dilutes ("shown in camel"): with it the attribute heads read material 43.5 → 58.1
    and R@90P 66.0 → 70.0 at 300 steps (README). ``image_keys``: one per image (a view and its flip), so the
    frozen descriptor's (and the image prior's) convolutions run once per key in a fine-tuning."""
    image = model.encode_image(pixels, image_keys)
    fused = model.fuse(input_ids, attention_mask, image)
    parts = [fused.pooled, masked_mean(fused.text_tokens, attention_mask),
             masked_max(fused.text_tokens, attention_mask), image.global_]
    if model.image_descriptor is not None:
        parts.append(model.image_descriptor(pixels, image_keys))
    return torch.cat(parts, dim=-1)


def register_objective(name: str, **defaults):
    """``@register_objective("kg_mlim", policy="attribute_first")`` registers a configured variant."""
    def add(cls):
        def factory(model, context: ObjectiveContext):
            obj = cls(model, context, **defaults)
            obj.name = name
            return obj
        factory.cls = cls
        OBJECTIVES[name] = factory
        return cls
    return add


def build_objectives(names: list[str], model, context: ObjectiveContext) -> nn.ModuleDict:
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise ModelInputError(f"unknown objective(s) {unknown}; known: {', '.join(sorted(OBJECTIVES))}")
    for name in names:
        missing = OBJECTIVES[name].cls.requires - model.capabilities
        if missing:
            raise ModelInputError(f"objective {name!r} needs {', '.join(sorted(missing))}, which the {model.arch} "
                                  f"architecture does not have: switch it off (pretrain.objectives.{name}=0)")
    return nn.ModuleDict({name: OBJECTIVES[name](model, context) for name in names})


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenates ``x`` over processes keeping gradients; returns it and this process's row offset."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    from torch.distributed.nn.functional import all_gather

    parts = all_gather(x)
    return torch.cat(parts), dist.get_rank() * x.shape[0]


def info_nce(model, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE: local ``a`` rows against every process's ``b``, and local ``b`` against every ``a``.

    Returns (loss, a→b top-1 accuracy). Logits are the model's s²·cos.
    """
    all_a, offset = gather_with_grad(a)
    all_b, _ = gather_with_grad(b)
    labels = torch.arange(a.shape[0], device=a.device) + offset
    logits_ab = model.contrastive_logits(a, all_b)
    logits_ba = model.contrastive_logits(b, all_a)
    loss = (nn.functional.cross_entropy(logits_ab, labels) + nn.functional.cross_entropy(logits_ba, labels)) / 2
    return loss, (logits_ab.argmax(1) == labels).float().mean()
