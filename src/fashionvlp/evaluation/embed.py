"""Unimodal embeddings of catalog products with a saved model (first view + title/description text)."""

from __future__ import annotations

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


@torch.no_grad()
def embed_products(model, catalog: Catalog, products: list[Product], image_size: int, max_length: int,
                   batch_size: int = 64) -> Embeddings:
    model.eval()
    transform = ImageTransform(image_size, model.image_encoder.normalization)
    images, texts = [], []
    for start in range(0, len(products), batch_size):
        chunk = products[start:start + batch_size]
        pixels = torch.stack([transform.to_tensor(transform.load(catalog.root / p.images[0].path)) for p in chunk])
        enc = model.tokenizer([p.text for p in chunk], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
        images.append(model.encode_image(pixels).global_.float().numpy())
        texts.append(model.encode_text(enc.input_ids, enc.attention_mask).global_.float().numpy())
    return Embeddings([p.product_id for p in products], [p.subcategory for p in products],
                      np.concatenate(images), np.concatenate(texts))
