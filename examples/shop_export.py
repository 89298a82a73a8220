"""Writes a product export the way a shop's PIM or e-commerce platform would, to try `fashionvlp data import`.

    python examples/shop_export.py --out shop [--products 2000] [--seed 1]

What it writes under ``--out`` (the products are synthetic, rendered by the project's generator):
- ``export.csv``: one row per product with a shop's own column names: SKU, Product Name, Long Description,
  Department, Product Type, Colour (written as the shop writes it: "Navy", "Burgundy"), Pattern, Material,
  Details (the other attributes as a JSON object), Image Paths ("SKU/1.jpg|SKU/2.jpg"), and columns a model
  does not read (Price, Stock, Created). Two rows are broken as real exports are: a gift card (a department
  the taxonomy does not have) and a product whose image file is missing.
- ``media/<SKU>/<k>.jpg``: the images.
- ``taxonomy.yaml``: the shop's taxonomy (departments → product types → attributes; values and synonyms).
- ``mapping.yaml``: which column is what.

Then (README, "Your own catalog"):

    fashionvlp data import shop/export.csv --images shop/media --mapping shop/mapping.yaml \\
        --taxonomy shop/taxonomy.yaml --out shop/catalog --max-reject 2
    make run CATALOG=shop/catalog ARGS="--set=evaluation.allow_fallback=true"
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml

from fashionvlp.config import SynthConfig
from fashionvlp.data.catalog_io import read_catalog
from fashionvlp.data.synth.generate import synthesize

COLUMNS = ["SKU", "Product Name", "Long Description", "Department", "Product Type", "Colour", "Pattern", "Material",
           "Details", "Image Paths", "Price", "Stock", "Created"]


def _taxonomy(schema) -> dict:
    return {"attributes": {a: {"visible": d.visible, "values": {v: [f for f in forms if f != v]
                                                                for v, forms in d.values.items()}}
                           for a, d in schema.attributes.items()},
            "categories": {c.title(): {"subcategories": [s.title() for s in d.subcategories], "attributes": d.attributes}
                           for c, d in schema.categories.items()}}


MAPPING = {
    "columns": {"id": "SKU", "title": "Product Name", "description": "Long Description", "category": "Department",
                "subcategory": "Product Type", "images": "Image Paths"},
    "image_separator": "|",
    "attributes": {"columns": {"color": "Colour", "pattern": "Pattern", "material": "Material"}, "json": "Details"},
    "unknown_values": "reject",
    "split": {"val": 0.05, "test": 0.25, "seed": 0},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--products", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    out, media = args.out, args.out / "media"
    media.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = read_catalog(synthesize(SynthConfig(num_products=args.products, seed=args.seed, workers=0),
                                         Path(tmp) / "catalog"))
        rows = []
        for k, p in enumerate(source.iter_products()):
            sku = f"AW25-{k + 1:06d}"
            (media / sku).mkdir(exist_ok=True)
            paths = []
            for i, view in enumerate(p.images, start=1):
                shutil.copyfile(source.root / view.path, media / sku / f"{i}.jpg")
                paths.append(f"{sku}/{i}.jpg")
            forms = {a: source.schema.surface_forms(a, v) for a, v in p.attributes.items()}
            # a shop writes its own word for the value: "Navy", "Burgundy", "Plaid"
            said = {a: str(rng.choice(f)).title() for a, f in forms.items()}
            details = {a: v for a, v in said.items() if a not in ("color", "pattern", "material")}
            rows.append({"SKU": sku, "Product Name": p.title, "Long Description": p.description,
                         "Department": p.category.title(), "Product Type": p.subcategory.title(),
                         "Colour": said.get("color", ""), "Pattern": said.get("pattern", ""),
                         "Material": said.get("material", ""), "Details": json.dumps(details) if details else "",
                         "Image Paths": "|".join(paths), "Price": f"{rng.uniform(19, 490):.2f}",
                         "Stock": int(rng.integers(0, 60)), "Created": f"2025-{1 + k % 12:02d}-{1 + k % 28:02d}"})
        schema = source.schema
    rows.append({**rows[0], "SKU": "GC-0050", "Product Name": "Gift card 50 EUR", "Department": "Gift Cards",
                 "Product Type": "Gift Cards", "Colour": "", "Pattern": "", "Material": "", "Details": ""})
    rows.append({**rows[1], "SKU": "AW25-LOST", "Image Paths": "AW25-LOST/1.jpg"})
    with (out / "export.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "taxonomy.yaml").write_text(yaml.safe_dump(_taxonomy(schema), sort_keys=False, allow_unicode=True))
    (out / "mapping.yaml").write_text(yaml.safe_dump(MAPPING, sort_keys=False))
    print(f"wrote {len(rows)} rows to {out / 'export.csv'}, images under {media}, {out / 'taxonomy.yaml'}, "
          f"{out / 'mapping.yaml'}")


if __name__ == "__main__":
    main()
