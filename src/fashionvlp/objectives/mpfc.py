"""MPFC: predict the VQ-VAE code of each masked patch from the other patches and the text.

About 16% of the grid is masked blockwise (BEiT). Masked cells are zeroed in the pixels (so the image
encoder cannot see them) and their tokens replaced by a learned mask embedding before fusion. Targets
are the codes of the *unmasked* image, precomputed by the frozen VQ-VAE (``data.patch_labels``).
"""

from __future__ import annotations

import torch
from torch import nn

from fashionvlp.models.interface import ImageFeatures
from fashionvlp.objectives.base import Objective, register_objective
from fashionvlp.objectives.masking import block_mask


@register_objective("mpfc")
class MaskedPatchFeatureClassification(Objective):
    requires = frozenset({"fused_image_tokens"})
    needs_patch_labels = True

    def __init__(self, model, context):
        super().__init__()
        if context.codebook_size < 2:
            raise ValueError("MPFC needs patch labels (a VQ-VAE codebook)")
        self.ratio = context.mpfc_mask_ratio
        self.grid = model.image_encoder.grid
        self.mask_embedding = nn.Parameter(torch.zeros(model.hidden_size))
        nn.init.normal_(self.mask_embedding, std=0.02)
        self.head = nn.Sequential(nn.Linear(model.hidden_size, model.hidden_size), nn.GELU(),
                                  nn.LayerNorm(model.hidden_size), nn.Linear(model.hidden_size, context.codebook_size))

    def forward(self, model, batch):
        pixels, codes = batch["pixels_a"], batch["codes"]
        h, w = self.grid
        mask = block_mask(pixels.shape[0], self.grid, self.ratio).to(pixels.device)
        cell_h, cell_w = pixels.shape[-2] // h, pixels.shape[-1] // w
        pixel_mask = mask.repeat_interleave(cell_h, 1).repeat_interleave(cell_w, 2)
        pad = (0, pixels.shape[-1] - pixel_mask.shape[-1], 0, pixels.shape[-2] - pixel_mask.shape[-2])
        pixel_mask = nn.functional.pad(pixel_mask, pad)
        image = model.encode_image(pixels.masked_fill(pixel_mask[:, None], 0.0))
        flat = mask.flatten(1)
        patches = torch.where(flat[..., None], self.mask_embedding.to(image.patches.dtype), image.patches)
        fused = model.fuse(batch["input_ids"], batch["attention_mask"], ImageFeatures(image.global_, patches))
        logits = self.head(fused.image_tokens[flat])
        target = codes[flat]
        loss = nn.functional.cross_entropy(logits, target)
        return {"loss/mpfc": loss, "acc/mpfc": (logits.argmax(-1) == target).float().mean().detach()}
