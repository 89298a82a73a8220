"""Attribute backfill (KG-FLIP §5's deployment): fill the attributes a catalog is missing with a served
bundle's attribute graph, keeping only predictions that clear the attribute's 90%-precision threshold.

The work is split into shards, each written once (Parquet, then a ``.done`` marker that names the model
version and catalog it came from), so an interrupted run resumes by skipping finished shards. ``merge``
writes the new dataset atomically:

- ``products.parquet``: the catalog's products with accepted predictions filled in;
- ``attribute_predictions.parquet``: every prediction (product, attribute, value, confidence, threshold,
  accepted, model version), accepted or not;
- ``schema.json`` and ``backfill.json`` (source catalog and its DVC hash, model, counts, policy).

Images are not copied: the dataset enriches the source catalog named in ``backfill.json``. Nothing here
imports torch; the shards run ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fashionvlp.data.catalog_io import read_catalog

PREDICTIONS_SCHEMA = pa.schema([("product_id", pa.string()), ("attribute", pa.string()), ("value", pa.string()),
                                ("confidence", pa.float32()), ("threshold", pa.float32()), ("accepted", pa.bool_()),
                                ("model_version", pa.string())])
_BUNDLES: dict = {}


@dataclass(frozen=True)
class ShardSpec:
    index: int
    count: int

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}-of-{self.count:05d}"


def catalog_key(catalog_dir: Path) -> str:
    """A cheap identity of the catalog's products table (shards of another catalog are not reused)."""
    digest = hashlib.sha256((Path(catalog_dir) / "products.parquet").read_bytes())
    return digest.hexdigest()[:16]


def missing_attributes(schema, product) -> list[str]:
    return [a for a in schema.attributes_for(product.category) if a not in product.attributes]


def shard_products(catalog, spec: ShardSpec) -> list:
    """The shard's products that miss at least one applicable attribute (sorted ids, round-robin)."""
    needing = sorted((p for p in catalog.iter_products() if missing_attributes(catalog.schema, p)),
                     key=lambda p: p.product_id)
    return needing[spec.index::spec.count]


def _bundle(path: Path, threads: int):
    """One ONNX Runtime bundle per worker process and path (a Dask worker runs many shards). Local workers
    share the machine's cores (``threads`` each, CPU); a remote worker (``threads`` 0) takes its GPU if it
    has one."""
    from fashionvlp.serving.bundle import Bundle

    key = (str(path), threads)
    if key not in _BUNDLES:
        providers = ["CPUExecutionProvider"] if threads else ["CUDAExecutionProvider", "CPUExecutionProvider"]
        _BUNDLES[key] = Bundle(Path(path), providers, threads)
    return _BUNDLES[key]


def run_shard(bundle_dir: Path, catalog_dir: Path, spec: ShardSpec, work_dir: Path, model_version: str,
              batch_size: int = 32, threads: int = 0) -> dict:
    """Predicts the shard's missing attributes into ``work_dir/<shard>.parquet``; skipped when a marker from
    the same model version and catalog exists."""
    work_dir = Path(work_dir)
    marker = work_dir / f"{spec.name}.done"
    key = {"model_version": model_version, "catalog": catalog_key(catalog_dir), "shards": spec.count}
    if marker.is_file():
        done = json.loads(marker.read_text())
        if {k: done.get(k) for k in key} == key:
            return {**done, "skipped": True}
    started = time.perf_counter()
    catalog = read_catalog(catalog_dir)
    products = shard_products(catalog, spec)
    bundle = _bundle(Path(bundle_dir), threads)
    rows = []
    for start in range(0, len(products), batch_size):
        chunk = products[start:start + batch_size]
        items = [(bundle.file_pixels(catalog.root / p.images[0].path, f"{p.product_id}.images[0]"), p.text)
                 for p in chunk]
        for product, probabilities in zip(chunk, bundle.attribute_probabilities(items)):
            wanted = set(missing_attributes(catalog.schema, product))
            for d in bundle.attribute_decisions(probabilities, product.category):
                if d["attribute"] in wanted:
                    rows.append({"product_id": product.product_id, "attribute": d["attribute"], "value": d["value"],
                                 "confidence": d["confidence"],
                                 "threshold": d["threshold"] if d["threshold"] is not None else float("inf"),
                                 "accepted": d["accepted"], "model_version": model_version})
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = work_dir / f".{spec.name}.parquet.tmp-{os.getpid()}"
    pq.write_table(pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA), tmp)
    os.replace(tmp, work_dir / f"{spec.name}.parquet")
    result = {**key, "shard": spec.name, "products": len(products), "predictions": len(rows),
              "accepted": sum(r["accepted"] for r in rows), "seconds": time.perf_counter() - started,
              "provider": bundle.active_provider}
    marker.write_text(json.dumps(result))         # last: a shard without its marker is redone
    return {**result, "skipped": False}


def merge(catalog_dir: Path, work_dir: Path, out: Path, shards: int, model: dict) -> dict:
    """Joins the shards into the new dataset at ``out`` (staged, then swapped in)."""
    from fashionvlp.data.versioning import dvc_file_for, pinned_md5

    catalog = read_catalog(catalog_dir)
    specs = [ShardSpec(i, shards) for i in range(shards)]
    unfinished = [s.name for s in specs if not (Path(work_dir) / f"{s.name}.done").is_file()]
    if unfinished:
        raise FileNotFoundError(f"backfill shards not finished in {work_dir}: {unfinished}")
    predictions = pa.concat_tables([pq.read_table(Path(work_dir) / f"{s.name}.parquet") for s in specs])
    predictions = predictions.sort_by([("product_id", "ascending"), ("attribute", "ascending")])
    accepted: dict[str, dict[str, str]] = {}
    for row in predictions.filter(predictions["accepted"]).to_pylist():
        accepted.setdefault(row["product_id"], {})[row["attribute"]] = row["value"]
    products = catalog.products.to_pylist()
    filled = 0
    for row in products:
        extra = accepted.get(row["product_id"], {})
        if extra:
            attrs = dict(row["attributes"] or []) | extra
            filled += len(extra)
            row["attributes"] = sorted(attrs.items())
    out = Path(out)
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        pq.write_table(pa.Table.from_pylist(products, schema=catalog.products.schema), staging / "products.parquet")
        pq.write_table(predictions, staging / "attribute_predictions.parquet")
        shutil.copy2(catalog.root / "schema.json", staging / "schema.json")
        dvc_file = dvc_file_for(catalog.root)
        missing_before = sum(len(missing_attributes(catalog.schema, p)) for p in catalog.iter_products())
        manifest = {
            "source_catalog": str(catalog.root), "source_dvc_md5": pinned_md5(dvc_file) if dvc_file else None,
            "source_products_sha256": catalog_key(catalog.root), "model": model,
            "policy": "a prediction fills a missing attribute only when its confidence clears the attribute's "
                      "threshold for 90% precision (calibrated on the validation split at fine-tuning)",
            "counts": {"products": len(products), "missing_before": missing_before,
                       "predicted": predictions.num_rows, "filled": filled,
                       "missing_after": missing_before - filled},
            "shards": shards}
        (staging / "backfill.json").write_text(json.dumps(manifest, indent=2))
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def dvc_track(repo: Path, out: Path) -> str | None:
    """``dvc add`` the dataset when it lies inside the DVC repository ``repo``; returns the .dvc file's path."""
    from fashionvlp.data.versioning import DataVersionError, dvc

    if not (Path(repo) / ".dvc").is_dir() or not Path(out).resolve().is_relative_to(Path(repo).resolve()):
        return None
    result = dvc(["add", "-q", str(Path(out).resolve().relative_to(Path(repo).resolve()))], Path(repo))
    if result.returncode != 0:
        raise DataVersionError(f"dvc add {out} failed: {(result.stderr or result.stdout).strip()}")
    return str(Path(out).parent / f"{Path(out).name}.dvc")
