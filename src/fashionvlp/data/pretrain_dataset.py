"""Pre-training samples: two views, tokenised text with word and attribute units, KG negative text,
title, patch codes and pseudo-attribute targets. One decoded sample serves every objective.

Randomness (view choice, flips, augmentation, attribute swaps) comes from a generator seeded by
(seed, epoch, index), so a sample is the same whichever worker draws it, and resuming is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch.utils.data import Dataset, Sampler

from fashionvlp.data.catalog_io import Catalog
from fashionvlp.data.knowledge import pseudo_attribute_indices, swap_attributes, token_attribute_units
from fashionvlp.data.patch_labels import PatchLabels
from fashionvlp.data.schema import Product
from fashionvlp.models.image_encoders import Normalization


@dataclass(frozen=True)
class ImageTransform:
    image_size: int
    normalization: Normalization

    def load(self, path: Path) -> Image.Image:
        with Image.open(path) as im:
            return im.convert("RGB").resize((self.image_size, self.image_size), Image.Resampling.BICUBIC)

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(self.normalization.mean).view(3, 1, 1)
        std = torch.tensor(self.normalization.std).view(3, 1, 1)
        return (array - mean) / std

    def augment(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """The stand-in second view of a single-view product: random resized crop and brightness jitter."""
        size = self.image_size
        scale = rng.uniform(0.7, 1.0)
        side = int(round(size * np.sqrt(scale)))
        x, y = rng.integers(0, size - side + 1, size=2)
        image = image.crop((int(x), int(y), int(x) + side, int(y) + side)).resize((size, size), Image.Resampling.BICUBIC)
        return ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.8, 1.2)))


def label_maps(schema) -> dict[str, dict[str, int]]:
    """Class indices for category and subcategory (CR/SCR), in the schema's order."""
    categories = list(schema.categories)
    subcategories = [s for c in categories for s in schema.subcategories_of(c)]
    return {"category": {c: i for i, c in enumerate(categories)},
            "subcategory": {s: i for i, s in enumerate(subcategories)}}


def attribute_vocabulary(schema) -> dict[str, list[str]]:
    """Attribute → its values, in the schema's order (attribute extraction's classes)."""
    return {attr: schema.values_of(attr) for attr in schema.attributes}


def attribute_targets(vocabulary: dict[str, list[str]], product: Product) -> list[int]:
    """One value index per attribute; -1 where the product has no value (missing or not applicable)."""
    return [values.index(product.attributes[attr]) if attr in product.attributes else -1
            for attr, values in vocabulary.items()]


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch (the data position is then just epoch + batches done)."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class GroupedEpochSampler(EpochSampler):
    """A seeded order per epoch in runs of ``group_size`` products of one group (their subcategory), the
    runs shuffled: a batch of B (a multiple of group_size) then holds B / group_size runs, so each product
    meets group_size - 1 negatives of its own subcategory. The papers' retrieval galleries are all
    same-subcategory, and a uniformly shuffled batch of 32 over 14 subcategories holds about 2 of them."""

    def __init__(self, groups: list[str], group_size: int, seed: int):
        super().__init__(len(groups), seed)
        self.group_size = group_size
        self.members = [np.flatnonzero(np.asarray(groups) == g) for g in sorted(set(groups))]

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        runs, rest = [], []
        for members in self.members:
            shuffled = rng.permutation(members)
            whole = len(shuffled) // self.group_size * self.group_size
            runs += np.split(shuffled[:whole], whole // self.group_size) if whole else []
            rest += shuffled[whole:].tolist()
        # Whole runs first, so that batch boundaries (a multiple of group_size) never cut one; each group's
        # remainder (fewer than group_size, drawn anew each epoch) ends the epoch.
        order = [int(i) for r in rng.permutation(len(runs)) for i in runs[r]]
        return iter(order + rng.permutation(rest).tolist())


class PretrainDataset(Dataset):
    def __init__(self, catalog: Catalog, products: list[Product], tokenizer, transform: ImageTransform,
                 max_length: int, pseudo_attributes: list[str], pac_max_ngram: int,
                 patch_labels: PatchLabels | None = None, hflip: bool = True, seed: int = 0, views: str = "all"):
        """``views``: "all" draws pixels_a from any of a product's views, "main" always from its first."""
        if views not in ("all", "main"):
            raise ValueError(f"views must be 'all' or 'main', not {views!r}")
        self.catalog, self.products, self.tokenizer, self.transform = catalog, products, tokenizer, transform
        self.max_length, self.patch_labels, self.hflip, self.seed, self.epoch = max_length, patch_labels, hflip, seed, 0
        self.views = views
        self.schema = catalog.schema
        self.pseudo_attributes = pseudo_attributes
        vocabulary = {p: i for i, p in enumerate(pseudo_attributes)}
        # Found once per text and kept: the objectives never re-derive them.
        self.mentions = [self.schema.find_mentions(p.text, p.category) for p in products]
        self.pac = [pseudo_attribute_indices(p.text, vocabulary, pac_max_ngram) for p in products]
        self.labels = label_maps(self.schema)
        self.attribute_vocabulary = attribute_vocabulary(self.schema)
        # Each (view, flip) has a key: the fine-tuning heads' frozen descriptor reads each one once.
        self.first_view = np.cumsum([0] + [len(p.images) for p in products])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.products)

    def _tokenize(self, text: str):
        return self.tokenizer(text, truncation=True, max_length=self.max_length, return_offsets_mapping=True)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        product, mentions = self.products[index], self.mentions[index]
        views = list(product.images)
        order = rng.permutation(len(views))
        if self.views == "main":  # the same draws as "all", so that the rest of the sample's stream is unchanged
            order = np.concatenate([[0], order[order != 0]])
        view_a = views[order[0]]
        image_a = self.transform.load(self.catalog.root / view_a.path)
        if len(views) > 1:
            image_b = self.transform.load(self.catalog.root / views[order[1]].path)
        else:
            image_b = self.transform.augment(image_a, rng)
        flip_a, flip_b = (rng.random(2) < 0.5) & self.hflip
        codes = None
        if self.patch_labels is not None:
            h, w = self.patch_labels.grid
            codes = self.patch_labels.codes_for(view_a.path).reshape(h, w)
            codes = torch.from_numpy(np.ascontiguousarray(codes[:, ::-1] if flip_a else codes).astype(np.int64)).flatten()
        if flip_a:
            image_a = image_a.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if flip_b:
            image_b = image_b.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

        text = product.text
        enc = self._tokenize(text)
        word_ids = [-1 if w is None else w for w in enc.word_ids()]
        units = token_attribute_units(enc["offset_mapping"], mentions)
        negative = swap_attributes(text, mentions, self.schema, rng)
        neg = self._tokenize(negative) if negative is not None else None
        title = self.tokenizer(product.title, truncation=True, max_length=self.max_length)
        return {
            "index": index,
            "pixels_a": self.transform.to_tensor(image_a),
            "image_key_a": 2 * int(self.first_view[index] + order[0]) + int(flip_a),
            "pixels_b": self.transform.to_tensor(image_b),
            "input_ids": enc["input_ids"], "word_ids": word_ids, "attribute_units": units,
            "negative_ids": neg["input_ids"] if neg is not None else None,
            "title_ids": title["input_ids"],
            "codes": codes,
            "pac": self.pac[index],
            "category": self.labels["category"][product.category],
            "subcategory": self.labels["subcategory"][product.subcategory],
            "attributes": attribute_targets(self.attribute_vocabulary, product),
        }


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    length = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (length - len(r)) for r in rows], dtype=torch.long)


@dataclass
class PretrainCollator:
    pad_token_id: int
    num_pseudo_attributes: int

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        ids = [s["input_ids"] for s in samples]
        batch = {
            "index": torch.tensor([s["index"] for s in samples]),
            "pixels_a": torch.stack([s["pixels_a"] for s in samples]),
            "image_key_a": torch.tensor([s["image_key_a"] for s in samples]),
            "pixels_b": torch.stack([s["pixels_b"] for s in samples]),
            "input_ids": _pad(ids, self.pad_token_id),
            "attention_mask": _pad([[1] * len(r) for r in ids], 0),
            "word_ids": _pad([s["word_ids"] for s in samples], -1),
            "attribute_units": _pad([s["attribute_units"] for s in samples], -1),
            "title_ids": _pad([s["title_ids"] for s in samples], self.pad_token_id),
            "title_mask": _pad([[1] * len(s["title_ids"]) for s in samples], 0),
        }
        # KG-ITM: the attribute-swapped text, or (negative_valid=0) the own text, which the objective swaps for another item's.
        negatives = [s["negative_ids"] or s["input_ids"] for s in samples]
        batch["negative_ids"] = _pad(negatives, self.pad_token_id)
        batch["negative_mask"] = _pad([[1] * len(r) for r in negatives], 0)
        batch["negative_valid"] = torch.tensor([s["negative_ids"] is not None for s in samples])
        if samples[0]["codes"] is not None:
            batch["codes"] = torch.stack([s["codes"] for s in samples])
        pac = torch.zeros(len(samples), self.num_pseudo_attributes)
        for row, s in enumerate(samples):
            if s["pac"]:
                pac[row, s["pac"]] = 1.0 / len(s["pac"])
        batch["pac_targets"] = pac
        batch["category"] = torch.tensor([s["category"] for s in samples])
        batch["subcategory"] = torch.tensor([s["subcategory"] for s in samples])
        batch["attributes"] = torch.tensor([s["attributes"] for s in samples], dtype=torch.long)
        return batch
