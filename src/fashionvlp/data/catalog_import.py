"""A shop's own product export → catalog (``fashionvlp data import``).

Three inputs:
- the table: CSV, JSONL or Parquet, one row per product;
- a mapping (YAML) that names its columns: id, title, description, category, subcategory, the images (one
  column holding a list, or several columns; paths relative to ``--images``), the attributes (a JSON column
  and/or one column per attribute), and a split column or a seeded split by product, stratified by
  subcategory;
- the shop's taxonomy (YAML): categories → subcategories and their attributes, attribute values with their
  synonyms. It becomes the catalog's ``schema.json``, so KG-FLIP's knowledge-guided masking and negatives
  (KG-MLIM, KG-ITM) and the attribute heads work from the shop's own vocabulary: KG-FLIP's catalog
  attribute schema for any catalog.

A row with a problem (a missing id or title, an unknown category or attribute value, an image that is
missing, undecodable or outside ``--images``, a repeated id) is rejected by row number and column into
``rejected_rows.csv``. Up to ``max_reject`` rows the import succeeds without them; above it nothing is written
and the error lists them. A mapping that names a column the table lacks stops the import before any row.

Example mapping::

    columns:
      id: sku
      title: product_name
      description: long_description
      category: department
      subcategory: product_type
      images: [image_front, image_back]     # or one column holding a list: images: image_paths
    image_separator: "|"                     # how a one-column list is written, when it is not JSON
    attributes:
      columns: {color: colour, pattern: print}
      json: extra_attributes                 # a column holding {"attribute": "value"}
    unknown_values: reject                   # or add: an unknown value joins the schema, with a warning
    split: {val: 0.05, test: 0.2, seed: 0}   # or columns.split naming a train/val/test column
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fashionvlp.data.catalog_io import CatalogError, CatalogWriter, ImageLimits, RecordError, check_image_bytes
from fashionvlp.data.schema import AttributeDef, AttributeSchema, CategoryDef

log = logging.getLogger(__name__)
REJECT_REPORT = "rejected_rows.csv"
TABLE_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnMapping(_Strict):
    id: str
    title: str
    description: str | None = None
    category: str
    subcategory: str
    images: str | list[str]
    split: str | None = None


class AttributeMapping(_Strict):
    json_column: str | None = Field(None, alias="json")
    columns: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SplitShares(_Strict):
    val: float = Field(0.05, ge=0, lt=1)
    test: float = Field(0.2, ge=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _leaves_train(self) -> "SplitShares":
        if self.val + self.test >= 1:
            raise ValueError(f"val + test must leave some train products, got {self.val} + {self.test}")
        return self


class ImportMapping(_Strict):
    columns: ColumnMapping
    image_separator: str = "|"
    attributes: AttributeMapping = Field(default_factory=AttributeMapping)
    unknown_values: Literal["reject", "add"] = "reject"
    split: SplitShares = Field(default_factory=SplitShares)


class TaxonomyAttribute(_Strict):
    visible: bool = True
    values: dict[str, list[str]]                  # value → synonyms (the value itself is always one)


class TaxonomyCategory(_Strict):
    subcategories: list[str] = Field(min_length=1)
    attributes: list[str] = Field(default_factory=list)


class Taxonomy(_Strict):
    attributes: dict[str, TaxonomyAttribute] = Field(default_factory=dict)
    categories: dict[str, TaxonomyCategory] = Field(min_length=1)


def _read_yaml(path: Path, model, what: str):
    try:
        tree = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise CatalogError([RecordError(str(path), "<file>", "file not found")], context=what) from exc
    except yaml.YAMLError as exc:
        raise CatalogError([RecordError(str(path), "<file>", f"not valid YAML: {exc}")], context=what) from exc
    try:
        return model.model_validate(tree or {})
    except ValidationError as exc:
        raise CatalogError([RecordError(str(path), ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()],
                           context=what) from exc


def load_mapping(path: Path) -> ImportMapping:
    return _read_yaml(path, ImportMapping, "import mapping")


def load_taxonomy(path: Path) -> AttributeSchema:
    """The shop's taxonomy as the catalog's attribute schema (each value's name is its first surface form)."""
    taxonomy = _read_yaml(path, Taxonomy, "taxonomy")
    errors = [RecordError(str(path), f"categories.{name}.attributes", f"unknown attribute {a!r}")
              for name, c in taxonomy.categories.items() for a in c.attributes if a not in taxonomy.attributes]
    if errors:
        raise CatalogError(errors, context="taxonomy")
    attributes = {name: AttributeDef(visible=a.visible, values={v: list(dict.fromkeys([v, *synonyms]))
                                                                for v, synonyms in a.values.items()})
                  for name, a in taxonomy.attributes.items()}
    try:
        return AttributeSchema(attributes=attributes,
                               categories={name: CategoryDef(subcategories=c.subcategories, attributes=c.attributes)
                                           for name, c in taxonomy.categories.items()})
    except ValidationError as exc:
        raise CatalogError([RecordError(str(path), "<taxonomy>", e["msg"]) for e in exc.errors()],
                           context="taxonomy") from exc


def read_table(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV (header row), JSONL or Parquet file, as dicts (empty cells are None)."""
    path = Path(path)
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise CatalogError([RecordError(str(path), "<file>", f"unknown table type {path.suffix!r}; expected one of "
                                                             f"{', '.join(sorted(TABLE_SUFFIXES))}")], context="import")
    if not path.is_file():
        raise CatalogError([RecordError(str(path), "<file>", "file not found")], context="import")
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if kind == "jsonl":
        rows = []
        for k, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise CatalogError([RecordError(f"{path} line {k + 1}", "<row>", f"not valid JSON: {exc}")],
                                       context="import") from exc
        return rows
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return [{k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(fh)]


def _check_columns(mapping: ImportMapping, rows: list[dict], table: Path) -> None:
    present = set().union(*(row.keys() for row in rows)) if rows else set()
    wanted = {f"columns.{k}": v for k, v in mapping.columns.model_dump().items() if isinstance(v, str)}
    if isinstance(mapping.columns.images, list):
        wanted |= {f"columns.images[{k}]": c for k, c in enumerate(mapping.columns.images)}
    if mapping.attributes.json_column:
        wanted["attributes.json"] = mapping.attributes.json_column
    wanted |= {f"attributes.columns.{a}": c for a, c in mapping.attributes.columns.items()}
    errors = [RecordError("mapping", key, f"names column {column!r}, which {table.name} does not have "
                                         f"(columns: {', '.join(sorted(present)) or 'none'})")
              for key, column in wanted.items() if column not in present]
    if errors:
        raise CatalogError(errors, context=f"import of {table}")


@dataclass
class Rejected:
    row: int
    product_id: str
    column: str
    reason: str


class _Vocabulary:
    """Each attribute's surface forms (case-insensitive) → value; ``add`` grows the schema with new values."""

    def __init__(self, schema: AttributeSchema):
        self.values = {a: {v: list(forms) for v, forms in d.values.items()} for a, d in schema.attributes.items()}
        self.visible = {a: d.visible for a, d in schema.attributes.items()}
        self.added: list[tuple[str, str]] = []

    def lookup(self, attribute: str, text: str) -> str | None:
        key = text.strip().lower()
        return next((v for v, forms in self.values[attribute].items() if key in (f.lower() for f in forms)), None)

    def add(self, attribute: str, text: str) -> str:
        value = text.strip()
        self.values[attribute][value] = [value]
        self.added.append((attribute, value))
        return value

    def schema(self, categories: dict[str, CategoryDef]) -> AttributeSchema:
        return AttributeSchema(attributes={a: AttributeDef(visible=self.visible[a], values=v)
                                           for a, v in self.values.items()}, categories=categories)


def _cell(row: dict, column: str | None) -> str:
    value = row.get(column) if column else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _image_cells(row: dict, mapping: ImportMapping) -> list[str]:
    spec = mapping.columns.images
    if isinstance(spec, list):
        return [c for c in (_cell(row, column) for column in spec) if c]
    raw = row.get(spec)
    if isinstance(raw, (list, tuple)):
        return [str(x).strip() for x in raw if str(x).strip()]
    text = _cell(row, spec)
    if text.startswith("["):
        try:
            return [str(x).strip() for x in json.loads(text) if str(x).strip()]
        except json.JSONDecodeError:
            pass
    return [part.strip() for part in text.split(mapping.image_separator) if part.strip()]


def _attribute_cells(row: dict, mapping: ImportMapping) -> tuple[dict[str, str], str | None]:
    """(attribute → raw value, a problem with the JSON column or None)."""
    cells: dict[str, str] = {}
    if mapping.attributes.json_column:
        raw = row.get(mapping.attributes.json_column)
        if isinstance(raw, str) and raw.strip():
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                return {}, f"not a JSON object: {exc}"
        if isinstance(raw, dict):
            cells |= {str(k): str(v).strip() for k, v in raw.items() if v is not None and str(v).strip()}
        elif raw not in (None, "") and not (isinstance(raw, float) and math.isnan(raw)):
            return {}, f"expected a JSON object, got {type(raw).__name__}"
    cells |= {a: _cell(row, c) for a, c in mapping.attributes.columns.items() if _cell(row, c)}
    return cells, None


def _stratified_split(products: list[tuple[str, str]], shares: SplitShares) -> dict[str, str]:
    """product id → split: per subcategory, a seeded share of its products to test and to val."""
    rng = np.random.default_rng(shares.seed)
    by_sub: dict[str, list[str]] = {}
    for product_id, subcategory in products:
        by_sub.setdefault(subcategory, []).append(product_id)
    split = {}
    for subcategory in sorted(by_sub):
        ids = [by_sub[subcategory][i] for i in rng.permutation(len(by_sub[subcategory]))]
        n_test, n_val = int(round(shares.test * len(ids))), int(round(shares.val * len(ids)))
        split |= {i: "test" for i in ids[:n_test]} | {i: "val" for i in ids[n_test:n_test + n_val]}
        split |= {i: "train" for i in ids[n_test + n_val:]}
    return split


def import_catalog(table: Path, images: Path, mapping: ImportMapping, schema: AttributeSchema, out: Path,
                   limits: ImageLimits = ImageLimits(), max_reject: int = 0, report: Path | None = None) -> Path:
    """Writes the catalog; returns its path. Raises ``CatalogError`` (nothing written) above ``max_reject``
    rejected rows, and then writes their list to ``report`` (default: ``<out>.rejected.csv`` beside it)."""
    table, images, out = Path(table), Path(images).resolve(), Path(out)
    if not images.is_dir():
        raise CatalogError([RecordError(str(images), "--images", "not a directory")], context="import")
    rows = read_table(table)
    _check_columns(mapping, rows, table)
    vocabulary = _Vocabulary(schema)
    # Images go into the writer's staging directory as rows are accepted (memory stays flat); nothing reaches
    # ``out`` unless the import commits.
    with CatalogWriter(out, schema, source="import", image_limits=limits) as writer:
        rejected, accepted = _read_rows(rows, images, mapping, schema, vocabulary, limits, writer)
        report_text = _report(rejected)
        if len(rejected) > max_reject:
            report = Path(report) if report else out.parent / f"{out.name}.rejected.csv"
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(report_text)
            raise CatalogError([RecordError(f"row {r.row} (id {r.product_id!r})", r.column, r.reason)
                                for r in rejected],
                               context=f"import of {table}: {len(rejected)} rejected row(s), over --max-reject "
                                       f"{max_reject}; all listed in {report}")
        cols = mapping.columns
        splits = ({p["product_id"]: p["split"] for p in accepted} if cols.split else
                  _stratified_split([(p["product_id"], p["subcategory"]) for p in accepted], mapping.split))
        writer.schema = vocabulary.schema(dict(schema.categories))
        for p in accepted:
            writer.add_product(f"row {p.pop('number')} (id {p['product_id']!r})", **{**p, "split": splits[p["product_id"]]})
        writer.add_report(REJECT_REPORT, report_text)
        return writer.commit({"imported_from": str(table.resolve()), "images": str(images),
                              "rows": len(rows), "rejected_rows": len(rejected), "max_reject": max_reject,
                              "values_added": [list(a) for a in vocabulary.added],
                              "split_policy": (f"column {cols.split!r}" if cols.split else
                                               f"seeded by product (seed {mapping.split.seed}), stratified by "
                                               f"subcategory: val {mapping.split.val:.0%}, test {mapping.split.test:.0%}")})


def _read_rows(rows: list[dict], images: Path, mapping: ImportMapping, schema: AttributeSchema,
               vocabulary: _Vocabulary, limits: ImageLimits, writer: CatalogWriter) -> tuple[list[Rejected], list[dict]]:
    """Checks every row; an accepted row's images go to ``writer`` and its fields are returned."""
    rejected: list[Rejected] = []
    accepted: list[dict] = []
    seen: dict[str, int] = {}
    cols = mapping.columns
    for number, row in enumerate(rows, start=1):
        product_id = _cell(row, cols.id)

        def reject(column: str, reason: str) -> None:
            rejected.append(Rejected(number, product_id, column, reason))

        if not product_id:
            reject(cols.id, "id is empty")
            continue
        if product_id in seen:
            reject(cols.id, f"id {product_id!r} repeats row {seen[product_id]}")
            continue
        seen[product_id] = number
        title, category, subcategory = _cell(row, cols.title), _cell(row, cols.category), _cell(row, cols.subcategory)
        if not title:
            reject(cols.title, "title is empty")
            continue
        if category not in schema.categories:
            reject(cols.category, f"unknown category {category!r} (taxonomy: {', '.join(schema.categories)})")
            continue
        if subcategory not in schema.categories[category].subcategories:
            reject(cols.subcategory, f"{subcategory!r} is not a subcategory of {category!r} "
                                     f"(taxonomy: {', '.join(schema.categories[category].subcategories)})")
            continue
        split = _cell(row, cols.split) if cols.split else None
        if cols.split and split not in ("train", "val", "test"):
            reject(cols.split, f"split must be train, val or test, got {split!r}")
            continue
        attributes, bad = _attributes(row, mapping, schema, vocabulary, category, number, product_id)
        if bad:
            reject(*bad)
            continue
        loaded, bad = _images(row, mapping, images, limits)
        if bad:
            reject(*bad)
            continue
        record = f"row {number} (id {product_id!r})"
        views = tuple(writer.add_image_bytes(product_id, k, "front" if k == 0 else f"view{k}", data, record=record,
                                             checked=checked) for k, (data, checked) in enumerate(loaded))
        accepted.append({"number": number, "product_id": product_id, "title": title, "category": category,
                         "subcategory": subcategory, "description": _cell(row, cols.description),
                         "attributes": attributes, "split": split, "images": views})
    return rejected, accepted


def _attributes(row, mapping, schema, vocabulary, category, number, product_id):
    """(attribute → value, None) or ({}, (column, reason))."""
    cells, problem = _attribute_cells(row, mapping)
    if problem:
        return {}, (mapping.attributes.json_column, problem)
    attributes = {}
    applicable = schema.categories[category].attributes
    for attribute, text in cells.items():
        column = mapping.attributes.columns.get(attribute, mapping.attributes.json_column)
        if attribute not in applicable:
            return {}, (column, f"attribute {attribute!r} does not apply to {category!r} "
                                f"(taxonomy: {', '.join(applicable) or 'none'})")
        value = vocabulary.lookup(attribute, text)
        if value is None and mapping.unknown_values == "add":
            value = vocabulary.add(attribute, text)
            log.warning("row %d (%s): %s value %r is not in the taxonomy; added to the schema", number, product_id,
                        attribute, text)
        if value is None:
            return {}, (column, f"{attribute} value {text!r} is not in the taxonomy "
                                f"({', '.join(vocabulary.values[attribute])})")
        attributes[attribute] = value
    return attributes, None


def _images(row, mapping, images: Path, limits: ImageLimits):
    """([(bytes, check)], None) or ([], (column, reason)): every image read and checked, none written."""
    cols = mapping.columns
    paths = _image_cells(row, mapping)
    first = cols.images if isinstance(cols.images, str) else cols.images[0]
    if not paths:
        return [], (first, "no image")
    loaded = []
    for k, relative in enumerate(paths):
        column = cols.images if isinstance(cols.images, str) else cols.images[min(k, len(cols.images) - 1)]
        path = (images / relative).resolve()
        if not path.is_relative_to(images):
            return [], (column, f"image path {relative!r} is outside --images {images}")
        if not path.is_file():
            return [], (column, f"image file not found: {path}")
        if path.stat().st_size > limits.max_bytes:
            return [], (column, f"image {relative!r} is {path.stat().st_size} bytes, over the limit of {limits.max_bytes}")
        data = path.read_bytes()
        checked = check_image_bytes(data, limits)
        if checked[0]:
            return [], (column, f"image {relative!r}: {checked[0]}")
        loaded.append((data, checked))
    return loaded, None


def _report(rejected: list[Rejected]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["row", "id", "column", "reason"])
    writer.writerows([r.row, r.product_id, r.column, r.reason] for r in rejected)
    return buf.getvalue()
