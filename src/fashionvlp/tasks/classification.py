"""CR and SCR: category and subcategory from the fused image + text (the pooled first token).

The fine-tuning loss is registered as an objective (``classification``), so the training loop is the
pre-training one; ``evaluate_classification`` scores accuracy and macro-F1 on a split.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fashionvlp.data.catalog_io import Catalog
from fashionvlp.data.pretrain_dataset import ImageTransform, label_maps
from fashionvlp.data.schema import Product
from fashionvlp.evaluation.metrics import accuracy, macro_f1
from fashionvlp.objectives.base import Objective, register_objective


@register_objective("classification")
class CategoryClassification(Objective):
    def __init__(self, model, context):
        super().__init__()
        if context.num_categories < 2 or context.num_subcategories < 2:
            raise ValueError("classification needs at least 2 categories and 2 subcategories")
        hidden = model.hidden_size
        self.category_head = nn.Sequential(nn.Dropout(0.1), nn.Linear(hidden, context.num_categories))
        self.subcategory_head = nn.Sequential(nn.Dropout(0.1), nn.Linear(hidden, context.num_subcategories))

    def logits(self, model, pixels, input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = model.fuse(input_ids, attention_mask, model.encode_image(pixels)).pooled
        return self.category_head(pooled), self.subcategory_head(pooled)

    def forward(self, model, batch):
        cat_logits, sub_logits = self.logits(model, batch["pixels_a"], batch["input_ids"], batch["attention_mask"])
        loss = (nn.functional.cross_entropy(cat_logits, batch["category"])
                + nn.functional.cross_entropy(sub_logits, batch["subcategory"])) / 2
        return {"loss/classification": loss,
                "acc/category": (cat_logits.argmax(-1) == batch["category"]).float().mean().detach(),
                "acc/subcategory": (sub_logits.argmax(-1) == batch["subcategory"]).float().mean().detach()}


@torch.no_grad()
def evaluate_classification(model, head: CategoryClassification, catalog: Catalog, products: list[Product],
                            image_size: int, max_length: int, batch_size: int = 64) -> dict:
    """CR and SCR accuracy and macro-F1 (percent) from the first view and the product text."""
    model.eval()
    head.eval()
    maps = label_maps(catalog.schema)
    transform = ImageTransform(image_size, model.image_encoder.normalization)
    predicted = {"category": [], "subcategory": []}
    for start in range(0, len(products), batch_size):
        chunk = products[start:start + batch_size]
        pixels = torch.stack([transform.to_tensor(transform.load(catalog.root / p.images[0].path)) for p in chunk])
        enc = model.tokenizer([p.text for p in chunk], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
        cat_logits, sub_logits = head.logits(model, pixels, enc.input_ids, enc.attention_mask)
        predicted["category"] += cat_logits.argmax(-1).tolist()
        predicted["subcategory"] += sub_logits.argmax(-1).tolist()
    out = {}
    for key, name in (("category", "CR"), ("subcategory", "SCR")):
        truth = [maps[key][getattr(p, key)] for p in products]
        labels = sorted(maps[key].values())
        out[name] = {"accuracy": accuracy(truth, predicted[key]),
                     "macro_f1": macro_f1(truth, predicted[key], labels=labels),
                     "classes": len(labels), "chance_accuracy": float(np.bincount(truth).max() / len(truth) * 100)}
    return out
