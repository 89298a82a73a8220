"""Image-text matching on the fused pooled output, with two negative-text policies.

- ``itm``: BLIP's hard negatives: per image a text, per text an image, sampled with probability
  ∝ softmax(ITC similarity), never the same product.
- ``kg_itm``: KG-FLIP's negative text is the item's own text with every attribute value swapped for
  another value of the same attribute (prepared by the dataset from the schema); an item with no
  attribute word falls back to a random other item's text. Negative images stay hard-mined.
Each batch gives B positives and 2B negatives.
"""

from __future__ import annotations

import torch
from torch import nn

from fashionvlp.models.interface import ImageFeatures
from fashionvlp.objectives.base import Objective, encoded_image, register_objective


def sample_hard_negatives(similarity: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
    """Per row, a column index drawn ∝ softmax(similarity), excluding columns of the same product."""
    same = product[:, None] == product[None, :]
    weights = similarity.float().softmax(-1).masked_fill(same, 0.0) + (~same).float() * 1e-8
    return torch.multinomial(weights, 1).squeeze(1)


def _pad_to(ids: torch.Tensor, length: int, value: int) -> torch.Tensor:
    return nn.functional.pad(ids, (0, length - ids.shape[1]), value=value)


@register_objective("kg_itm", negatives="attribute_swap")
@register_objective("itm", negatives="hard")
class ImageTextMatching(Objective):
    def __init__(self, model, context, negatives: str):
        super().__init__()
        self.negatives = negatives
        self.pad_token_id = model.tokenizer.pad_token_id
        self.head = nn.Linear(model.hidden_size, 2)

    def _negative_texts(self, model, batch, image, text_global, product):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if self.negatives == "hard":
            with torch.no_grad():
                similarity = model.contrastive_logits(image.global_, text_global)
            pick = sample_hard_negatives(similarity, product)
            return ids[pick], mask[pick]
        neg_ids, neg_mask, valid = batch["negative_ids"], batch["negative_mask"], batch["negative_valid"]
        length = max(ids.shape[1], neg_ids.shape[1])
        ids, mask = _pad_to(ids, length, self.pad_token_id), _pad_to(mask, length, 0)
        neg_ids, neg_mask = _pad_to(neg_ids, length, self.pad_token_id), _pad_to(neg_mask, length, 0)
        shift = torch.randint(1, ids.shape[0], (ids.shape[0],), device=ids.device)
        other = (torch.arange(ids.shape[0], device=ids.device) + shift) % ids.shape[0]
        chosen = torch.where(valid[:, None], neg_ids, ids[other])
        chosen_mask = torch.where(valid[:, None], neg_mask, mask[other])
        return chosen, chosen_mask

    def forward(self, model, batch):
        ids, mask, product = batch["input_ids"], batch["attention_mask"], batch["index"]
        image = encoded_image(model, batch)
        with torch.no_grad():  # only for mining negatives
            text_global = model.encode_text(ids, mask).global_
        neg_ids, neg_mask = self._negative_texts(model, batch, image, text_global, product)
        with torch.no_grad():
            pick = sample_hard_negatives(model.contrastive_logits(text_global, image.global_), product)
        negative_image = ImageFeatures(image.global_[pick], image.patches[pick])
        pooled = torch.cat([model.fuse(ids, mask, image).pooled,
                            model.fuse(neg_ids, neg_mask, image).pooled,
                            model.fuse(ids, mask, negative_image).pooled])
        labels = torch.cat([torch.ones_like(product), torch.zeros_like(product), torch.zeros_like(product)])
        logits = self.head(pooled)
        loss = nn.functional.cross_entropy(logits, labels)
        key = self.name
        return {f"loss/{key}": loss, f"acc/{key}": (logits.argmax(-1) == labels).float().mean().detach()}
