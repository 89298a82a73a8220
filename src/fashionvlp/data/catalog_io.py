"""Reading and writing a catalog directory (layout in ``schema.py``).

Writes are all-or-nothing: a ``CatalogWriter`` fills a staging directory beside the target, checks
every record, and only then swaps it into place. A bad record raises ``CatalogError`` naming the record
and field, and the previous catalog (if any) is left exactly as it was.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from fashionvlp.data.schema import (
    CATALOG_FORMAT_VERSION,
    AttributeSchema,
    CompatibilityOutfit,
    FitbQuestion,
    ImageView,
    Outfit,
    Product,
    Triplet,
)

PRODUCTS_SCHEMA = pa.schema([
    ("product_id", pa.string()),
    ("title", pa.string()),
    ("description", pa.string()),
    ("category", pa.string()),
    ("subcategory", pa.string()),
    ("attributes", pa.map_(pa.string(), pa.string())),
    ("images", pa.list_(pa.struct([("path", pa.string()), ("view", pa.string())]))),
    ("split", pa.string()),
])
TRIPLETS_SCHEMA = pa.schema([
    ("triplet_id", pa.string()),
    ("reference_id", pa.string()),
    ("target_id", pa.string()),
    ("captions", pa.list_(pa.string())),
    ("group", pa.string()),
    ("split", pa.string()),
])
OUTFITS_SCHEMA = pa.schema([
    ("outfit_id", pa.string()),
    ("product_ids", pa.list_(pa.string())),
    ("split", pa.string()),
])
FITB_SCHEMA = pa.schema([
    ("question_id", pa.string()),
    ("product_ids", pa.list_(pa.string())),
    ("candidates", pa.list_(pa.string())),
    ("answer", pa.int32()),
    ("split", pa.string()),
])
COMPATIBILITY_SCHEMA = pa.schema([
    ("outfit_id", pa.string()),
    ("product_ids", pa.list_(pa.string())),
    ("compatible", pa.bool_()),
    ("split", pa.string()),
])
TABLE_FILES = {"products": "products.parquet", "triplets": "triplets.parquet", "outfits": "outfits.parquet"}
# Written only when a dataset has them (Polyvore's released benchmarks); a catalog without them reads as empty.
OPTIONAL_TABLE_FILES = {"fitb": "fitb.parquet", "compatibility": "compatibility.parquet"}
OPTIONAL_SCHEMAS = {"fitb": FITB_SCHEMA, "compatibility": COMPATIBILITY_SCHEMA}
MAX_ERRORS_SHOWN = 25
# Products are written to the staging table a row group at a time, so a writer's memory does not grow with
# the catalog (FashionGen's 300k views). A catalog under this size is one row group, byte for byte what a
# single ``write_table`` gives (data.dvc pins the embedded catalog's bytes).
PRODUCT_ROW_GROUP = 65_536
WRITE_OPTIONS = {"compression": "zstd", "compression_level": 3, "use_dictionary": True, "write_statistics": True,
                 "store_schema": False}


@dataclass(frozen=True)
class RecordError:
    record: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.record}: field '{self.field}': {self.message}"


class CatalogError(ValueError):
    """Bad input. ``errors`` lists each offending record and field."""

    def __init__(self, errors: list[RecordError], context: str = "catalog"):
        self.errors = errors
        shown = "\n".join(f"  - {e}" for e in errors[:MAX_ERRORS_SHOWN])
        more = f"\n  … and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        super().__init__(f"{context}: {len(errors)} bad record(s); nothing was written:\n{shown}{more}")


@dataclass(frozen=True)
class ImageLimits:
    min_side: int = 32
    max_side: int = 4096
    max_bytes: int = 10_000_000


def image_relpath(product_id: str, index: int, view: str, ext: str) -> str:
    # Sharded by a hash of the id so no directory holds more than ~1/256 of a 50k-product catalog.
    shard = hashlib.md5(product_id.encode()).hexdigest()[:2]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", product_id)
    return f"images/{shard}/{safe}_{index}_{view}.{ext}"


def check_image_bytes(data: bytes, limits: ImageLimits) -> tuple[str | None, str]:
    """(problem or None, file extension) for encoded image bytes."""
    if len(data) > limits.max_bytes:
        return f"image is {len(data)} bytes, over the limit of {limits.max_bytes}", ""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = (img.format or "").upper()
            width, height = img.size
            # A decompression bomb is rejected before decoding.
            if max(width, height) > limits.max_side:
                return f"image is {width}x{height}, over the limit of {limits.max_side} px a side", ""
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"image does not decode ({type(exc).__name__}: {exc})", ""
    if min(width, height) < limits.min_side:
        return f"image is {width}x{height}, under the minimum of {limits.min_side} px a side", ""
    ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}.get(fmt)
    if ext is None:
        return f"image format {fmt or 'unknown'} is not one of JPEG, PNG, WEBP", ""
    return None, ext


def encode_jpeg(image: Image.Image | np.ndarray, quality: int = 95) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=False)
    return buf.getvalue()


def _json_dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _write_table(rows: list[dict[str, Any]], schema: pa.Schema, path: Path) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    # Fixed writer options keep the file byte-identical for identical rows (data.dvc pins its hash).
    pq.write_table(table, path, **WRITE_OPTIONS)


class _ProductTable:
    """The products table as it is added: rows are kept as compact Arrow batches (a few hundred bytes a
    product) and go to disk a row group at a time; the ids (for the duplicate and reference checks) and the
    counts are all that grows with the catalog."""

    BATCH = 1024

    def __init__(self, path: Path, row_group: int | None = None):
        self.path, self.row_group = path, row_group or PRODUCT_ROW_GROUP
        self.row_of: dict[str, int] = {}
        self.images = 0
        self.by_split = {s: 0 for s in ("train", "val", "test")}
        self._rows: list[dict[str, Any]] = []
        self._batches: list[pa.RecordBatch] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None

    def __len__(self) -> int:
        return len(self.row_of)

    def append(self, product: Product) -> None:
        self.row_of[product.product_id] = len(self.row_of)
        self.images += len(product.images)
        self.by_split[product.split] = self.by_split.get(product.split, 0) + 1
        self._rows.append(_product_row(product))
        self._buffered += 1
        if len(self._rows) >= min(self.BATCH, self.row_group):
            self._batch()
        if self._buffered >= self.row_group:
            self._flush()

    def _batch(self) -> None:
        if self._rows:
            self._batches.append(pa.RecordBatch.from_pylist(self._rows, schema=PRODUCTS_SCHEMA))
            self._rows = []

    def _flush(self) -> None:
        self._batch()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, PRODUCTS_SCHEMA, **WRITE_OPTIONS)
        # One chunk per row group: the same bytes as writing the rows in one table.
        table = pa.Table.from_batches(self._batches, schema=PRODUCTS_SCHEMA).combine_chunks()
        self._writer.write_table(table)
        self._batches, self._buffered = [], 0

    def close(self) -> None:
        """Writes what is left (an empty catalog gets an empty table)."""
        if self._buffered or self._writer is None:
            self._flush()
        self.abandon()

    def abandon(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class CatalogWriter:
    """Builds a catalog in a staging directory; ``commit`` checks it and swaps it in atomically."""

    def __init__(self, root: Path, schema: AttributeSchema, *, source: str,
                 image_limits: ImageLimits = ImageLimits()):
        self.root = Path(root).resolve()
        self.schema = schema
        self.source = source
        self.limits = image_limits
        self.errors: list[RecordError] = []
        self.triplets: list[Triplet] = []
        self.outfits: list[Outfit] = []
        self.fitb: list[FitbQuestion] = []
        self.compatibility: list[CompatibilityOutfit] = []
        self.staging = self.root.parent / f".{self.root.name}.staging-{os.getpid()}"
        self.products = _ProductTable(self.staging / TABLE_FILES["products"])

    def __enter__(self) -> "CatalogWriter":
        if self.root.exists() and any(self.root.iterdir()) and not (self.root / "catalog.json").exists():
            raise FileExistsError(f"{self.root} exists and is not a catalog; refusing to replace it")
        self.root.parent.mkdir(parents=True, exist_ok=True)
        if self.staging.exists():
            shutil.rmtree(self.staging)
        (self.staging / "images").mkdir(parents=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.products.abandon()
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)

    # --- adding records ------------------------------------------------------------------------
    def reject(self, record: str, field_name: str, message: str) -> None:
        self.errors.append(RecordError(record, field_name, message))

    def add_image_bytes(self, product_id: str, index: int, view: str, data: bytes, *, record: str,
                        checked: tuple[str | None, str] | None = None) -> ImageView | None:
        """Checks and stores an encoded image; returns None (and records the error) if it is bad.

        ``checked``: the result of ``check_image_bytes(data, limits)`` already computed where the bytes
        were made (a worker process), so the decode runs in parallel rather than here.
        """
        problem, ext = checked if checked is not None else check_image_bytes(data, self.limits)
        if problem:
            self.reject(record, f"images[{index}]", problem)
            return None
        rel = image_relpath(product_id, index, view, ext)
        target = self.staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return ImageView(path=rel, view=view)

    def add_image_file(self, product_id: str, index: int, view: str, path: Path, *, record: str) -> ImageView | None:
        path = Path(path)
        if not path.is_file():
            self.reject(record, f"images[{index}]", f"image file not found: {path}")
            return None
        if path.stat().st_size > self.limits.max_bytes:
            self.reject(record, f"images[{index}]",
                        f"image {path} is {path.stat().st_size} bytes, over the limit of {self.limits.max_bytes}")
            return None
        return self.add_image_bytes(product_id, index, view, path.read_bytes(), record=record)

    def _validated(self, model, record: str, fields: dict[str, Any]):
        """The record as ``model``, or None with each field's problem recorded."""
        try:
            return model(**fields)
        except ValidationError as exc:
            for err in exc.errors():
                self.reject(record, ".".join(str(p) for p in err["loc"]), err["msg"])
            return None

    def _add(self, store: list, model, record: str, fields: dict[str, Any]):
        item = self._validated(model, record, fields)
        if item is not None:
            store.append(item)
        return item

    def add_report(self, name: str, text: str) -> Path:
        """A plain-text file beside the tables (what a conversion left out, and why); committed with them."""
        own = {*TABLE_FILES.values(), *OPTIONAL_TABLE_FILES.values(), "schema.json", "catalog.json"}
        if Path(name).name != name or name in own:
            raise ValueError(f"a report is a plain file name other than the catalog's own, got {name!r}")
        path = self.staging / name
        path.write_text(text)
        return path

    def add_product(self, record: str, **fields: Any) -> Product | None:
        product = self._validated(Product, record, fields)
        if product is not None and self._check_product(product):
            self.products.append(product)
        return product

    def add_triplet(self, record: str, **fields: Any) -> Triplet | None:
        return self._add(self.triplets, Triplet, record, fields)

    def add_outfit(self, record: str, **fields: Any) -> Outfit | None:
        return self._add(self.outfits, Outfit, record, fields)

    def add_fitb_question(self, record: str, **fields: Any) -> FitbQuestion | None:
        return self._add(self.fitb, FitbQuestion, record, fields)

    def add_compatibility(self, record: str, **fields: Any) -> CompatibilityOutfit | None:
        return self._add(self.compatibility, CompatibilityOutfit, record, fields)

    # --- checking and committing ----------------------------------------------------------------
    def _check_product(self, product: Product) -> bool:
        """Checks a product against the schema and the ids before it; False (errors recorded) if it is bad."""
        rec, before = f"product {product.product_id!r}", len(self.errors)
        if product.product_id in self.products.row_of:
            self.reject(rec, "product_id", f"duplicate id (rows {self.products.row_of[product.product_id]} and "
                                           f"{len(self.products)})")
        category = self.schema.categories.get(product.category)
        if category is None:
            self.reject(rec, "category", f"unknown category {product.category!r}")
        elif product.subcategory not in category.subcategories:
            self.reject(rec, "subcategory", f"{product.subcategory!r} is not a subcategory of {product.category!r}")
        if category is not None:
            for attr, value in product.attributes.items():
                problem = self.schema.check_attribute(product.category, attr, value)
                if problem:
                    self.reject(rec, f"attributes.{attr}", problem)
        return len(self.errors) == before

    def _check_references(self) -> None:
        ids = self.products.row_of
        for triplet in self.triplets:
            for name in ("reference_id", "target_id"):
                if getattr(triplet, name) not in ids:
                    self.reject(f"triplet {triplet.triplet_id!r}", name,
                                f"product {getattr(triplet, name)!r} is not in the catalog")
        for outfit in self.outfits:
            for k, pid in enumerate(outfit.product_ids):
                if pid not in ids:
                    self.reject(f"outfit {outfit.outfit_id!r}", f"product_ids[{k}]",
                                f"product {pid!r} is not in the catalog")
        for question in self.fitb:
            for name in ("product_ids", "candidates"):
                for k, pid in enumerate(getattr(question, name)):
                    if pid not in ids:
                        self.reject(f"fitb question {question.question_id!r}", f"{name}[{k}]",
                                    f"product {pid!r} is not in the catalog")
        for outfit in self.compatibility:
            for k, pid in enumerate(outfit.product_ids):
                if pid not in ids:
                    self.reject(f"compatibility outfit {outfit.outfit_id!r}", f"product_ids[{k}]",
                                f"product {pid!r} is not in the catalog")
        for kind, records, key in (("triplet", self.triplets, "triplet_id"), ("outfit", self.outfits, "outfit_id"),
                                   ("fitb question", self.fitb, "question_id"),
                                   ("compatibility outfit", self.compatibility, "outfit_id")):
            seen_ids: set[str] = set()
            for r in records:
                rid = getattr(r, key)
                if rid in seen_ids:
                    self.reject(f"{kind} {rid!r}", key, "duplicate id")
                seen_ids.add(rid)

    def commit(self, extra_manifest: dict[str, Any] | None = None) -> Path:
        self._check_references()
        if self.errors:
            raise CatalogError(self.errors, context=f"catalog {self.root}")
        self.products.close()
        _write_table([t.model_dump(mode="json") for t in self.triplets], TRIPLETS_SCHEMA,
                     self.staging / TABLE_FILES["triplets"])
        _write_table([o.model_dump(mode="json") for o in self.outfits], OUTFITS_SCHEMA,
                     self.staging / TABLE_FILES["outfits"])
        optional = {"fitb": self.fitb, "compatibility": self.compatibility}
        for name, records in optional.items():
            if records:
                _write_table([r.model_dump(mode="json") for r in records], OPTIONAL_SCHEMAS[name],
                             self.staging / OPTIONAL_TABLE_FILES[name])
        (self.staging / "schema.json").write_text(_json_dump(self.schema.model_dump(mode="json")))
        manifest = {
            "format_version": CATALOG_FORMAT_VERSION,
            "source": self.source,
            "counts": {
                "products": len(self.products),
                "images": self.products.images,
                "triplets": len(self.triplets),
                "outfits": len(self.outfits),
                "by_split": dict(self.products.by_split),
                **{name: len(records) for name, records in optional.items() if records},
            },
            **(extra_manifest or {}),
        }
        (self.staging / "catalog.json").write_text(_json_dump(manifest))
        _swap_in(self.staging, self.root)
        return self.root


def _product_row(product: Product) -> dict[str, Any]:
    row = product.model_dump(mode="json")
    row["attributes"] = sorted(product.attributes.items())
    return row


def _swap_in(staging: Path, root: Path) -> None:
    old = root.parent / f".{root.name}.old-{os.getpid()}"
    had_old = root.exists()
    if had_old:
        os.replace(root, old)
    try:
        os.replace(staging, root)
    except OSError:
        if had_old:
            os.replace(old, root)
        raise
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


# --- reading ---------------------------------------------------------------------------------------
@dataclass
class Catalog:
    root: Path
    schema: AttributeSchema
    manifest: dict[str, Any]
    tables: dict[str, pa.Table] = field(repr=False)

    @property
    def products(self) -> pa.Table:
        return self.tables["products"]

    def iter_products(self) -> Iterator[Product]:
        for row in self.products.to_pylist():
            row["attributes"] = dict(row["attributes"] or [])
            yield Product.model_validate(row)

    def iter_triplets(self) -> Iterator[Triplet]:
        for row in self.tables["triplets"].to_pylist():
            yield Triplet.model_validate(row)

    def iter_outfits(self) -> Iterator[Outfit]:
        for row in self.tables["outfits"].to_pylist():
            yield Outfit.model_validate(row)

    def iter_fitb(self) -> Iterator[FitbQuestion]:
        for row in self.tables["fitb"].to_pylist():
            yield FitbQuestion.model_validate(row)

    def iter_compatibility(self) -> Iterator[CompatibilityOutfit]:
        for row in self.tables["compatibility"].to_pylist():
            yield CompatibilityOutfit.model_validate(row)


class CatalogNotFound(FileNotFoundError):
    pass


def read_catalog(root: Path | str) -> Catalog:
    root = Path(root).resolve()
    missing = [name for name in ("catalog.json", "schema.json", *TABLE_FILES.values()) if not (root / name).exists()]
    if missing:
        raise CatalogNotFound(f"{root} is not a catalog: missing {', '.join(missing)} "
                              "(create one with `fashionvlp data synth` or `fashionvlp data convert …`)")
    manifest = json.loads((root / "catalog.json").read_text())
    if manifest.get("format_version") != CATALOG_FORMAT_VERSION:
        raise CatalogError([RecordError("catalog.json", "format_version",
                                        f"expected {CATALOG_FORMAT_VERSION}, got {manifest.get('format_version')!r}")])
    schema = AttributeSchema.model_validate_json((root / "schema.json").read_text())
    tables = {name: pq.read_table(root / fname) for name, fname in TABLE_FILES.items()}
    for name, fname in OPTIONAL_TABLE_FILES.items():
        tables[name] = pq.read_table(root / fname) if (root / fname).exists() else OPTIONAL_SCHEMAS[name].empty_table()
    return Catalog(root=root, schema=schema, manifest=manifest, tables=tables)
