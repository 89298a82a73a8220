"""TGIR (FashionIQ): the reference image fused with the modifying text is the query; the target image's
embedding is the key. Fine-tuned with an in-batch contrastive loss; R@10/R@50 per FashionIQ group and
their mean (SPEC §5).

The two captions are joined with " and " (in a random order while training, as given at evaluation).
A group's gallery is every evaluation-split product of the categories its triplets use, less the
query's own reference image (otherwise an image-only model finds the reference first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fashionvlp.data.pretrain_dataset import ImageTransform, _pad
from fashionvlp.data.schema import Product, Triplet
from fashionvlp.evaluation.embed import image_embeddings
from fashionvlp.evaluation import oracle
from fashionvlp.evaluation.metrics import hits_at_k, recall_at_k
from fashionvlp.evaluation.outcomes import MeanOutcome
from fashionvlp.objectives.base import Objective, info_nce, register_objective
from fashionvlp.tasks.base import (DownstreamTask, ProductRowsDataset, TaskData, TaskEvaluation, check_references,
                                  register_task, split_rows, write_curve)

KS = (10, 50)
CURVE_KS = (1, 5, 10, 20, 50, 100)


def modification_text(captions: tuple[str, str], swap: bool = False) -> str:
    first, second = (captions[1], captions[0]) if swap else captions
    return f"{first.strip()} and {second.strip()}"


@register_objective("tgir")
class ComposedRetrieval(Objective):
    def __init__(self, model, context):
        super().__init__()
        self.query_proj = nn.Linear(model.hidden_size, model.hidden_size)

    def query(self, model, reference_pixels, input_ids, attention_mask) -> torch.Tensor:
        return self.query_proj(model.fuse(input_ids, attention_mask, model.encode_image(reference_pixels)).embedding)

    def forward(self, model, batch):
        query = self.query(model, batch["reference_pixels"], batch["input_ids"], batch["attention_mask"])
        target = model.encode_image(batch["target_pixels"]).global_
        loss, acc = info_nce(model, query, target)
        return {"loss/tgir": loss, "acc/tgir": acc.detach()}


class TripletDataset(ProductRowsDataset):
    def __getitem__(self, index: int) -> dict:
        triplet = self.rows[index]
        text = modification_text(triplet.captions, swap=bool(self.rng(index).random() < 0.5))
        ids = self.data.model.tokenizer(text, truncation=True, max_length=self.data.max_length)["input_ids"]
        return {"index": index, "input_ids": ids, "reference_pixels": self.pixels(triplet.reference_id),
                "target_pixels": self.pixels(triplet.target_id)}


@dataclass
class TripletCollator:
    pad_token_id: int

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        ids = [s["input_ids"] for s in samples]
        return {"index": torch.tensor([s["index"] for s in samples]),
                "input_ids": _pad(ids, self.pad_token_id), "attention_mask": _pad([[1] * len(r) for r in ids], 0),
                "reference_pixels": torch.stack([s["reference_pixels"] for s in samples]),
                "target_pixels": torch.stack([s["target_pixels"] for s in samples])}


def _triplets(catalog, split: str) -> tuple[list[Triplet], dict[str, Product]]:
    triplets = split_rows(list(catalog.iter_triplets()), split, "FashionIQ triplets", catalog.root / "triplets.parquet")
    products = {p.product_id: p for p in catalog.iter_products()}
    check_references(triplets, products, lambda t: (f"triplet {t.triplet_id!r}", [
        ("reference_id", t.reference_id), ("target_id", t.target_id)]))
    return triplets, products


def training_data(data: TaskData):
    triplets, products = _triplets(data.catalog, "train")
    return TripletDataset(data, triplets, products), TripletCollator(data.model.tokenizer.pad_token_id)


@torch.no_grad()
def evaluate(ev: TaskEvaluation) -> dict:
    model, head = ev.model, ev.heads["tgir"]
    model.eval()
    head.eval()
    triplets, products = _triplets(ev.catalog, ev.split)
    transform = ImageTransform(ev.image_size, model.image_encoder.normalization)
    out: dict = {"groups": {}, "triplets": len(triplets)}
    curves: dict[str, dict[int, float]] = {}
    hits, oracle_hits, ceiling_groups, ceiling_curves, gallery_sizes = [], [], {}, {}, {}
    labelled = oracle.has_visible_labels(ev.catalog.schema, list(products.values()))
    for group in sorted({t.group for t in triplets}):
        rows = [t for t in triplets if t.group == group]
        categories = {products[i].category for t in rows for i in (t.reference_id, t.target_id)}
        gallery = [p for p in products.values() if p.split == ev.split and p.category in categories]
        position = {p.product_id: i for i, p in enumerate(gallery)}
        keys = image_embeddings(model, ev.catalog, gallery, ev.image_size)
        queries = []
        for start in range(0, len(rows), 64):
            chunk = rows[start:start + 64]
            pixels = torch.stack([transform.to_tensor(transform.load(ev.catalog.root / products[t.reference_id]
                                                                     .images[0].path)) for t in chunk])
            enc = model.tokenizer([modification_text(t.captions) for t in chunk], padding=True, truncation=True,
                                  max_length=ev.max_length, return_tensors="pt")
            queries.append(head.query(model, pixels, enc.input_ids, enc.attention_mask).float().numpy())
        q = np.concatenate(queries)
        scores = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (keys / np.linalg.norm(keys, axis=1,
                                                                                         keepdims=True)).T
        relevant, excluded = np.zeros_like(scores, dtype=bool), np.zeros_like(scores, dtype=bool)
        for row, t in enumerate(rows):
            relevant[row, position[t.target_id]] = True
            if t.reference_id in position:
                excluded[row, position[t.reference_id]] = True
        scores[excluded] = -np.inf
        group_hits = hits_at_k(scores, relevant, KS)
        hits.append((group, rows, group_hits))
        curves[group] = recall_at_k(scores, relevant, CURVE_KS)
        gallery_sizes[group] = round(float((~excluded).sum(axis=1).mean()))  # candidates a query ranks
        out["groups"][group] = {**{f"R@{k}": float(group_hits[:, i].mean() * 100) for i, k in enumerate(KS)},
                                "queries": len(rows), "gallery": len(gallery)}
        if labelled:
            expected = [oracle.modified_attributes(ev.catalog.schema, products[t.reference_id], t.captions)
                        for t in rows]
            oracle_scores = oracle.composed_scores(ev.catalog.schema, expected, gallery)
            oracle_scores[excluded] = -np.inf
            group_oracle = hits_at_k(oracle_scores, relevant, KS, ties="expected")
            oracle_hits.append((group, rows, group_oracle))
            ceiling_curves[group] = recall_at_k(oracle_scores, relevant, CURVE_KS, ties="expected")
            ceiling_groups[group] = {f"R@{k}": float(group_oracle[:, i].mean() * 100) for i, k in enumerate(KS)}
    out["mean"] = _mean_over_groups(out["groups"])
    out["outcomes"] = {"TGIR": _outcome(hits)}
    if labelled:
        out["ceiling"] = {"groups": ceiling_groups, "mean": _mean_over_groups(ceiling_groups),
                          "outcomes": {"TGIR": _outcome(oracle_hits)},
                          "protocol": "attribute oracle: the reference's visible labels with the changes its captions "
                                      "name, scored against each gallery product's labels (agreements − "
                                      "contradictions), reference excluded, ties at random (expected recall)"}
    write_curve(ev.out / "plots" / "tgir_recall_at_k.csv", CURVE_KS, curves, gallery_sizes, ceiling_curves or None)
    out["protocol"] = ("FashionIQ: caption pair joined with 'and'; gallery = every evaluation-split product of the "
                       "group's categories, reference excluded; R@10/R@50 per group, mean over groups; ties rank "
                       "above the target")
    return out


def _mean_over_groups(groups: dict[str, dict]) -> dict[str, float]:
    mean = {f"R@{k}": float(np.mean([g[f"R@{k}"] for g in groups.values()])) for k in KS}
    return mean | {"mean": float(np.mean([mean[f"R@{k}"] for k in KS]))}


def _outcome(hits: list) -> MeanOutcome:
    """One unit per triplet, stratified by group: the headline is the mean over groups."""
    units = [t.triplet_id for _, rows, _ in hits for t in rows]
    strata = [group for group, rows, _ in hits for _ in rows]
    values = np.concatenate([h.mean(axis=1) * 100 for _, _, h in hits])
    return MeanOutcome.rows(units, values, strata)


register_task(DownstreamTask(
    name="tgir", catalog_tables=("triplets",), description="text-guided image retrieval (FashionIQ layout), R@10/R@50 per group and mean",
    objectives={"tgir": 1.0}, evaluate=evaluate, training_data=training_data,
    headline=lambda m: {"TGIR": m["mean"]["mean"]}))
