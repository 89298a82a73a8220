"""The search index: image embeddings of a catalog's products from a bundle's image graph, searched by
cosine similarity with faiss. Built once per (image graph, catalog) pair and cached on disk, so a restart
or a reload to a version with the same image encoder does not re-embed the catalog."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashionvlp.serving.bundle import Bundle

log = logging.getLogger("fashionvlp.serving")


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class CatalogIndex:
    products: list[dict]
    embeddings: np.ndarray
    catalog: Path

    def __post_init__(self) -> None:
        import faiss

        self.index = faiss.IndexFlatIP(self.embeddings.shape[1])
        self.index.add(_normalise(self.embeddings))

    def __len__(self) -> int:
        return len(self.products)

    def search(self, queries: np.ndarray, k: int) -> list[list[dict]]:
        scores, ids = self.index.search(_normalise(queries), min(k, len(self.products)))
        return [[{**self.products[i], "score": float(s)} for s, i in zip(row_s, row_i) if i >= 0]
                for row_s, row_i in zip(scores, ids)]

    @classmethod
    def build(cls, bundle: Bundle, catalog_dir: Path, splits: list[str], cache_dir: Path,
              batch_size: int = 64) -> "CatalogIndex":
        from fashionvlp.data.catalog_io import read_catalog

        catalog = read_catalog(catalog_dir)
        graph = bundle.manifest["graphs"]["image"]["file"]
        key = _digest([*bundle.path.glob(f"{graph}*"), catalog.root / "products.parquet"]) + "-" + "_".join(sorted(splits))
        cached = Path(cache_dir) / "index" / f"{key}.npz"
        products = [p for p in catalog.iter_products() if p.split in splits]
        if not products:
            raise ValueError(f"catalog {catalog.root} has no products in splits {splits} to index")
        rows = [{"product_id": p.product_id, "title": p.title, "category": p.category,
                 "subcategory": p.subcategory, "image": p.images[0].path} for p in products]
        if cached.is_file():
            stored = np.load(cached, allow_pickle=False)
            if json.loads(str(stored["ids"])) == [r["product_id"] for r in rows]:
                log.info("search index: %d products from cache %s", len(rows), cached)
                return cls(rows, stored["embeddings"], catalog.root)
        embeddings = []
        for start in range(0, len(products), batch_size):
            chunk = products[start:start + batch_size]
            embeddings.append(bundle.embed_images([bundle.file_pixels(catalog.root / p.images[0].path,
                                                                      f"{p.product_id}.images[0]") for p in chunk]))
        matrix = np.concatenate(embeddings).astype(np.float32)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp-{os.getpid()}.npz")
        np.savez(tmp, embeddings=matrix, ids=np.array(json.dumps([r["product_id"] for r in rows])))
        os.replace(tmp, cached)
        log.info("search index: embedded %d products of %s into %s", len(rows), catalog.root, cached)
        return cls(rows, matrix, catalog.root)
