"""Batches of catalog products for evaluation (first view + title/description text), and their unimodal
embeddings with a saved model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from fashionvlp.data.catalog_io import Catalog
from fashionvlp.data.pretrain_dataset import ImageTransform
from fashionvlp.data.schema import Product


@dataclass
class Embeddings:
    product_ids: list[str]
    subcategories: list[str]
    image: np.ndarray      # [N, H]
    text: np.ndarray       # [N, H]


def product_batches(model, catalog: Catalog, products: list[Product], image_size: int, max_length: int,
                    batch_size: int = 64, with_text: bool = True) -> Iterator[tuple[list[Product], torch.Tensor, object]]:
    """(products, pixels [B,3,S,S], tokenised text or None) in catalog order."""
    transform = ImageTransform(image_size, model.image_encoder.normalization)
    for start in range(0, len(products), batch_size):
        chunk = products[start:start + batch_size]
        pixels = torch.stack([transform.to_tensor(transform.load(catalog.root / p.images[0].path)) for p in chunk])
        enc = model.tokenizer([p.text for p in chunk], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt") if with_text else None
        yield chunk, pixels, enc


@torch.no_grad()
def image_embeddings(model, catalog: Catalog, products: list[Product], image_size: int,
                     batch_size: int = 64) -> np.ndarray:
    model.eval()
    return np.concatenate([model.encode_image(pixels).global_.float().numpy()
                           for _, pixels, _ in product_batches(model, catalog, products, image_size, 0, batch_size,
                                                               with_text=False)])


@torch.no_grad()
def embed_products(model, catalog: Catalog, products: list[Product], image_size: int, max_length: int,
                   batch_size: int = 64) -> Embeddings:
    model.eval()
    images, texts = [], []
    for _, pixels, enc in product_batches(model, catalog, products, image_size, max_length, batch_size):
        images.append(model.encode_image(pixels).global_.float().numpy())
        texts.append(model.encode_text(enc.input_ids, enc.attention_mask).global_.float().numpy())
    return Embeddings([p.product_id for p in products], [p.subcategory for p in products],
                      np.concatenate(images), np.concatenate(texts))
