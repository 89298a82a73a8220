"""Polyvore Outfits → catalog: outfit items become products, outfits are kept for OCIR.

Layout as released (``polyvore_outfits/``): ``polyvore_item_metadata.json`` (item id → title, description,
url_name, category_id, semantic_category), ``categories.csv`` (id, fine-grained name, semantic category),
``images/{id}.jpg``, and per variant (``disjoint``, ``nondisjoint``) ``{variant}/{train,valid,test}.json``
(lists of {set_id, items: [{item_id, index}]}), ``{variant}/fill_in_blank_{split}.json`` (lists of
{question, answers, blank_position}, items named ``{set_id}_{index}``) and ``{variant}/compatibility_{split}.txt``
(lines ``label set_index set_index …``).

An item is one product wherever it appears (the nondisjoint variant shares items between splits' outfits;
a product takes the split of the first outfit file that names it). The fill-in-the-blank questions and the
compatibility outfits are kept as released (``fitb.parquet``, ``compatibility.parquet``), so OCIR evaluation
reports the standard Polyvore metrics on them: FITB accuracy (the answer is the candidate from the question's
own outfit) and compatibility AUC.
"""

from __future__ import annotations

import csv
from pathlib import Path

from fashionvlp.data.catalog_io import CatalogError, CatalogWriter, ImageLimits, RecordError
from fashionvlp.data.converters.common import load_json, mine_attributes, schema_for

SPLIT_FILES = {"train": "train.json", "val": "valid.json", "test": "test.json"}
RELEASE_SPLIT = {"train": "train", "val": "valid", "test": "test"}


def _benchmarks(writer: CatalogWriter, folder: Path, split: str, slots: dict[str, str]) -> None:
    """The split's fill-in-the-blank questions and compatibility outfits, items resolved through ``slots``
    (``{set_id}_{index}`` → item id, from that split's outfit file)."""
    name = RELEASE_SPLIT[split]
    fitb = folder / f"fill_in_blank_{name}.json"
    if fitb.exists():
        for k, entry in enumerate(load_json(fitb, "Polyvore")):
            rec = f"{fitb.name}[{k}]"
            missing = [f for f in ("question", "answers") if not isinstance(entry, dict) or f not in entry]
            if missing:
                writer.reject(rec, missing[0], "field is missing")
                continue
            unknown = [(f, i, slot) for f in ("question", "answers") for i, slot in enumerate(entry[f])
                       if str(slot) not in slots]
            if unknown:
                field_name, i, slot = unknown[0]
                writer.reject(rec, f"{field_name}[{i}]", f"{slot!r} is not an item of {name}.json's outfits")
                continue
            own_set = {str(slot).rsplit("_", 1)[0] for slot in entry["question"]}
            answers = [k2 for k2, slot in enumerate(entry["answers"]) if str(slot).rsplit("_", 1)[0] in own_set]
            if len(answers) != 1:
                writer.reject(rec, "answers", f"{len(answers)} candidates come from the question's outfit, expected 1")
                continue
            writer.add_fitb_question(rec, question_id=f"{name}.{k}", product_ids=tuple(slots[str(x)] for x in entry["question"]),
                                     candidates=tuple(slots[str(x)] for x in entry["answers"]), answer=answers[0],
                                     split=split)
    compatibility = folder / f"compatibility_{name}.txt"
    if compatibility.exists():
        for k, line in enumerate(compatibility.read_text().splitlines()):
            rec = f"{compatibility.name} line {k + 1}"
            fields = line.split()
            if not fields:
                continue
            if fields[0] not in ("0", "1"):
                writer.reject(rec, "label", f"expected 0 or 1, got {fields[0]!r}")
                continue
            unknown = [slot for slot in fields[1:] if slot not in slots]
            if unknown:
                writer.reject(rec, "items", f"{unknown[0]!r} is not an item of {name}.json's outfits")
                continue
            writer.add_compatibility(rec, outfit_id=f"{name}.{k + 1}", product_ids=tuple(slots[x] for x in fields[1:]),
                                     compatible=fields[0] == "1", split=split)


def convert_polyvore(root: Path, out: Path, variant: str = "nondisjoint",
                     limits: ImageLimits = ImageLimits()) -> Path:
    root = Path(root)
    meta_path = root / "polyvore_item_metadata.json"
    if not meta_path.exists():
        raise CatalogError([RecordError(str(meta_path), "<file>", "file not found")], context="Polyvore")
    metadata = load_json(meta_path, "Polyvore")
    fine_names = {}
    cat_csv = root / "categories.csv"
    if cat_csv.exists():
        with cat_csv.open() as fh:
            for row in csv.reader(fh):
                if len(row) >= 2:
                    fine_names[row[0].strip()] = row[1].strip()
    outfits = []
    item_split: dict[str, str] = {}
    slots: dict[str, dict[str, str]] = {}     # split → {set_id}_{index} → item id
    bad: list[RecordError] = []
    for split, name in SPLIT_FILES.items():
        path = root / variant / name
        if not path.exists():
            continue
        for k, outfit in enumerate(load_json(path, "Polyvore")):
            items = outfit.get("items") if isinstance(outfit, dict) else None
            if not isinstance(items, list) or not all(isinstance(it, dict) and "item_id" in it for it in items):
                bad.append(RecordError(f"{path.name}[{k}]", "items", "expected a list of {item_id, index} objects"))
                continue
            items = sorted(items, key=lambda it: it.get("index", 0))
            ids = [str(it["item_id"]) for it in items]
            set_id = str(outfit.get("set_id", f"{split}-{k}"))
            outfits.append((f"{path.name}[{k}]", set_id, ids, split))
            for it in items:
                slots.setdefault(split, {})[f"{set_id}_{it.get('index', 0)}"] = str(it["item_id"])
            for item in ids:
                item_split.setdefault(item, split)
    if bad:
        raise CatalogError(bad, context="Polyvore")
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
        for split in SPLIT_FILES:
            _benchmarks(writer, root / variant, split, slots.get(split, {}))
        return writer.commit({"converted_from": str(root), "variant": variant})
