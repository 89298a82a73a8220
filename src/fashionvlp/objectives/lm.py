"""LM (KG-FLIP/BLIP): autoregressive title generation from the image, label smoothing 0.1."""

from __future__ import annotations

from torch import nn

from fashionvlp.objectives.base import Objective, encoded_image, register_objective


@register_objective("lm")
class LanguageModelling(Objective):
    requires = frozenset({"decode"})

    def __init__(self, model, context, label_smoothing: float = 0.1):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, model, batch):
        ids, mask = batch["title_ids"], batch["title_mask"]
        logits = model.decode(encoded_image(model, batch), ids, mask)[:, :-1]
        target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                           ignore_index=-100, label_smoothing=self.label_smoothing)
        valid = target != -100
        acc = (logits.argmax(-1)[valid] == target[valid]).float().mean()
        return {"loss/lm": loss, "acc/lm": acc.detach()}
