"""PAC: multi-label pseudo-attribute classification from both the image and the text embedding.

Pseudo-attributes are frequent phrases mined from the training corpus (``data.knowledge``); an item's
target puts 1/n on each of its n pseudo-attributes (soft cross-entropy). Items with none are skipped.
"""

from __future__ import annotations

import torch
from torch import nn

from fashionvlp.objectives.base import Objective, encoded_image, register_objective


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * logits.log_softmax(-1)).sum(-1).mean()


@register_objective("pac")
class PseudoAttributeClassification(Objective):
    def __init__(self, model, context):
        super().__init__()
        if context.num_pseudo_attributes < 2:
            raise ValueError("PAC needs at least 2 pseudo-attributes mined from the corpus")
        self.image_head = nn.Linear(model.hidden_size, context.num_pseudo_attributes)
        self.text_head = nn.Linear(model.hidden_size, context.num_pseudo_attributes)

    def forward(self, model, batch):
        targets = batch["pac_targets"]
        keep = targets.sum(-1) > 0
        image = encoded_image(model, batch).global_
        text = model.encode_text(batch["input_ids"], batch["attention_mask"]).global_
        if not keep.any():  # no labelled item: a zero loss that still touches the graph (DDP needs it)
            zero = (self.image_head(image).sum() + self.text_head(text).sum()) * 0.0
            return {"loss/pac": zero}
        image_logits, text_logits = self.image_head(image[keep]), self.text_head(text[keep])
        t = targets[keep]
        loss = (soft_cross_entropy(image_logits, t) + soft_cross_entropy(text_logits, t)) / 2
        hit = t.gather(1, image_logits.argmax(1, keepdim=True)).squeeze(1) > 0
        return {"loss/pac": loss, "acc/pac": hit.float().mean()}
