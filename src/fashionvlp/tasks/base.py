"""A downstream task is a plug-in: the objectives that fine-tune it (they own its heads), optionally its
own training data, an evaluation of a fine-tuned model on a split, and its headline numbers (the
papers' ablation columns and the report's table)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fashionvlp.config import Params
from fashionvlp.data.catalog_io import Catalog
from fashionvlp.data.pretrain_dataset import ImageTransform
from fashionvlp.data.schema import Product
from fashionvlp.errors import ModelInputError


@dataclass(frozen=True)
class TaskData:
    """What a task's own training data is built from (tasks without it train on the product dataset)."""

    catalog: Catalog
    model: object
    image_size: int
    max_length: int
    seed: int


@dataclass(frozen=True)
class TaskEvaluation:
    params: Params
    model: object
    heads: object                  # nn.ModuleDict of the task's objectives, weights loaded
    catalog: Catalog
    split: str
    out: Path                      # where the task writes plot data
    image_size: int
    max_length: int
    model_dir: Path

    def products(self) -> list[Product]:
        products = [p for p in self.catalog.iter_products() if p.split == self.split]
        if not products:
            raise ModelInputError(f"split {self.split!r} of {self.catalog.root} has no products")
        return products


@dataclass(frozen=True)
class DownstreamTask:
    name: str
    description: str
    objectives: dict[str, float]
    evaluate: Callable[[TaskEvaluation], dict]
    # metrics → the few numbers a comparison table shows, e.g. {"ITR": mean R@1/5/10}
    headline: Callable[[dict], dict[str, float]]
    training_data: Callable[[TaskData], tuple[object, Callable]] | None = None
    # files the evaluation writes that serving needs: copied next to the fine-tuned weights
    serving_files: tuple[str, ...] = ()
    # catalog tables beyond the products it trains and is evaluated on (a catalog without them skips the task)
    catalog_tables: tuple[str, ...] = ()

    @property
    def requires(self) -> frozenset[str]:
        from fashionvlp.objectives import OBJECTIVES

        return frozenset().union(*(OBJECTIVES[name].cls.requires for name in self.objectives))


TASKS: dict[str, DownstreamTask] = {}


def register_task(task: DownstreamTask) -> DownstreamTask:
    TASKS[task.name] = task
    return task


def get_task(name: str) -> DownstreamTask:
    import fashionvlp.tasks  # noqa: F401  (registers every task)

    if name not in TASKS:
        raise ModelInputError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def check_task_fits(task: DownstreamTask, model) -> None:
    missing = task.requires - model.capabilities
    if missing:
        raise ModelInputError(f"task {task.name!r} needs {', '.join(sorted(missing))}, which the {model.arch} "
                              f"architecture does not have")


def split_rows(rows: list, split: str, what: str, source: Path) -> list:
    """The rows of one split; none is an error that names the split and the file."""
    chosen = [r for r in rows if r.split == split]
    if not chosen:
        raise ModelInputError(f"split {split!r} has no {what} in {source} (the task needs them)")
    return chosen


class ProductRowsDataset(Dataset):
    """Rows of a task table (FashionIQ triplets, outfits) whose images are their products' first views.
    Randomness comes from (seed, epoch, index), as in pre-training, so resuming is exact."""

    def __init__(self, data: TaskData, rows: list, products: dict[str, Product]):
        self.data, self.rows, self.products, self.epoch = data, rows, products, 0
        self.transform = ImageTransform(data.image_size, data.model.image_encoder.normalization)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.data.seed, self.epoch, index])

    def pixels(self, product_id: str) -> torch.Tensor:
        product = self.products[product_id]
        return self.transform.to_tensor(self.transform.load(self.data.catalog.root / product.images[0].path))


def check_references(rows: list, products: dict[str, Product], describe: Callable) -> None:
    """``describe(row)`` → (record name, [(field, product id)]); a product the catalog lacks is an error."""
    for row in rows:
        record, references = describe(row)
        for field_name, product_id in references:
            if product_id not in products:
                raise ModelInputError(f"{record}: field '{field_name}': product {product_id!r} is not in the catalog")


def write_curve(path: Path, ks: tuple[int, ...], curves: dict[str, dict[int, float]],
                gallery_sizes: dict[str, int] | None = None, ceiling: dict[str, dict[int, float]] | None = None) -> None:
    """Recall@K per K: one column per group and their mean (a DVC plot, ``x: k``), then, over the groups,
    ``chance`` (a random ranking of each group's gallery of ``gallery_sizes`` candidates, one positive)
    and ``ceiling`` (the attribute oracle's recall@K), where given."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(curves)
    extra = (["chance"] if gallery_sizes else []) + (["ceiling"] if ceiling else [])
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["k", *names, "mean", *extra])
        for k in ks:
            values = [curves[n][k] for n in names]
            row = [k, *[round(v, 4) for v in values], round(sum(values) / len(values), 4)]
            if gallery_sizes:
                row.append(round(sum(100.0 * min(k, gallery_sizes[n]) / max(gallery_sizes[n], 1) for n in names)
                                 / len(names), 4))
            if ceiling:
                row.append(round(sum(ceiling[n][k] for n in names) / len(names), 4))
            writer.writerow(row)
