"""ITC: symmetric InfoNCE between global image and text embeddings, in-batch, gathered across processes."""

from __future__ import annotations

from fashionvlp.objectives.base import Objective, encoded_image, info_nce, register_objective


@register_objective("itc")
class ImageTextContrastive(Objective):
    def __init__(self, model, context):
        super().__init__()

    def forward(self, model, batch):
        image = encoded_image(model, batch).global_
        text = model.encode_text(batch["input_ids"], batch["attention_mask"]).global_
        loss, acc = info_nce(model, image, text)
        return {"loss/itc": loss, "acc/itc": acc.detach(), "scale/itc": model.contrastive_scale.detach().square()}
