"""How the attribute heads train when the model under them is frozen: which head design, input scaling and
views learn what the features hold in the fine-tuning's budget (300 steps of batch 32 at the heads' rate).

    python bench/frozen_heads.py [--model derived/pretrain/fashionvil/model] [--catalog data]
                                 [--descriptor efficientnet_lite0_s16_grid] [--steps 300]

Reads ``fused_readout`` (first token, text-token mean and max, image embedding, descriptor) of the saved
model once per product: the first view for the train and test splits, and every view of the train split.
Then trains the heads alone on those features and prints each variant's test top-1 per attribute and its
mean over attributes. Why: a short fine-tuning that reads far less than a linear probe on the same
features says the heads, not the features, are short.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fashionvlp.data.catalog_io import read_catalog
from fashionvlp.data.pretrain_dataset import ImageTransform, attribute_targets, attribute_vocabulary
from fashionvlp.env import quiet_offline
from fashionvlp.models.image_descriptor import build_image_descriptor
from fashionvlp.models.registry import load_pretrained
from fashionvlp.objectives.base import fused_readout

quiet_offline()


@torch.no_grad()
def readouts(model, catalog, rows: list[tuple], image_size: int, max_length: int) -> np.ndarray:
    """fused_readout for (product, view) rows, 64 at a time."""
    transform = ImageTransform(image_size, model.image_encoder.normalization)
    out = []
    for start in range(0, len(rows), 64):
        chunk = rows[start:start + 64]
        pixels = torch.stack([transform.to_tensor(transform.load(catalog.root / view.path)) for _, view in chunk])
        enc = model.tokenizer([p.text for p, _ in chunk], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
        out.append(fused_readout(model, pixels, enc.input_ids, enc.attention_mask).numpy())
    return np.concatenate(out)


class Heads(nn.Module):
    def __init__(self, width: int, sizes: dict[str, int], norm: nn.Module, linear: bool, hidden: int = 128,
                 modality_dropout: float = 0.0, model_hidden: int = 128):
        super().__init__()
        self.norm = norm
        self.model_hidden, self.modality_dropout = model_hidden, modality_dropout
        self.heads = nn.ModuleDict({n: nn.Linear(width, s) if linear else
                                    nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(0.1),
                                                  nn.Linear(hidden, s)) for n, s in sizes.items()})

    def forward(self, x):
        x = self.norm(x)
        if self.training and self.modality_dropout > 0:
            # readout layout: [first token, text mean, text max | image embedding, descriptor]
            h = self.model_hidden
            drop = torch.rand(len(x), 2) < self.modality_dropout
            drop[:, 1] &= ~drop[:, 0]   # never both
            keep_text = (~drop[:, 0]).float()[:, None]
            keep_image = (~drop[:, 1]).float()[:, None]
            x = torch.cat([x[:, :h], x[:, h:3 * h] * keep_text, x[:, 3 * h:] * keep_image], dim=1)
        return {n: h(x) for n, h in self.heads.items()}


def train_heads(heads: Heads, views: list[torch.Tensor], targets: torch.Tensor, names: list[str], steps: int,
                lr: float, seed: int = 0) -> Heads:
    """The fine-tuning's optimiser and schedule (AdamW, 10 warm-up steps, linear decay), on the frozen
    features; each step draws a batch of products and, for each, one of its views' features."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1, (s + 1) / 10) * max(0.0, 1 - s / steps))
    generator = torch.Generator().manual_seed(seed)
    order, position = torch.randperm(len(views), generator=generator), 0
    for _ in range(steps):
        if position + 32 > len(order):
            order, position = torch.randperm(len(views), generator=generator), 0
        batch = order[position:position + 32]
        position += 32
        x = torch.stack([views[int(i)][int(torch.randint(len(views[int(i)]), (1,), generator=generator))]
                         for i in batch])
        heads.train()
        logits = heads(x)
        losses = [nn.functional.cross_entropy(logits[n][targets[batch, c] >= 0], targets[batch, c][targets[batch, c] >= 0])
                  for c, n in enumerate(names) if (targets[batch, c] >= 0).any()]
        optimizer.zero_grad()
        torch.stack(losses).mean().backward()
        optimizer.step()
        schedule.step()
    return heads.eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("derived/pretrain/fashionvil/model"))
    ap.add_argument("--catalog", type=Path, default=Path("data"))
    ap.add_argument("--descriptor", default="efficientnet_lite0_s16_grid")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=5e-3, help="the heads' rate: finetune lr × head_lr_multiplier")
    args = ap.parse_args()
    torch.set_num_threads(2)
    catalog = read_catalog(args.catalog)
    model = load_pretrained(args.model)
    model.image_descriptor = build_image_descriptor(args.descriptor, model.image_encoder.normalization)
    model.eval()
    cfg = model.model_config
    vocabulary = attribute_vocabulary(catalog.schema)
    names, sizes = list(vocabulary), {n: len(v) for n, v in vocabulary.items()}
    train = [p for p in catalog.iter_products() if p.split == "train"]
    test = [p for p in catalog.iter_products() if p.split == "test"]
    start = time.perf_counter()
    every = [(p, v) for p in train for v in p.images]
    every_x = torch.from_numpy(readouts(model, catalog, every, cfg.image.image_size, cfg.text.max_length))
    test_x = torch.from_numpy(readouts(model, catalog, [(p, p.images[0]) for p in test], cfg.image.image_size,
                                       cfg.text.max_length))
    rows_of: dict[str, list[int]] = {}
    for row, (p, _) in enumerate(every):
        rows_of.setdefault(p.product_id, []).append(row)
    all_views = [every_x[rows_of[p.product_id]] for p in train]
    main_view = [every_x[rows_of[p.product_id][:1]] for p in train]   # images[0] comes first
    targets = torch.tensor([attribute_targets(vocabulary, p) for p in train]).reshape(len(train), len(names))
    test_targets = torch.tensor([attribute_targets(vocabulary, p) for p in test]).reshape(len(test), len(names))
    first = torch.stack([v[0] for v in main_view])
    mean, std = first.mean(0), first.std(0) + 1e-5
    width = first.shape[1]
    print(f"{args.model} + {args.descriptor}: readouts of {len(every)} train views and {len(test)} test products "
          f"in {time.perf_counter() - start:.0f} s; heads alone, {args.steps} steps of 32 at lr {args.lr}; "
          f"test split top-1 (first view)", flush=True)

    class Standardise(nn.Module):  # train-split statistics, fixed
        def forward(self, x):
            return (x - mean) / std

    variants = {
        "MLP heads, raw inputs, main view": (nn.Identity(), False, main_view),
        "MLP heads, raw inputs, every view": (nn.Identity(), False, all_views),
        "MLP heads, standardised (train statistics), main view": (Standardise(), False, main_view),
        "MLP heads, BatchNorm (as fine-tuned), main view": (nn.BatchNorm1d(width, affine=False), False, main_view),
        "MLP heads, BatchNorm, every view": (nn.BatchNorm1d(width, affine=False), False, all_views),
        "linear heads, standardised, main view": (Standardise(), True, main_view),
        "MLP heads, BatchNorm, main view, modality dropout 0.3": (nn.BatchNorm1d(width, affine=False), False,
                                                                  main_view, 0.3),
    }
    for label, (norm, linear, views, *dropout) in variants.items():
        heads = train_heads(Heads(width, sizes, norm, linear, modality_dropout=dropout[0] if dropout else 0.0,
                                  model_hidden=model.hidden_size), views, targets, names, args.steps, args.lr)
        with torch.no_grad():
            logits = heads(test_x)
        top1 = {}
        for c, n in enumerate(names):
            labelled = test_targets[:, c] >= 0
            top1[n] = 100 * float((logits[n][labelled].argmax(-1) == test_targets[labelled, c]).float().mean())
        print(f"  {label:<56} mean {np.mean(list(top1.values())):5.1f}  "
              + " ".join(f"{n}={v:.0f}" for n, v in top1.items()), flush=True)


if __name__ == "__main__":
    main()
