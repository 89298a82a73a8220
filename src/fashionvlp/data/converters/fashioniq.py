"""FashionIQ → catalog: images become products, caption files become triplets.

Layout as released: ``captions/cap.{group}.{split}.json`` (list of {candidate, target, captions[2]}),
``image_splits/split.{group}.{split}.json`` (list of image ids), ``images/{id}.jpg`` (fetched by the user from
the URL lists), and optionally ``tags/asin2attr.{group}.{split}.json`` (id → attribute phrases), which
become the product titles.

The papers' split: FashionIQ's train is the train split and its val the evaluation (``test``) split; the
release's test captions have no ``target`` (withheld for the challenge), so those entries are left out of the
triplets and counted, as are the test images. A share of the image URLs are dead: a product whose image is
missing is left out (with the triplets that name it) and listed in ``missing_images.txt``, up to
``max_missing`` of the products; above that the conversion fails and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

from fashionvlp.data.catalog_io import CatalogError, CatalogWriter, ImageLimits, RecordError
from fashionvlp.data.converters.common import load_json, mine_attributes, schema_for

GROUPS = {"dress": ("DRESSES", "dresses", "dress"), "shirt": ("SHIRTS", "shirts", "shirt"),
          "toptee": ("TOPS", "tops & tees", "top")}
# FashionIQ split → catalog split; its test split has no targets and is left out.
SPLITS = {"train": "train", "val": "test"}
RELEASE_SPLITS = ("train", "val", "test")
MISSING_REPORT = "missing_images.txt"
MAX_MISSING = 0.15


def _find_image(root: Path, asin: str) -> Path | None:
    for ext in ("jpg", "png", "jpeg", "webp"):
        p = root / "images" / f"{asin}.{ext}"
        if p.exists():
            return p
    return None


def convert_fashioniq(root: Path, out: Path, limits: ImageLimits = ImageLimits(),
                      max_missing: float = MAX_MISSING) -> Path:
    """``max_missing``: the largest share of products whose image may be missing (left out and listed)."""
    root = Path(root)
    products: dict[str, tuple[str, str]] = {}      # asin → (group, catalog split)
    tags: dict[str, list[str]] = {}
    triplet_rows = []
    left_out = {"test_images": 0, "captions_without_target": {}}
    for group in GROUPS:
        for release_split in RELEASE_SPLITS:
            split = SPLITS.get(release_split)
            split_file = root / "image_splits" / f"split.{group}.{release_split}.json"
            if split_file.exists():
                for asin in load_json(split_file, "FashionIQ"):
                    if split is None:
                        left_out["test_images"] += 1
                    else:
                        products.setdefault(str(asin), (group, split))
            tag_file = root / "tags" / f"asin2attr.{group}.{release_split}.json"
            if tag_file.exists():
                for asin, phrases in load_json(tag_file, "FashionIQ").items():
                    flat = [w for p in phrases for w in (p if isinstance(p, list) else [p]) if w]
                    tags[str(asin)] = [str(w) for w in flat]
            cap_file = root / "captions" / f"cap.{group}.{release_split}.json"
            if cap_file.exists():
                for k, entry in enumerate(load_json(cap_file, "FashionIQ")):
                    if isinstance(entry, dict) and "target" not in entry:
                        counts = left_out["captions_without_target"]
                        counts[cap_file.name] = counts.get(cap_file.name, 0) + 1
                    elif split is not None:
                        triplet_rows.append((cap_file, k, group, split, entry))
    if not products:
        raise CatalogError([RecordError(str(root), "image_splits", "no split.{group}.{train,val}.json files found")],
                           context="FashionIQ")
    images = {asin: _find_image(root, asin) for asin in products}
    missing = sorted(asin for asin, path in images.items() if path is None)
    if len(missing) > max_missing * len(products):
        raise CatalogError([RecordError(str(root / "images"), "<dir>",
                                        f"{len(missing)} of {len(products)} product images are missing "
                                        f"({len(missing) / len(products):.1%}), over --max-missing {max_missing:.0%}; "
                                        f"first: {', '.join(missing[:5])}")], context="FashionIQ")
    schema = schema_for({GROUPS[g][0]: [GROUPS[g][1]] for g in GROUPS})
    with CatalogWriter(out, schema, source="fashioniq", image_limits=limits) as writer:
        for asin, (group, split) in products.items():
            if images[asin] is None:
                continue
            category, subcategory, noun = GROUPS[group]
            rec = f"image {asin!r} (group {group})"
            view = writer.add_image_file(asin, 0, "front", images[asin], record=rec)
            words = tags.get(asin, [])
            title = " ".join(words[:4] + [noun])
            writer.add_product(rec, product_id=asin, title=title, description=", ".join(words), category=category,
                               subcategory=subcategory, attributes=mine_attributes(schema, category, " ".join(words)),
                               images=(view,) if view else (), split=split)
        skipped = set(missing)
        left_out["triplets_missing_image"] = 0
        for cap_file, k, group, split, entry in triplet_rows:
            rec = f"{cap_file.name}[{k}]"
            if not isinstance(entry, dict):
                writer.reject(rec, "<entry>", f"expected an object, got {type(entry).__name__}")
                continue
            captions = entry.get("captions")
            if not isinstance(captions, list) or len(captions) != 2:
                n = len(captions) if isinstance(captions, list) else type(captions).__name__
                writer.reject(rec, "captions", f"expected a list of 2 captions, got {n}")
                continue
            if "candidate" not in entry:
                writer.reject(rec, "candidate", "field is missing")
                continue
            if {str(entry["candidate"]), str(entry["target"])} & skipped:
                left_out["triplets_missing_image"] += 1
                continue
            writer.add_triplet(rec, triplet_id=f"{group}.{split}.{k}", reference_id=str(entry["candidate"]),
                               target_id=str(entry["target"]), captions=tuple(captions), group=group, split=split)
        left_out["missing_images"] = len(missing)
        writer.add_report(MISSING_REPORT, "".join(f"{asin}\n" for asin in missing))
        return writer.commit({"converted_from": str(root), "left_out": left_out, "max_missing": max_missing,
                              "split_policy": {"train": "FashionIQ train", "test": "FashionIQ val (the papers' "
                                               "evaluation split)", "left out": "FashionIQ test (no targets)"}})
