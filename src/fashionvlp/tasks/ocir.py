"""OCIR: outfit complementary-item retrieval. One item of an outfit is blanked; the other items' images
(mean of their embeddings) plus the blank's category form the query; candidates are every
evaluation-split product of the blank's category (SPEC §5).

An item's embedding is the model's image embedding plus, where the model has the frozen image descriptor
(``model.image_descriptor``), a learned projection of it: compatibility here turns on colour and pattern
(at most one accent colour and one patterned item per outfit), which the micro ViT barely reads after a
few hundred steps and the descriptor reads plainly (README, "What the default run learns").

R@10/30/50 are reported per blank category and averaged over categories (category-balanced, so a
category that is blanked more often does not dominate), and over all queries for reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fashionvlp.data.pretrain_dataset import label_maps
from fashionvlp.data.schema import Outfit, Product
from fashionvlp.evaluation.embed import product_batches
from fashionvlp.evaluation.metrics import hits_at_k
from fashionvlp.evaluation.outcomes import AucOutcome, MeanOutcome
from fashionvlp.models.interface import masked_mean
from fashionvlp.objectives.base import Objective, info_nce, register_objective
from fashionvlp.tasks.base import (DownstreamTask, ProductRowsDataset, TaskData, TaskEvaluation, check_references,
                                  register_task, split_rows, write_curve)

KS = (10, 30, 50)
CURVE_KS = (1, 5, 10, 20, 30, 50, 100)


@register_objective("ocir")
class OutfitCompletion(Objective):
    def __init__(self, model, context):
        super().__init__()
        if context.num_categories < 1:
            raise ValueError("ocir needs the catalog's categories")
        hidden = model.hidden_size
        self.category = nn.Embedding(context.num_categories, hidden)
        self.query_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        descriptor = model.image_descriptor
        # standardised first: the descriptor's activations are non-negative with large offsets
        self.descriptor_proj = None if descriptor is None else nn.Sequential(
            nn.BatchNorm1d(descriptor.dim, affine=False), nn.Linear(descriptor.dim, hidden))

    def item_embedding(self, model, pixels: torch.Tensor, keys: list[int] | None = None) -> torch.Tensor:
        """[B, H]: what a query's items and the candidates are compared by. ``keys``: the products' rows, so
        the frozen descriptor reads each product's (unaugmented) view once per fine-tuning."""
        embedding = model.encode_image(pixels, keys).global_
        if self.descriptor_proj is not None:
            embedding = embedding + self.descriptor_proj(model.image_descriptor(pixels, keys))
        return embedding

    def query(self, model, item_pixels, item_mask, blank_category, item_keys=None) -> torch.Tensor:
        """item_pixels [B, M, 3, S, S] with item_mask [B, M] (padding is never encoded)."""
        valid = item_mask.bool()
        keys = None if item_keys is None else item_keys[valid].tolist()
        encoded = self.item_embedding(model, item_pixels[valid], keys)
        items = encoded.new_zeros(*item_mask.shape, encoded.shape[-1])
        items[valid] = encoded
        return self.query_from_items(items, item_mask, blank_category)

    def query_from_items(self, items, item_mask, blank_category) -> torch.Tensor:
        """The query from the items' image embeddings [B, M, H] (evaluation encodes each product once)."""
        return self.query_mlp(masked_mean(items, item_mask) + self.category(blank_category))

    def forward(self, model, batch):
        query = self.query(model, batch["item_pixels"], batch["item_mask"], batch["blank_category"], batch["item_keys"])
        candidate = self.item_embedding(model, batch["blank_pixels"], batch["blank_key"].tolist())
        loss, acc = info_nce(model, query, candidate)
        return {"loss/ocir": loss, "acc/ocir": acc.detach()}


def blank_position(outfit: Outfit, rng: np.random.Generator) -> int:
    return int(rng.integers(len(outfit.product_ids)))


class OutfitDataset(ProductRowsDataset):
    def __init__(self, data: TaskData, outfits: list[Outfit], products: dict[str, Product]):
        super().__init__(data, outfits, products)
        self.categories = label_maps(data.catalog.schema)["category"]
        self.key = {product_id: row for row, product_id in enumerate(sorted(products))}

    def __getitem__(self, index: int) -> dict:
        outfit = self.rows[index]
        blank = blank_position(outfit, self.rng(index))
        blank_id = outfit.product_ids[blank]
        items = [i for k, i in enumerate(outfit.product_ids) if k != blank]
        return {"index": index, "items": [self.pixels(i) for i in items], "item_keys": [self.key[i] for i in items],
                "blank_pixels": self.pixels(blank_id), "blank_key": self.key[blank_id],
                "blank_category": self.categories[self.products[blank_id].category]}


@dataclass
class OutfitCollator:
    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(s["items"]) for s in samples)
        shape = samples[0]["blank_pixels"].shape
        pixels = torch.zeros(len(samples), width, *shape)
        mask = torch.zeros(len(samples), width, dtype=torch.long)
        keys = torch.full((len(samples), width), -1, dtype=torch.long)
        for row, s in enumerate(samples):
            pixels[row, :len(s["items"])] = torch.stack(s["items"])
            mask[row, :len(s["items"])] = 1
            keys[row, :len(s["items"])] = torch.tensor(s["item_keys"])
        return {"index": torch.tensor([s["index"] for s in samples]), "item_pixels": pixels, "item_mask": mask,
                "item_keys": keys, "blank_key": torch.tensor([s["blank_key"] for s in samples]),
                "blank_pixels": torch.stack([s["blank_pixels"] for s in samples]),
                "blank_category": torch.tensor([s["blank_category"] for s in samples])}


def _outfits(catalog, split: str) -> tuple[list[Outfit], dict[str, Product]]:
    outfits = split_rows(list(catalog.iter_outfits()), split, "outfits", catalog.root / "outfits.parquet")
    products = {p.product_id: p for p in catalog.iter_products()}
    check_references(outfits, products, lambda o: (f"outfit {o.outfit_id!r}", [
        (f"product_ids[{k}]", product_id) for k, product_id in enumerate(o.product_ids)]))
    return outfits, products


def training_data(data: TaskData):
    outfits, products = _outfits(data.catalog, "train")
    return OutfitDataset(data, outfits, products), OutfitCollator()


def _pair_scores(head, encoded: np.ndarray, pairs: list[tuple[list[int], int, int]]) -> np.ndarray:
    """Cosine of each (items' rows, candidate's category, candidate's row) query with its candidate."""
    scores = []
    for start in range(0, len(pairs), 256):
        chunk = pairs[start:start + 256]
        width = max(len(items) for items, _, _ in chunk)
        items = np.zeros((len(chunk), width, encoded.shape[1]), dtype=encoded.dtype)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for row, (rows, _, _) in enumerate(chunk):
            items[row, :len(rows)], mask[row, :len(rows)] = encoded[rows], 1
        query = head.query_from_items(torch.from_numpy(items), mask, torch.tensor([c for _, c, _ in chunk]))
        query = torch.nn.functional.normalize(query.float(), dim=-1).numpy()
        key = encoded[[candidate for _, _, candidate in chunk]]
        scores.append((query * (key / np.linalg.norm(key, axis=1, keepdims=True))).sum(1))
    return np.concatenate(scores) if scores else np.zeros(0)


def released_benchmarks(ev: TaskEvaluation, head, products: dict[str, Product]) -> tuple[dict, dict]:
    """Polyvore's own test protocols where the catalog keeps them for the split: fill-in-the-blank accuracy
    (the candidate whose query from the question's items scores highest) and outfit-compatibility AUC (an
    outfit's score is the mean, over its items, of the item against the query from the others)."""
    questions = [q for q in ev.catalog.iter_fitb() if q.split == ev.split]
    compatibility = [o for o in ev.catalog.iter_compatibility() if o.split == ev.split]
    if not questions and not compatibility:
        return {}, {}
    categories = label_maps(ev.catalog.schema)["category"]
    needed = sorted({i for q in questions for i in (*q.product_ids, *q.candidates)}
                    | {i for o in compatibility for i in o.product_ids})
    row_of = {product_id: row for row, product_id in enumerate(needed)}
    encoded = np.concatenate([head.item_embedding(ev.model, pixels).float().numpy() for _, pixels, _ in
                              product_batches(ev.model, ev.catalog, [products[i] for i in needed], ev.image_size, 0,
                                              with_text=False)])
    category_of = {i: categories[products[i].category] for i in needed}
    result, outcomes = {}, {}
    if questions:
        pairs = [([row_of[i] for i in q.product_ids], category_of[c], row_of[c]) for q in questions for c in q.candidates]
        scores, start, right = _pair_scores(head, encoded, pairs), 0, []
        for q in questions:
            right.append(float(np.argmax(scores[start:start + len(q.candidates)]) == q.answer) * 100)
            start += len(q.candidates)
        outcomes["FITB"] = MeanOutcome.rows([q.question_id for q in questions], right)
        chance = float(np.mean([100.0 / len(q.candidates) for q in questions]))
        result["fitb"] = {"accuracy": float(np.mean(right)), "questions": len(questions), "chance": chance,
                          "protocol": "Polyvore fill-in-the-blank as released: the candidate scoring highest against "
                                      "the query from the question's items; accuracy"}
    if compatibility:
        pairs = [([row_of[j] for j in o.product_ids if j != i] or [row_of[i]], category_of[i], row_of[i])
                 for o in compatibility for i in o.product_ids]
        scores, start, outfit_scores = _pair_scores(head, encoded, pairs), 0, []
        for o in compatibility:
            outfit_scores.append(float(scores[start:start + len(o.product_ids)].mean()))
            start += len(o.product_ids)
        labels = np.array([o.compatible for o in compatibility], dtype=np.int64)
        outcomes["COMPAT_AUC"] = AucOutcome(np.array([o.outfit_id for o in compatibility]),
                                            np.array(outfit_scores), labels)
        result["compatibility"] = {"auc": float(outcomes["COMPAT_AUC"].statistic(np.ones((1, len(labels))))[0]),
                                   "outfits": len(compatibility), "compatible": int(labels.sum()), "chance": 50.0,
                                   "protocol": "Polyvore outfit compatibility as released: an outfit scores the "
                                               "mean over its items of item vs the query from the others; ROC AUC ×100"}
    return result, outcomes


@torch.no_grad()
def evaluate(ev: TaskEvaluation) -> dict:
    model, head = ev.model, ev.heads["ocir"]
    model.eval()
    head.eval()
    outfits, products = _outfits(ev.catalog, ev.split)
    categories = label_maps(ev.catalog.schema)["category"]
    rng = np.random.default_rng(ev.params.evaluation.seed)
    blanks = [blank_position(o, rng) for o in outfits]
    # Candidates: the evaluation split's products of each category (plus any blank from outside it).
    by_category: dict[str, list[Product]] = {}
    for p in products.values():
        if p.split == ev.split:
            by_category.setdefault(p.category, []).append(p)
    for o, b in zip(outfits, blanks):
        blank = products[o.product_ids[b]]
        if blank.split != ev.split:
            by_category.setdefault(blank.category, []).append(blank)
    # Every product an outfit or a gallery holds is encoded once, in batches, and the queries are built
    # from those embeddings (encoding each outfit's items again, query by query, took 5× as long).
    needed = sorted({i for o in outfits for i in o.product_ids} | {p.product_id for ps in by_category.values()
                                                                  for p in ps})
    row_of = {product_id: row for row, product_id in enumerate(needed)}
    encoded = np.concatenate([head.item_embedding(model, pixels).float().numpy() for _, pixels, _ in
                              product_batches(model, ev.catalog, [products[i] for i in needed], ev.image_size, 0,
                                              with_text=False)])
    keys = {c: encoded[[row_of[p.product_id] for p in ps]] for c, ps in by_category.items()}
    keys = {c: k / np.linalg.norm(k, axis=1, keepdims=True) for c, k in keys.items()}
    positions = {c: {p.product_id: i for i, p in enumerate(ps)} for c, ps in by_category.items()}
    queries = []
    for start in range(0, len(outfits), 256):
        chunk = list(zip(outfits[start:start + 256], blanks[start:start + 256]))
        width = max(len(o.product_ids) - 1 for o, _ in chunk)
        items = np.zeros((len(chunk), width, encoded.shape[1]), dtype=encoded.dtype)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for row, (o, b) in enumerate(chunk):
            kept = [row_of[i] for k, i in enumerate(o.product_ids) if k != b]
            items[row, :len(kept)], mask[row, :len(kept)] = encoded[kept], 1
        blank_categories = torch.tensor([categories[products[o.product_ids[b]].category] for o, b in chunk])
        queries.append(head.query_from_items(torch.from_numpy(items), mask, blank_categories).float().numpy())
    queries = np.concatenate(queries) if queries else np.zeros((0, encoded.shape[1]), dtype=np.float32)
    queries_by_category: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for o, b, query in zip(outfits, blanks, queries):
        blank = products[o.product_ids[b]]
        scores = (query / np.linalg.norm(query))[None, :] @ keys[blank.category].T
        relevant = np.zeros_like(scores, dtype=bool)
        relevant[0, positions[blank.category][blank.product_id]] = True
        queries_by_category.setdefault(blank.category, []).append((o.outfit_id, scores, relevant))
    per_category, curves, units, strata, values = {}, {}, [], [], []
    for category, rows in sorted(queries_by_category.items()):
        scores = [s for _, s, _ in rows]
        relevant = [r for _, _, r in rows]
        curve = np.concatenate([hits_at_k(s, r, CURVE_KS) for s, r in zip(scores, relevant)])
        curves[category] = {k: float(curve[:, i].mean() * 100) for i, k in enumerate(CURVE_KS)}
        hits = np.concatenate([hits_at_k(s, r, KS) for s, r in zip(scores, relevant)])
        per_category[category] = {**{f"R@{k}": float(hits[:, i].mean() * 100) for i, k in enumerate(KS)},
                                  "queries": len(rows), "candidates": len(by_category[category])}
        units += [outfit_id for outfit_id, _, _ in rows]
        strata += [category] * len(rows)
        values.append(hits.mean(axis=1) * 100)
    write_curve(ev.out / "plots" / "ocir_recall_at_k.csv", CURVE_KS, curves,
                {c: len(by_category[c]) for c in curves})
    balanced = {f"R@{k}": float(np.mean([c[f"R@{k}"] for c in per_category.values()])) for k in KS}
    total = sum(c["queries"] for c in per_category.values())
    overall = {f"R@{k}": float(sum(c[f"R@{k}"] * c["queries"] for c in per_category.values()) / total) for k in KS}
    released, released_outcomes = released_benchmarks(ev, head, products)
    return {"outfits": len(outfits), "categories": per_category, "balanced": balanced, "all_queries": overall,
            **({"polyvore": released} if released else {}),
            # one unit per outfit query, stratified by the blank's category (the headline is balanced)
            "outcomes": {"OCIR": MeanOutcome.rows(units, np.concatenate(values), strata), **released_outcomes},
            "protocol": "one seeded blank per outfit; candidates = evaluation-split products of the blank's category; "
                        "R@K averaged per category, then over categories (balanced); ties rank above the blank"}


register_task(DownstreamTask(
    name="ocir", catalog_tables=("outfits",), description="outfit complementary-item retrieval, R@10/30/50 category-balanced",
    objectives={"ocir": 1.0}, evaluate=evaluate, training_data=training_data,
    headline=lambda m: {"OCIR": float(np.mean(list(m["balanced"].values()))),
                        **({"FITB": m["polyvore"]["fitb"]["accuracy"]} if "fitb" in m.get("polyvore", {}) else {}),
                        **({"COMPAT_AUC": m["polyvore"]["compatibility"]["auc"]}
                           if "compatibility" in m.get("polyvore", {}) else {})}))
