"""FashionGen conversion speed and memory: views/s and peak RSS on generated files in the release's layout.

    python bench/convert_fashiongen.py [--rows 10000 50000] [--workers 2] [--keep DIR]
                                       [--out bench/results/convert_fashiongen.json]

For each row count it writes a FashionGen-layout h5 (256×256 uint8 images, gzip-compressed per row as the
release's loader reads them, 4 views per product, latin-1 strings), converts it with
``fashionvlp data convert fashiongen`` in a child process, and samples the resident memory of that process
and its encoding workers every 0.1 s. Peak RSS that does not grow with the row count is the point: rows are
read in chunks and products are written when their last view has been read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VIEWS_PER_PRODUCT = 4
SIZE = 256
COLOURS = [(28, 28, 31), (200, 32, 36), (42, 92, 192), (42, 142, 72), (240, 130, 32), (244, 244, 242)]


def _image(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A light studio background and a garment-like ellipse of one colour with stripes: compresses like a photo."""
    image = np.full((SIZE, SIZE, 3), 236, dtype=np.uint8)
    cy, cx, ry, rx = rng.uniform(100, 156), rng.uniform(100, 156), rng.uniform(60, 110), rng.uniform(40, 90)
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    colour = np.array(COLOURS[rng.integers(len(COLOURS))], dtype=np.uint8)
    image[inside] = colour
    stripes = inside & ((yy // rng.integers(6, 20)) % 2 == 0)
    image[stripes] = 255 - colour
    return image


def write_h5(path: Path, rows: int, seed: int = 0) -> None:
    import h5py

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    products = (rows + VIEWS_PER_PRODUCT - 1) // VIEWS_PER_PRODUCT
    ids = np.repeat(np.arange(products), VIEWS_PER_PRODUCT)[:rows]
    with h5py.File(path, "w") as f:
        images = f.create_dataset("input_image", (rows, SIZE, SIZE, 3), dtype=np.uint8,
                                  chunks=(1, SIZE, SIZE, 3), compression="gzip", compression_opts=1)
        for start in range(0, rows, 512):
            stop = min(start + 512, rows)
            images[start:stop] = np.stack([_image(rng, yy, xx) for _ in range(stop - start)])
        f.create_dataset("input_productID", data=ids.reshape(-1, 1).astype(np.int64))
        names = [f"Crêpe striped dress {pid}".encode("latin-1") for pid in ids]
        f.create_dataset("input_name", data=np.array(names, dtype="S64").reshape(-1, 1))
        f.create_dataset("input_description", data=np.array(
            [b"A navy v-neck dress in cr\xeape de chine, long sleeves."] * rows, dtype="S128").reshape(-1, 1))
        f.create_dataset("input_category", data=np.array([b"DRESSES"] * rows, dtype="S32").reshape(-1, 1))
        f.create_dataset("input_subcategory", data=np.array([b"SHORT DRESSES"] * rows, dtype="S32").reshape(-1, 1))
        poses = [f"id_gridfs_{k % VIEWS_PER_PRODUCT + 1}".encode() for k in range(rows)]
        f.create_dataset("input_pose", data=np.array(poses, dtype="S16").reshape(-1, 1))


def convert_measured(h5: Path, out: Path, workers: int) -> tuple[float, float, float]:
    """(seconds, peak RSS of the converting process in MiB, peak RSS of it and its workers together in MiB)."""
    from measure import run_measured

    run = run_measured([sys.executable, "-m", "fashionvlp.cli", "data", "convert", "fashiongen", "--train", str(h5),
                        "--out", str(out), "--workers", str(workers)])
    return run.seconds, run.peak_rss_mib, run.peak_rss_tree_mib


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep", type=Path, default=None, help="write the files here instead of a temporary dir")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "convert_fashiongen.json")
    args = ap.parse_args()
    rows_out = []
    base = args.keep or Path(tempfile.mkdtemp(prefix="fashiongen-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"FashionGen conversion, generated release-layout h5 ({SIZE}×{SIZE}, {VIEWS_PER_PRODUCT} views/product), "
          f"{args.workers} encoding process(es), {os.cpu_count()} cores; peak RSS sampled every 0.1 s")
    for rows in args.rows:
        h5 = base / f"fashiongen_{rows}.h5"
        if not h5.exists():
            started = time.perf_counter()
            write_h5(h5, rows)
            print(f"  wrote {h5.name} ({h5.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - started:.0f} s")
        seconds, main_mib, tree_mib = convert_measured(h5, base / f"catalog_{rows}", args.workers)
        print(f"  {rows:>7,} views: {seconds:6.1f} s, {rows / seconds:6.0f} views/s; peak RSS converter "
              f"{main_mib:.0f} MiB, with its workers {tree_mib:.0f} MiB", flush=True)
        rows_out.append({"views": rows, "seconds": seconds, "views_per_s": rows / seconds,
                         "peak_rss_converter_mib": main_mib, "peak_rss_with_workers_mib": tree_mib})
        if args.keep is None:
            h5.unlink()
            subprocess.run(["rm", "-rf", str(base / f"catalog_{rows}")], check=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"workers": args.workers, "cores": os.cpu_count(), "size": SIZE,
                                    "views_per_product": VIEWS_PER_PRODUCT, "rows": rows_out}, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
