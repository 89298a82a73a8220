"""Polyvore Outfits → catalog: outfit items become products, outfits are kept for OCIR.

Layout: ``polyvore_item_metadata.json`` (item id → title, description, url_name, category_id,
semantic_category), ``categories.csv`` (id, fine-grained name, semantic category), ``images/{id}.jpg``,
and ``{variant}/{train,valid,test}.json`` (lists of {set_id, items: [{item_id, index}]}).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from fashionvlp.data.catalog_io import CatalogError, CatalogWriter, ImageLimits, RecordError
from fashionvlp.data.converters.common import mine_attributes, schema_for

SPLIT_FILES = {"train": "train.json", "val": "valid.json", "test": "test.json"}


def convert_polyvore(root: Path, out: Path, variant: str = "nondisjoint",
                     limits: ImageLimits = ImageLimits()) -> Path:
    root = Path(root)
    meta_path = root / "polyvore_item_metadata.json"
    if not meta_path.exists():
        raise CatalogError([RecordError(str(meta_path), "<file>", "file not found")], context="Polyvore")
    metadata = json.loads(meta_path.read_text())
    fine_names = {}
    cat_csv = root / "categories.csv"
    if cat_csv.exists():
        with cat_csv.open() as fh:
            for row in csv.reader(fh):
                if len(row) >= 2:
                    fine_names[row[0].strip()] = row[1].strip()
    outfits = []
    item_split: dict[str, str] = {}
    for split, name in SPLIT_FILES.items():
        path = root / variant / name
        if not path.exists():
            continue
        for k, outfit in enumerate(json.loads(path.read_text())):
            items = sorted(outfit.get("items", []), key=lambda it: it.get("index", 0))
            ids = [str(it["item_id"]) for it in items]
            outfits.append((f"{path.name}[{k}]", str(outfit.get("set_id", f"{split}-{k}")), ids, split))
            for item in ids:
                item_split.setdefault(item, split)
    if not outfits:
        raise CatalogError([RecordError(str(root / variant), "<dir>", "no train/valid/test.json outfit files")],
                           context="Polyvore")
    categories: dict[str, list[str]] = {}
    rows = {}
    for item, split in item_split.items():
        meta = metadata.get(item)
        if meta is None:
            continue
        category = str(meta.get("semantic_category") or "").upper()
        sub = fine_names.get(str(meta.get("category_id")), str(meta.get("category_id") or "")).lower()
        rows[item] = (meta, category, sub, split)
        if category and sub:
            categories.setdefault(category, []).append(sub)
    schema = schema_for(categories)
    with CatalogWriter(out, schema, source="polyvore", image_limits=limits) as writer:
        for item, split in item_split.items():
            rec = f"item {item!r}"
            if item not in rows:
                writer.reject(rec, "metadata", "item is in an outfit but not in polyvore_item_metadata.json")
                continue
            meta, category, sub, _ = rows[item]
            title = str(meta.get("title") or meta.get("url_name") or "").strip()
            description = str(meta.get("description") or "").strip()
            view = writer.add_image_file(item, 0, "front", root / "images" / f"{item}.jpg", record=rec)
            writer.add_product(rec, product_id=item, title=title, description=description, category=category or "?",
                               subcategory=sub or "?", attributes=mine_attributes(schema, category, title, description),
                               images=(view,) if view else (), split=split)
        for rec, set_id, ids, split in outfits:
            writer.add_outfit(rec, outfit_id=set_id, product_ids=tuple(ids), split=split)
        return writer.commit({"converted_from": str(root), "variant": variant})
