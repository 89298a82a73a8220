"""Training samples/s per pre-training objective (forward + backward + AdamW step), on this machine.

    python bench/pretrain_speed.py [--preset tiny] [--set key=value ...] [--steps 5] [--out bench/results/...]

Batches are decoded once up front, so the figures are the model's speed; data loading is timed apart.
Needs the catalog (`make data`) and, for MPFC, patch labels (`fashionvlp vqvae` with the same model.image).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from fashionvlp.config import load_params
from fashionvlp.env import quiet_offline
from fashionvlp.objectives import OBJECTIVES
from fashionvlp.stages.pretrain import prepare

quiet_offline()
REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", action="append", default=[])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    params = load_params(REPO / "params.yaml", args.preset, args.overrides)
    model = params.model
    capabilities = {"fashionvil": {"fused_image_tokens"}, "kgflip": {"decode"}}[model.arch]
    names = [n for n in sorted(OBJECTIVES) if OBJECTIVES[n].cls.requires <= capabilities]
    batch_size = params.pretrain.batch_size
    label = (f"{model.arch}, image {model.image.name}@{model.image.image_size}px, text {model.text.source}, "
             f"batch {batch_size}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"pre-training speed ({label}; presets {args.preset or 'none'})")
    rows = []
    for name in names:
        prepared = prepare(params, objectives={name: 1.0}, out=Path(os.environ.get("TMPDIR", "/tmp")) / "bench-pretrain")
        suite, dataset, collate = prepared.suite, prepared.dataset, prepared.collate
        start = time.perf_counter()
        batches = [collate([dataset[(i * batch_size + j) % len(dataset)] for j in range(batch_size)])
                   for i in range(args.steps + 1)]
        load_s = (time.perf_counter() - start) / len(batches)
        optimizer = torch.optim.AdamW(suite.parameters(), lr=1e-4)
        suite.train()
        timings = []
        for i, batch in enumerate(batches):
            t = time.perf_counter()
            loss, _ = suite(batch, [name])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if i:  # the first step warms up allocators and kernels
                timings.append(time.perf_counter() - t)
        step = sorted(timings)[len(timings) // 2]
        rows.append({"objective": name, "samples_per_s": batch_size / step, "step_ms": step * 1000,
                     "data_ms_per_batch": load_s * 1000})
        print(f"  {name:8s} {batch_size / step:8.1f} samples/s   step {step * 1000:7.1f} ms (median of {len(timings)})"
              f"   data {load_s * 1000:6.1f} ms/batch (1 process)")
    out = args.out or REPO / "bench" / "results" / f"pretrain_speed_{model.arch}_{'-'.join(args.preset) or 'default'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": label, "presets": args.preset, "overrides": args.overrides, "rows": rows},
                              indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
