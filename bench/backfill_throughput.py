"""Attribute backfill throughput with 1 and 2 Dask workers.

    python bench/backfill_throughput.py --bundle derived/export/fashionvil [--shards 8]

Runs flows/backfill.py twice on the catalog (default: the embedded one) with the bundle directory as the
model, each time from scratch (fresh shard and output directories under a temporary folder, so nothing is
skipped), on a local Dask cluster of 1 and then 2 worker processes. The local workers split the cores
(ONNX Runtime threads = cores / workers). items/s = products whose missing attributes were predicted,
divided by the wall time of the sharded phase (cluster start-up included); also without start-up. Prints a table and writes
bench/results/backfill.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--catalog", type=Path, default=REPO / "data")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "backfill.json")
    args = ap.parse_args()

    sys.path.insert(0, str(REPO / "flows"))
    from backfill import BackfillParameters, backfill

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            overrides = [f"paths.catalog={args.catalog.resolve()}", f"paths.derived={tmp}/derived-{workers}",
                         f"backfill.model={args.bundle.resolve()}", f"backfill.out={tmp}/out-{workers}",
                         f"backfill.shards={args.shards}", f"backfill.workers={workers}",
                         f"tracking.store={tmp}/mlflow.db", f"tracking.artifact_root={tmp}/artifacts"]
            out = backfill(BackfillParameters(overrides=overrides, run_name=f"bench-backfill-{workers}"))
            results[workers] = {"products": out["products_predicted"], "seconds": out["seconds"],
                                "items_per_s": out["products_predicted"] / out["seconds"],
                                "predictions": out["manifest"]["counts"]["predicted"],
                                "filled": out["manifest"]["counts"]["filled"],
                                "shard_seconds": sorted(round(s["seconds"], 2) for s in out["shards"])}
            # Shard compute only (no cluster start-up): products / (summed shard time spread over the workers).
            results[workers]["compute_items_per_s"] = out["products_predicted"] / (
                sum(s["seconds"] for s in out["shards"]) / workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"bundle": str(args.bundle), "catalog": str(args.catalog), "shards": args.shards,
              "results": results, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nbackfill of {args.catalog} with {args.bundle}, {args.shards} shards, local Dask cluster")
    print(f"{'workers':>8}{'products':>10}{'seconds':>9}{'items/s':>9}{'compute items/s':>17}  predictions  filled")
    for workers, r in results.items():
        print(f"{workers:>8}{r['products']:>10}{r['seconds']:>9.1f}{r['items_per_s']:>9.1f}"
              f"{r['compute_items_per_s']:>17.1f}  {r['predictions']:>11}  {r['filled']:>6}")
    print("items/s: wall time of the sharded phase incl. Dask cluster start-up; compute: shard time only")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
