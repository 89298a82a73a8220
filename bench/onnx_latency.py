"""Encoder latency: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime dynamic int8, at batch 1 and 32.

    python bench/onnx_latency.py --bundle derived/export/fashionvil [--threads 2] [--repeats 20]

The bundle must come from `fashionvlp export --int8`; the PyTorch model is the bundle's retrieval source
(manifest.json). Inputs are real catalog products (first view, title + description) of the evaluation
split. Prints a table and writes bench/results/onnx_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from fashionvlp.env import quiet_offline

quiet_offline()
REPO = Path(__file__).resolve().parent.parent


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, ORT graph set-up)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--catalog", type=Path, default=REPO / "data")
    ap.add_argument("--split", default="test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "onnx_latency.json")
    args = ap.parse_args()

    import onnxruntime as ort

    from fashionvlp.data.catalog_io import read_catalog
    from fashionvlp.evaluation.embed import product_batches
    from fashionvlp.export.graphs import ImageGraph, TextGraph
    from fashionvlp.models.registry import load_pretrained

    torch.set_num_threads(args.threads)
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    model = load_pretrained(Path(manifest["sources"]["retrieval"])).eval()
    cfg = model.model_config
    catalog = read_catalog(args.catalog)
    products = [p for p in catalog.iter_products() if p.split == args.split][:32]

    def session(name: str):
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.log_severity_level = 3
        return ort.InferenceSession(str(args.bundle / name), options, providers=["CPUExecutionProvider"])

    rows = []
    for batch in (1, 32):
        _, pixels, enc = next(product_batches(model, catalog, products[:batch], cfg.image.image_size,
                                              cfg.text.max_length, batch_size=batch))
        feeds = {"image": {"pixels": pixels.numpy()},
                 "text": {"input_ids": enc.input_ids.numpy().astype(np.int64),
                          "attention_mask": enc.attention_mask.numpy().astype(np.int64)}}
        graphs = {"image": ImageGraph(model).eval(), "text": TextGraph(model).eval()}
        for encoder, graph in graphs.items():
            inputs = [torch.from_numpy(feeds[encoder][n]) for n in graph.input_names]
            with torch.no_grad():
                eager = _time(lambda: graph(*inputs), args.repeats)
            fp32, int8 = session(f"{encoder}.onnx"), session(f"{encoder}.int8.onnx")
            ort_fp32 = _time(lambda: fp32.run(None, feeds[encoder]), args.repeats)
            ort_int8 = _time(lambda: int8.run(None, feeds[encoder]), args.repeats)
            rows.append({"encoder": encoder, "batch": batch, "eager_ms": eager, "ort_fp32_ms": ort_fp32,
                         "ort_int8_ms": ort_int8, "ort_fp32_speedup": eager / ort_fp32,
                         "ort_int8_speedup": eager / ort_int8, "int8_vs_fp32": ort_fp32 / ort_int8})
    print(f"{cfg.image.name} {cfg.image.image_size}px + {cfg.text.source} text encoder; {args.threads} threads; "
          f"median of {args.repeats}; CPU provider")
    print(f"{'encoder':8} {'batch':>5} {'eager ms':>9} {'ORT fp32':>9} {'ORT int8':>9} {'fp32 ×':>7} {'int8 ×':>7}")
    for r in rows:
        print(f"{r['encoder']:8} {r['batch']:>5} {r['eager_ms']:>9.2f} {r['ort_fp32_ms']:>9.2f} {r['ort_int8_ms']:>9.2f} "
              f"{r['ort_fp32_speedup']:>7.2f} {r['ort_int8_speedup']:>7.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "threads": args.threads, "repeats": args.repeats,
                                    "image": cfg.image.name, "text": cfg.text.source, "machine": platform.processor()
                                    or platform.machine(), "cpus": os.cpu_count()}, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
