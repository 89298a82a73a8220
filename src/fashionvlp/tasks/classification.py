"""CR and SCR: category and subcategory from the fused image + text (``fused_readout``: the pooled first
token beside the image embedding).

The fine-tuning loss is registered as an objective (``classification``), so the training loop is the
pre-training one; the evaluation scores accuracy and macro-F1 on a split.
"""

from __future__ import annotations

import csv

import numpy as np
import torch
from torch import nn

from fashionvlp.data.catalog_io import Catalog
from fashionvlp.data.pretrain_dataset import label_maps
from fashionvlp.data.schema import Product
from fashionvlp.evaluation.embed import product_batches
from fashionvlp.evaluation.metrics import accuracy, macro_f1
from fashionvlp.evaluation.outcomes import MeanOutcome
from fashionvlp.objectives.base import Objective, fused_readout, register_objective
from fashionvlp.tasks.base import DownstreamTask, TaskEvaluation, register_task


@register_objective("classification")
class CategoryClassification(Objective):
    def __init__(self, model, context):
        super().__init__()
        if context.num_categories < 2 or context.num_subcategories < 2:
            raise ValueError("classification needs at least 2 categories and 2 subcategories")
        width = model.readout_width
        self.category_head = nn.Sequential(nn.Dropout(0.1), nn.Linear(width, context.num_categories))
        self.subcategory_head = nn.Sequential(nn.Dropout(0.1), nn.Linear(width, context.num_subcategories))

    def logits(self, model, pixels, input_ids, attention_mask, image_keys=None) -> tuple[torch.Tensor, torch.Tensor]:
        readout = fused_readout(model, pixels, input_ids, attention_mask, image_keys)
        return self.category_head(readout), self.subcategory_head(readout)

    def forward(self, model, batch):
        cat_logits, sub_logits = self.logits(model, batch["pixels_a"], batch["input_ids"], batch["attention_mask"],
                                             batch["image_key_a"].tolist())
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
    predicted = {"category": [], "subcategory": []}
    for _, pixels, enc in product_batches(model, catalog, products, image_size, max_length, batch_size):
        cat_logits, sub_logits = head.logits(model, pixels, enc.input_ids, enc.attention_mask)
        predicted["category"] += cat_logits.argmax(-1).tolist()
        predicted["subcategory"] += sub_logits.argmax(-1).tolist()
    out = {}
    for key, name in (("category", "CR"), ("subcategory", "SCR")):
        truth = [maps[key][getattr(p, key)] for p in products]
        labels = sorted(maps[key].values())
        names = {i: n for n, i in maps[key].items()}
        out[name] = {"accuracy": accuracy(truth, predicted[key]),
                     "macro_f1": macro_f1(truth, predicted[key], labels=labels),
                     "classes": len(labels), "chance_accuracy": float(np.bincount(truth).max() / len(truth) * 100),
                     "predictions": [(names[t], names[p]) for t, p in zip(truth, predicted[key])]}
    return out


def evaluate(ev: TaskEvaluation) -> dict:
    products = ev.products()
    result = evaluate_classification(ev.model, ev.heads["classification"], ev.catalog, products, ev.image_size,
                                     ev.max_length)
    ids = [p.product_id for p in products]
    # one unit per product: 100 when its (sub)category is right
    outcomes = {name: MeanOutcome.rows(ids, [100.0 * (t == p) for t, p in result[name]["predictions"]])
                for name in ("CR", "SCR")}
    confusion = result["SCR"].pop("predictions")
    result["CR"].pop("predictions")
    path = ev.out / "plots" / "scr_confusion.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows(confusion)
    return {"products": len(products), **result, "outcomes": outcomes}


register_task(DownstreamTask(
    name="classification", description="category (CR) and subcategory (SCR) from image + text, accuracy and macro-F1",
    objectives={"classification": 1.0}, evaluate=evaluate,
    headline=lambda m: {"CR": m["CR"]["accuracy"], "SCR": m["SCR"]["accuracy"]}))
