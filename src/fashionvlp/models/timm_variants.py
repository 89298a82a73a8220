"""CPU-sized ViTs registered with timm, so every encoder is one timm name away."""

from __future__ import annotations

from timm.models import generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer, _cfg, _create_vision_transformer

# timm reads a module's ``default_cfgs`` when registering its models; these have no released weights.
default_cfgs = generate_default_cfgs({
    "vit_micro_patch8.untrained": _cfg(input_size=(3, 64, 64), num_classes=0),
    "vit_micro_patch16.untrained": _cfg(input_size=(3, 128, 128), num_classes=0),
})

_MICRO = dict(embed_dim=128, depth=2, num_heads=4, mlp_ratio=4.0)


@register_model
def vit_micro_patch8(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """2 blocks, 128-d, 8-px patches (64 px → 8×8 grid). Random init only."""
    kwargs.setdefault("img_size", 64)
    return _create_vision_transformer("vit_micro_patch8", pretrained=pretrained, **dict(_MICRO, patch_size=8, **kwargs))


@register_model
def vit_micro_patch16(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """2 blocks, 128-d, 16-px patches (128 px → 8×8 grid). Random init only."""
    kwargs.setdefault("img_size", 128)
    return _create_vision_transformer("vit_micro_patch16", pretrained=pretrained, **dict(_MICRO, patch_size=16, **kwargs))
