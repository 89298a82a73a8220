"""FashionGen h5 → catalog. Rows are views; rows sharing ``input_productID`` form one product.

The papers' split: the release's train file is the train split and its validation file the evaluation
(``test``) split; FashionGen has no third file, so ``val_share`` of the train products (seeded, whole
products) become ``val``, which calibration reads. The release stores its strings as latin-1 bytes
("Crêpe" is ``b"Cr\\xeape"``); they are decoded with ``encoding``, latin-1 by default.

Rows are read in chunks (``CHUNK_ROWS``), and each chunk's JPEG encoding and image check run in worker
processes, so memory does not grow with the file and a 260k-view file converts at the workers' pace.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fashionvlp.data.catalog_io import (CatalogError, CatalogWriter, ImageLimits, RecordError, check_image_bytes,
                                        encode_jpeg)
from fashionvlp.data.converters.common import mine_attributes, schema_for
from fashionvlp.data.executors import data_executor
from fashionvlp.progress import progress

REQUIRED = ("input_image", "input_name", "input_description", "input_category", "input_subcategory",
            "input_productID")
OPTIONAL = ("input_composition", "input_pose", "input_gender", "input_season")
TEXT_FIELDS = ("input_name", "input_description", "input_category", "input_subcategory", "input_productID")
ENCODING = "latin-1"
DUPLICATE_POLICIES = ("error", "first")
CHUNK_ROWS = 256


def _text(value, encoding: str = ENCODING) -> str:
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else b""
    if isinstance(value, bytes):
        return value.decode(encoding).strip()
    return str(value).strip()


def _check_layout(h5, path: Path, encoding: str) -> None:
    errors = [RecordError(str(path), name, "required dataset is missing") for name in REQUIRED if name not in h5]
    if not errors:
        n = len(h5["input_image"])
        for name in REQUIRED + tuple(o for o in OPTIONAL if o in h5):
            if len(h5[name]) != n:
                errors.append(RecordError(str(path), name, f"has {len(h5[name])} rows, input_image has {n}"))
        image = h5["input_image"]
        if len(image.shape) != 4 or image.shape[-1] != 3 or image.dtype != np.uint8:
            errors.append(RecordError(str(path), "input_image",
                                      f"expected N×H×W×3 uint8, got shape {image.shape} {image.dtype}"))
        for name in TEXT_FIELDS + tuple(o for o in OPTIONAL if o in h5):
            if name != "input_productID" and h5[name].dtype.kind not in "SOU":
                errors.append(RecordError(str(path), name, f"expected byte strings, got dtype {h5[name].dtype}"))
    if errors:
        raise CatalogError(errors, context=f"FashionGen file {path}")
    try:
        "".encode(encoding)
    except LookupError as exc:
        raise CatalogError([RecordError(str(path), "<encoding>", f"unknown text encoding {encoding!r}")],
                           context="FashionGen") from exc


def _column(h5, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
    return h5[name][start:stop].reshape(-1)


def _encoded(image: np.ndarray, limits: ImageLimits) -> tuple[bytes, tuple[str | None, str]]:
    """A view's JPEG and its check, made in a worker process."""
    data = encode_jpeg(image)
    return data, check_image_bytes(data, limits)


def _plan(handles: dict, files: dict[str, Path], encoding: str, on_duplicate: str):
    """product id → (split, rows of that file), categories, and the ids found in more than one file."""
    groups: dict[str, tuple[str, list[int]]] = {}
    categories: dict[str, list[str]] = {}
    duplicates: dict[str, list[str]] = {}
    for split, h5 in handles.items():
        ids, cats, subs = (_column(h5, n) for n in ("input_productID", "input_category", "input_subcategory"))
        for row, pid in enumerate(ids):
            key = _text(pid, encoding)
            if key not in groups:
                groups[key] = (split, [])
                categories.setdefault(_text(cats[row], encoding), []).append(_text(subs[row], encoding))
            owner = groups[key][0]
            if owner == split:
                groups[key][1].append(row)
            elif split not in duplicates.setdefault(key, [owner]):
                duplicates[key].append(split)
    if duplicates and on_duplicate == "error":
        errors = [RecordError(f"product {pid!r}", "input_productID",
                              "in " + " and ".join(str(files[s]) for s in splits)) for pid, splits in duplicates.items()]
        raise CatalogError(errors, context=f"FashionGen: {len(duplicates)} product id(s) in more than one file "
                                           "(--on-duplicate first keeps each in the first file given)")
    return groups, categories, duplicates


def _val_products(groups: dict, share: float, seed: int) -> set[str]:
    """A seeded ``share`` of the train products, whole products."""
    train = sorted(pid for pid, (split, _) in groups.items() if split == "train")
    count = int(round(share * len(train)))
    return set(np.random.default_rng(seed).permutation(train)[:count].tolist())


def convert_fashiongen(files: dict[str, Path], out: Path, limits: ImageLimits = ImageLimits(), *,
                       encoding: str = ENCODING, on_duplicate: str = "error", val_share: float = 0.0, seed: int = 0,
                       workers: int | None = None, dask_address: str | None = None) -> Path:
    """``files`` maps a split to an h5 file: {"train": …_train.h5, "test": …_validation.h5} is the papers'.

    ``on_duplicate``: ``error`` (a product id in two files names them) or ``first`` (kept in the first file
    given). ``val_share``: the share of train products moved to ``val`` (seeded by ``seed``) when no val file
    is given. ``workers``: encoding processes (default: every core); ``dask_address``: encode on that Dask
    cluster's workers instead (``data/executors.py``).
    """
    import h5py

    if on_duplicate not in DUPLICATE_POLICIES:
        raise ValueError(f"on_duplicate must be one of {DUPLICATE_POLICIES}, got {on_duplicate!r}")
    if not 0.0 <= val_share < 1.0:
        raise ValueError(f"val_share must be in [0, 1), got {val_share}")
    handles = {}
    try:
        for split, path in files.items():
            handles[split] = h5py.File(path, "r")
            _check_layout(handles[split], Path(path), encoding)
        groups, categories, duplicates = _plan(handles, files, encoding, on_duplicate)
        moved = _val_products(groups, val_share, seed) if val_share and "val" not in files else set()
        schema = schema_for(categories)
        total = sum(len(rows) for _, rows in groups.values())
        with CatalogWriter(out, schema, source="fashiongen", image_limits=limits) as writer, \
                data_executor(workers, dask_address) as pool, \
                progress(total, "fashiongen views") as bar:
            for split, h5 in handles.items():
                _convert_file(h5, split, Path(files[split]), groups, moved, schema, writer, pool, limits, encoding, bar)
            extra = {"converted_from": {k: str(v) for k, v in files.items()}, "encoding": encoding,
                     "split_policy": {"train": "the train file" + (f" less {val_share:.0%} of its products (seed "
                                                                   f"{seed}) moved to val" if moved else ""),
                                      "test": "the test (release validation) file" if "test" in files else None},
                     "duplicates": {"policy": on_duplicate, "products": len(duplicates)}}
            return writer.commit(extra)
    except UnicodeDecodeError as exc:
        raise CatalogError([RecordError("FashionGen", "<text>", f"not {encoding}: {exc}")], context="FashionGen") from exc
    finally:
        for h5 in handles.values():
            h5.close()


def _convert_file(h5, split: str, path: Path, groups: dict, moved: set[str], schema, writer: CatalogWriter, pool,
                  limits: ImageLimits, encoding: str, bar) -> None:
    """Streams one file's rows in chunks; a product is written once its last row has been read."""
    last_row = {pid: rows[-1] for pid, (owner, rows) in groups.items() if owner == split}
    pending: dict[str, dict] = {}
    optional = [name for name in ("input_composition", "input_pose") if name in h5]
    for start in range(0, len(h5["input_image"]), CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, len(h5["input_image"]))
        columns = {name: _column(h5, name, start, stop) for name in TEXT_FIELDS + tuple(optional)}
        ids = [_text(v, encoding) for v in columns["input_productID"]]
        keep = [k for k, pid in enumerate(ids) if groups[pid][0] == split]
        images = h5["input_image"][start:stop]
        encoded = pool.map(_encoded, [images[k] for k in keep], [limits] * len(keep))
        for k, (data, checked) in zip(keep, encoded):
            pid, row = ids[k], start + k
            product = pending.setdefault(pid, {"first": row, "views": [], "columns": {
                name: _text(columns[name][k], encoding) for name in columns}})
            index = len(product["views"]) + product.get("rejected", 0)
            pose = _text(columns["input_pose"][k], encoding) if "input_pose" in columns else ""
            view = writer.add_image_bytes(pid, index, pose.lower().replace(" ", "_") or f"view{index}", data,
                                          record=f"product {pid!r} ({path} row {row})", checked=checked)
            if view is None:
                product["rejected"] = product.get("rejected", 0) + 1
            else:
                product["views"].append(view)
            if row == last_row[pid]:
                _add_product(writer, schema, pid, pending.pop(pid), "val" if pid in moved else split, path, row)
        bar.update(stop - start)


def _add_product(writer: CatalogWriter, schema, pid: str, product: dict, split: str, path: Path, last: int) -> None:
    first = product["columns"]
    category = first["input_category"]
    attributes = mine_attributes(schema, category, first["input_name"], first["input_description"],
                                 first.get("input_composition", ""))
    writer.add_product(f"product {pid!r} ({path} rows {product['first']}…{last})", product_id=pid,
                       title=first["input_name"], description=first["input_description"], category=category,
                       subcategory=first["input_subcategory"], attributes=attributes,
                       images=tuple(product["views"]), split=split)
