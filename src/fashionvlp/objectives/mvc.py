"""MVC: InfoNCE between the unimodal embedding of view A and the fused embedding of (text + view B).

The dataset supplies view B: another view of the product, or an augmented copy of A when it has one view.
"""

from __future__ import annotations

from fashionvlp.objectives.base import Objective, encoded_image, info_nce, register_objective


@register_objective("mvc")
class MultiViewContrastive(Objective):
    def __init__(self, model, context):
        super().__init__()

    def forward(self, model, batch):
        view_a = encoded_image(model, batch).global_
        fused = model.fuse(batch["input_ids"], batch["attention_mask"], encoded_image(model, batch, "pixels_b")).embedding
        loss, acc = info_nce(model, view_a, fused)
        return {"loss/mvc": loss, "acc/mvc": acc.detach()}
