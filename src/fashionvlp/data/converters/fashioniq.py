"""FashionIQ → catalog: images become products, caption files become triplets.

Layout: ``captions/cap.{group}.{split}.json`` (list of {candidate, target, captions[2]}),
``image_splits/split.{group}.{split}.json`` (list of image ids), ``images/{id}.jpg``, and optionally
``tags/asin2attr.{group}.{split}.json`` (id → attribute phrases), which become the product titles.
"""

from __future__ import annotations

import json
from pathlib import Path

from fashionvlp.data.catalog_io import CatalogError, CatalogWriter, ImageLimits, RecordError
from fashionvlp.data.converters.common import mine_attributes, schema_for

GROUPS = {"dress": ("DRESSES", "dresses", "dress"), "shirt": ("SHIRTS", "shirts", "shirt"),
          "toptee": ("TOPS", "tops & tees", "top")}
SPLIT_NAMES = {"train": "train", "val": "val", "test": "test"}


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CatalogError([RecordError(str(path), "<file>", f"not valid JSON: {exc}")], context="FashionIQ") from exc


def _find_image(root: Path, asin: str) -> Path:
    for ext in ("jpg", "png", "jpeg", "webp"):
        p = root / "images" / f"{asin}.{ext}"
        if p.exists():
            return p
    return root / "images" / f"{asin}.jpg"


def convert_fashioniq(root: Path, out: Path, limits: ImageLimits = ImageLimits()) -> Path:
    root = Path(root)
    products: dict[str, tuple[str, str]] = {}      # asin → (group, split)
    tags: dict[str, list[str]] = {}
    triplet_rows = []
    for group in GROUPS:
        for split_name, split in SPLIT_NAMES.items():
            split_file = root / "image_splits" / f"split.{group}.{split_name}.json"
            if split_file.exists():
                for asin in _load(split_file):
                    products.setdefault(str(asin), (group, split))
            tag_file = root / "tags" / f"asin2attr.{group}.{split_name}.json"
            if tag_file.exists():
                for asin, phrases in _load(tag_file).items():
                    flat = [w for p in phrases for w in (p if isinstance(p, list) else [p]) if w]
                    tags[str(asin)] = [str(w) for w in flat]
            cap_file = root / "captions" / f"cap.{group}.{split_name}.json"
            if cap_file.exists():
                for k, entry in enumerate(_load(cap_file)):
                    triplet_rows.append((cap_file, k, group, split, entry))
    if not products:
        raise CatalogError([RecordError(str(root), "image_splits", "no split.{group}.{split}.json files found")],
                           context="FashionIQ")
    schema = schema_for({GROUPS[g][0]: [GROUPS[g][1]] for g in GROUPS})
    with CatalogWriter(out, schema, source="fashioniq", image_limits=limits) as writer:
        for asin, (group, split) in products.items():
            category, subcategory, noun = GROUPS[group]
            rec = f"image {asin!r} (group {group})"
            view = writer.add_image_file(asin, 0, "front", _find_image(root, asin), record=rec)
            words = tags.get(asin, [])
            title = " ".join(words[:4] + [noun])
            writer.add_product(rec, product_id=asin, title=title, description=", ".join(words), category=category,
                               subcategory=subcategory, attributes=mine_attributes(schema, category, " ".join(words)),
                               images=(view,) if view else (), split=split)
        for cap_file, k, group, split, entry in triplet_rows:
            rec = f"{cap_file.name}[{k}]"
            captions = entry.get("captions")
            if not isinstance(captions, list) or len(captions) != 2:
                n = len(captions) if isinstance(captions, list) else type(captions).__name__
                writer.reject(rec, "captions", f"expected a list of 2 captions, got {n}")
                continue
            missing = [f for f in ("candidate", "target") if f not in entry]
            if missing:
                writer.reject(rec, missing[0], "field is missing")
                continue
            writer.add_triplet(rec, triplet_id=f"{group}.{split}.{k}", reference_id=str(entry["candidate"]),
                               target_id=str(entry["target"]), captions=tuple(captions), group=group, split=split)
        return writer.commit({"converted_from": str(root)})
