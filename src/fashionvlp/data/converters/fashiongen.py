"""FashionGen h5 → catalog. Rows are views; rows sharing ``input_productID`` form one product."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fashionvlp.data.catalog_io import CatalogError, CatalogWriter, ImageLimits, RecordError, encode_jpeg
from fashionvlp.data.converters.common import mine_attributes, schema_for

REQUIRED = ("input_image", "input_name", "input_description", "input_category", "input_subcategory",
            "input_productID")
OPTIONAL = ("input_composition", "input_pose", "input_gender", "input_season")


def _text(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else b""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip()
    return str(value).strip()


def _check_layout(h5, path: Path) -> None:
    errors = [RecordError(str(path), name, "required dataset is missing") for name in REQUIRED if name not in h5]
    if not errors:
        n = len(h5["input_image"])
        for name in REQUIRED + tuple(o for o in OPTIONAL if o in h5):
            if len(h5[name]) != n:
                errors.append(RecordError(str(path), name, f"has {len(h5[name])} rows, input_image has {n}"))
        shape = h5["input_image"].shape
        if len(shape) != 4 or shape[-1] != 3:
            errors.append(RecordError(str(path), "input_image", f"expected N×H×W×3 uint8, got shape {shape}"))
    if errors:
        raise CatalogError(errors, context=f"FashionGen file {path}")


def convert_fashiongen(files: dict[str, Path], out: Path, limits: ImageLimits = ImageLimits()) -> Path:
    """``files`` maps a split (train/val/test) to an h5 file, e.g. {"train": …train.h5, "test": …validation.h5}."""
    import h5py

    handles = {}
    try:
        for split, path in files.items():
            handles[split] = h5py.File(path, "r")
            _check_layout(handles[split], Path(path))
        # Pass 1: group views by product and collect the taxonomy.
        groups: dict[str, tuple[str, list[int]]] = {}
        categories: dict[str, list[str]] = {}
        for split, h5 in handles.items():
            ids = h5["input_productID"][:].reshape(-1)
            cats = h5["input_category"][:].reshape(-1)
            subs = h5["input_subcategory"][:].reshape(-1)
            for row, pid in enumerate(ids):
                key = _text(pid)
                if key not in groups:
                    groups[key] = (split, [])
                    categories.setdefault(_text(cats[row]), []).append(_text(subs[row]))
                if groups[key][0] == split:
                    groups[key][1].append(row)
        schema = schema_for(categories)
        with CatalogWriter(out, schema, source="fashiongen", image_limits=limits) as writer:
            for pid, (split, rows) in groups.items():
                h5 = handles[split]
                rec = f"product {pid!r} ({files[split]} rows {rows[0]}…{rows[-1]})"
                first = rows[0]
                category = _text(h5["input_category"][first])
                title = _text(h5["input_name"][first])
                description = _text(h5["input_description"][first])
                views = []
                for k, row in enumerate(rows):
                    pose = _text(h5["input_pose"][row]) if "input_pose" in h5 else ""
                    view = pose.lower().replace(" ", "_") or f"view{k}"
                    image = h5["input_image"][row]
                    if image.dtype != np.uint8:
                        writer.reject(rec, f"images[{k}]", f"input_image dtype is {image.dtype}, expected uint8")
                        continue
                    v = writer.add_image_bytes(pid, k, view, encode_jpeg(image), record=rec)
                    if v is not None:
                        views.append(v)
                composition = _text(h5["input_composition"][first]) if "input_composition" in h5 else ""
                attributes = mine_attributes(schema, category, title, description, composition)
                writer.add_product(rec, product_id=pid, title=title, description=description, category=category,
                                   subcategory=_text(h5["input_subcategory"][first]), attributes=attributes,
                                   images=tuple(views), split=split)
            return writer.commit({"converted_from": {k: str(v) for k, v in files.items()}})
    finally:
        for h5 in handles.values():
            h5.close()
