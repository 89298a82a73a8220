"""Catalog validation with Great Expectations (GX Core 1.x).

The catalog is flattened into five frames (products, attribute values, image files, triplets, outfit
items); each gets an expectation suite. The image frame is built by opening every file, so "exists,
decodes, sane size" become plain column expectations. Validation only reads the catalog. The report
(JSON + Markdown) lists each failed expectation with the ids of the offending rows.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from fashionvlp.config import ValidationConfig
from fashionvlp.data.catalog_io import Catalog, read_catalog
from fashionvlp.data.executors import InProcess, chunked, data_executor
from fashionvlp.data.schema import SPLITS

log = logging.getLogger(__name__)


class ValidationFailed(RuntimeError):
    def __init__(self, summary: str, report: Path):
        self.report = report
        super().__init__(f"{summary}\nFull report: {report}")


@dataclass(frozen=True)
class ValidationResult:
    success: bool
    report_json: Path
    report_md: Path
    failures: list[dict[str, Any]]
    counts: dict[str, int]


IMAGES_PER_TASK = 256


def _image_rows(root: Path, images: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """One task's share of the image frame: (product id, path, view) → the row of checks."""
    return [_image_row(root, *image) for image in images]


def _image_row(root: Path, product_id: str, path: str, view: str) -> dict[str, Any]:
    full = root / path
    row = {"product_id": product_id, "path": path, "view": view, "exists": full.is_file(), "decodes": False,
           "width": 0, "height": 0, "file_bytes": 0}
    if row["exists"]:
        row["file_bytes"] = full.stat().st_size
        try:
            with Image.open(full) as img:
                row["width"], row["height"] = img.size
                img.load()
            row["decodes"] = True
        except Exception:  # any decoder failure is a data problem, reported per row
            row["decodes"] = False
    return row


def catalog_frames(catalog: Catalog, executor=None) -> dict[str, pd.DataFrame]:
    """``executor`` (``data/executors.py``) decodes the images, a task per ``IMAGES_PER_TASK``; default: here."""
    products = catalog.products.select(["product_id", "title", "description", "category", "subcategory", "split"])
    pf = products.to_pandas()
    pf["category_subcategory"] = pf["category"] + " / " + pf["subcategory"]
    attr_rows, image_rows, images = [], [], []
    for row in catalog.products.select(["product_id", "category", "attributes", "images"]).to_pylist():
        for attr, value in row["attributes"] or []:
            attr_rows.append({"product_id": row["product_id"], "attribute": attr, "value": value,
                              "category_attribute_value": f"{row['category']} | {attr} | {value}"})
        if not row["images"]:
            image_rows.append({"product_id": row["product_id"], "path": "", "view": "", "exists": False,
                               "decodes": False, "width": 0, "height": 0, "file_bytes": 0})
        for img in row["images"] or []:
            images.append((row["product_id"], img["path"], img["view"]))
    chunks = chunked(images, IMAGES_PER_TASK)
    for rows in (executor or InProcess()).map(_image_rows, [catalog.root] * len(chunks), chunks):
        image_rows.extend(rows)
    triplets = catalog.tables["triplets"].to_pandas()
    if len(triplets):
        triplets["n_captions"] = triplets["captions"].map(len)
    outfit_rows = [{"outfit_id": o["outfit_id"], "position": k, "product_id": pid}
                   for o in catalog.tables["outfits"].to_pylist() for k, pid in enumerate(o["product_ids"])]
    return {
        "products": pf,
        "attributes": pd.DataFrame(attr_rows, columns=["product_id", "attribute", "value", "category_attribute_value"]),
        "images": pd.DataFrame(image_rows),
        "triplets": triplets,
        "outfit_items": pd.DataFrame(outfit_rows, columns=["outfit_id", "position", "product_id"]),
    }


def build_suites(catalog: Catalog, cfg: ValidationConfig) -> dict[str, tuple[list[str], list[Any]]]:
    """Table → (id columns that name a row in the report, expectations)."""
    import great_expectations.expectations as gxe

    schema = catalog.schema
    pairs = sorted(f"{c} / {s}" for c, d in schema.categories.items() for s in d.subcategories)
    allowed_values = sorted(f"{c} | {a} | {v}" for c, d in schema.categories.items() for a in d.attributes
                            for v in schema.attributes[a].values)
    product_ids = catalog.products.column("product_id").to_pylist()
    return {
        "products": (["product_id"], [
            gxe.ExpectColumnValuesToBeUnique(column="product_id"),
            *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in
              ("product_id", "title", "description", "category", "subcategory", "split")],
            gxe.ExpectColumnValueLengthsToBeBetween(column="title", min_value=cfg.title_length[0],
                                                    max_value=cfg.title_length[1]),
            gxe.ExpectColumnValueLengthsToBeBetween(column="description", min_value=cfg.description_length[0],
                                                    max_value=cfg.description_length[1]),
            gxe.ExpectColumnValuesToBeInSet(column="category", value_set=sorted(schema.categories)),
            gxe.ExpectColumnValuesToBeInSet(column="category_subcategory", value_set=pairs),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        ]),
        "attributes": (["product_id", "attribute"], [
            gxe.ExpectColumnValuesToBeInSet(column="category_attribute_value", value_set=allowed_values),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["product_id", "attribute"]),
        ]),
        "images": (["product_id", "path"], [
            gxe.ExpectColumnValuesToBeInSet(column="exists", value_set=[True]),
            gxe.ExpectColumnValuesToBeInSet(column="decodes", value_set=[True]),
            gxe.ExpectColumnValuesToBeBetween(column="width", min_value=cfg.image_min_side, max_value=cfg.image_max_side),
            gxe.ExpectColumnValuesToBeBetween(column="height", min_value=cfg.image_min_side, max_value=cfg.image_max_side),
            gxe.ExpectColumnValuesToBeBetween(column="file_bytes", min_value=1, max_value=cfg.image_max_bytes),
            gxe.ExpectColumnValuesToBeUnique(column="path"),
        ]),
        "triplets": (["triplet_id"], [
            gxe.ExpectColumnValuesToBeUnique(column="triplet_id"),
            gxe.ExpectColumnValuesToBeInSet(column="reference_id", value_set=product_ids),
            gxe.ExpectColumnValuesToBeInSet(column="target_id", value_set=product_ids),
            gxe.ExpectColumnValuesToBeInSet(column="n_captions", value_set=[2]),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        ]),
        "outfit_items": (["outfit_id", "position"], [
            gxe.ExpectColumnValuesToBeInSet(column="product_id", value_set=product_ids),
        ]),
    }


def _run_gx(frames: dict[str, pd.DataFrame], suites: dict[str, tuple[list[str], list[Any]]],
            max_rows: int) -> list[dict[str, Any]]:
    import great_expectations as gx

    _follow_our_log_level("great_expectations")

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_pandas("catalog")
    failures: list[dict[str, Any]] = []
    for table, (id_columns, expectations) in suites.items():
        frame = frames[table]
        if frame.empty:
            continue
        batch = source.add_dataframe_asset(name=table).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=table))
        for expectation in expectations:
            suite.add_expectation(expectation)
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=table, data=batch, suite=suite))
        result = definition.run(batch_parameters={"dataframe": frame},
                                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": id_columns})
        for r in result.results:
            if r.success:
                continue
            cfg = r.expectation_config
            res = r.result or {}
            rows = res.get("unexpected_index_list") or []
            failures.append({
                "table": table,
                "expectation": cfg.type,
                "column": cfg.kwargs.get("column") or cfg.kwargs.get("column_list"),
                "unexpected_count": res.get("unexpected_count", len(rows)),
                "rows": [{k: _plain(v) for k, v in row.items()} for row in rows[:max_rows]],
                "exception": (r.exception_info or {}).get("exception_message") if r.exception_info else None,
            })
    return failures


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value


def _markdown(catalog_root: Path, failures: list[dict[str, Any]], counts: dict[str, int]) -> str:
    lines = [f"# Catalog validation: {'PASSED' if not failures else 'FAILED'}", "", f"Catalog: `{catalog_root}`", "",
             "| table | rows |", "|---|---|"]
    lines += [f"| {t} | {n} |" for t, n in counts.items()]
    for f in failures:
        lines += ["", f"## {f['table']}: `{f['expectation']}` on `{f['column']}` — {f['unexpected_count']} row(s)", ""]
        if f.get("exception"):
            lines.append(f"Error: {f['exception']}")
        for row in f["rows"]:
            lines.append("- " + ", ".join(f"{k}={v!r}" for k, v in row.items()))
        if f["unexpected_count"] > len(f["rows"]):
            lines.append(f"- … {f['unexpected_count'] - len(f['rows'])} more")
    return "\n".join(lines) + "\n"


def validate_catalog(catalog_dir: Path, report_dir: Path, cfg: ValidationConfig) -> ValidationResult:
    """Runs every expectation and writes report.json / report.md to ``report_dir``. Never modifies the catalog."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    catalog = read_catalog(catalog_dir)
    with data_executor(cfg.workers, cfg.dask_address) as executor:
        frames = catalog_frames(catalog, executor)
    failures = _run_gx(frames, build_suites(catalog, cfg), cfg.report_max_rows)
    counts = {name: int(len(frame)) for name, frame in frames.items()}
    report_dir.mkdir(parents=True, exist_ok=True)
    report_json, report_md = report_dir / "report.json", report_dir / "report.md"
    payload = {"success": not failures, "catalog": str(catalog.root), "counts": counts, "failures": failures}
    tmp = report_json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, report_json)
    report_md.write_text(_markdown(catalog.root, failures, counts))
    # A small metrics file for `dvc metrics show`.
    (report_dir / "summary.json").write_text(json.dumps(
        {"success": int(not failures), "failed_expectations": len(failures),
         "products": counts["products"], "images": counts["images"]}, indent=2, sort_keys=True) + "\n")
    return ValidationResult(success=not failures, report_json=report_json, report_md=report_md, failures=failures,
                            counts=counts)


def summarize(result: ValidationResult, limit: int = 8) -> str:
    if result.success:
        return (f"catalog valid: {result.counts['products']} products, {result.counts['images']} images "
                f"(report: {result.report_md})")
    lines = [f"catalog validation FAILED: {len(result.failures)} expectation(s) not met"]
    for f in result.failures[:limit]:
        ids = "; ".join(", ".join(f"{k}={v}" for k, v in row.items()) for row in f["rows"][:3])
        lines.append(f"  - {f['table']}.{f['column']}: {f['expectation']} — {f['unexpected_count']} row(s), e.g. {ids}")
    return "\n".join(lines)


def _follow_our_log_level(package: str) -> None:
    """A library that pins INFO on its own loggers (GE does on several) prints through a WARNING root: set to
    NOTSET they follow the root's level, so their INFO shows with -v only."""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith(package) and isinstance(logger, logging.Logger) and logger.level == logging.INFO:
            logger.setLevel(logging.NOTSET)
