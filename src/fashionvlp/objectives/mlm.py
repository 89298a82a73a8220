"""Masked language modelling from masked text + the full image (the fusion encoder's text positions).

Three registered variants share this code and differ only in the masking policy:
``mlm`` (random whole words), ``mlm_attr`` (attribute words only), ``kg_mlim`` (attribute words first).
"""

from __future__ import annotations

from torch import nn

from fashionvlp.models.interface import PredictionHead
from fashionvlp.objectives.base import Objective, encoded_image, register_objective
from fashionvlp.objectives.masking import IGNORE, mask_tokens


@register_objective("kg_mlim", policy="attribute_first")
@register_objective("mlm_attr", policy="attribute_only")
@register_objective("mlm", policy="random")
class MaskedLanguageModelling(Objective):
    def __init__(self, model, context, policy: str):
        super().__init__()
        self.policy, self.probability = policy, context.mask_probability
        self.head = PredictionHead(model.word_embeddings)
        tok = model.tokenizer
        self.mask_token_id, self.vocab_size = tok.mask_token_id, model.word_embeddings.weight.shape[0]
        self.special_ids = sorted(set(tok.all_special_ids))

    def forward(self, model, batch):
        masked, labels = mask_tokens(batch["input_ids"], batch["word_ids"], batch["attribute_units"], self.probability,
                                     self.policy, self.mask_token_id, self.vocab_size, self.special_ids)
        fused = model.fuse(masked, batch["attention_mask"], encoded_image(model, batch))
        selected = labels != IGNORE
        key = self.name
        if not selected.any():
            return {f"loss/{key}": self.head(fused.text_tokens[:, :1]).sum() * 0.0}
        logits = self.head(fused.text_tokens[selected])
        target = labels[selected]
        loss = nn.functional.cross_entropy(logits, target)
        return {f"loss/{key}": loss, f"acc/{key}": (logits.argmax(-1) == target).float().mean().detach()}
