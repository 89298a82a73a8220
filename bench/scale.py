"""The pipeline's data stages at FashionGen size on this machine: time and peak memory of each.

    python bench/scale.py [--views 300000] [--image-size 64] [--work DIR] [--stages synth validate vqvae loading evaluation]
                          [--gallery 32000] [--out bench/results/scale.json]

1. ``synth``: the embedded generator at ``num_products = views / 2.2`` (its mean views per product) and small
   images: a catalog of about ``--views`` views (kept in ``--work`` and reused when it is already there).
2. ``validate``: ``fashionvlp data validate`` (Great Expectations; images decoded on every core).
3. ``vqvae``: the VQ-VAE stage with the default config: training on a bounded draw of images, then patch
   labels for every train/val image read in batches.
4. ``loading``: one pre-training epoch of the default config's data loading (decoding, augmenting,
   tokenising, patch codes, collation through its DataLoader), without the model.
5. ``evaluation``: XMR's two protocols and the attribute oracle's ceiling on a ``--gallery``-item test
   gallery, scored a block of rows at a time: the papers' 5 × 1000 queries per direction with 1 + 100
   same-subcategory galleries, the full gallery, the recall curve and the bootstrap intervals. The
   embeddings are synthetic (noisy copies, not a model's): this measures the protocol, not a model.

Each stage runs in a child process; its wall time and peak RSS (alone and with its workers, sampled every
0.1 s) are printed and written to ``--out``. Peak RSS that does not grow with the catalog is the point.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

MEAN_VIEWS = 2.2  # the generator's default view_weights [0.25, 0.4, 0.25, 0.1] over 1–4 views
STAGES = ("synth", "validate", "vqvae", "loading", "evaluation")


def _params(work: Path, catalog: Path, *extra: str):
    from fashionvlp.config import load_params

    return load_params(Path(__file__).resolve().parent.parent / "params.yaml",
                       overrides=[f"paths.catalog={catalog}", f"paths.derived={work / 'derived'}", *extra])


def stage_vqvae(work: Path, catalog: Path, args) -> dict:
    from fashionvlp.stages.vqvae import train_vqvae

    result = train_vqvae(_params(work, catalog), catalog)
    return {k: result.metrics[k] for k in ("num_images", "train_images", "train_seconds", "reconstruction_mse",
                                           "perplexity", "codes_used")}


def stage_loading(work: Path, catalog: Path, args) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from fashionvlp.env import fix_threads
    from fashionvlp.stages.pretrain import prepare
    from fashionvlp.stages.vqvae import patch_labels_dir

    params = _params(work, catalog, f"pretrain.num_workers={args.loader_workers}")
    started = time.perf_counter()
    prepared = prepare(params, catalog, patch_labels_dir(params), out=work / "derived" / "pretrain-loading")
    prepare_seconds = time.perf_counter() - started
    cfg = params.pretrain
    fix_threads(cfg.threads)
    loader = DataLoader(prepared.dataset, batch_size=cfg.batch_size, sampler=prepared.sampler,
                        collate_fn=prepared.collate, num_workers=cfg.num_workers, drop_last=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    started, samples = time.perf_counter(), 0
    for batch in loader:
        samples += len(batch["input_ids"])
    seconds = time.perf_counter() - started
    return {"train_products": len(prepared.dataset), "samples": samples, "batch_size": cfg.batch_size,
            "loader_workers": cfg.num_workers, "prepare_seconds": round(prepare_seconds, 1),
            "epoch_seconds": round(seconds, 1), "samples_per_s": round(samples / seconds, 1)}


def stage_evaluation(work: Path, catalog: Path, args) -> dict:
    import numpy as np

    from fashionvlp.data.catalog_io import read_catalog
    from fashionvlp.evaluation import oracle
    from fashionvlp.evaluation.bootstrap import interval
    from fashionvlp.evaluation.retrieval import (PaperProtocol, cosine_scores, full_gallery_hits, paper_galleries,
                                                paper_hits, summarize_hits)
    from fashionvlp.tasks.xmr import CURVE_KS, _outcomes

    cat = read_catalog(catalog)
    products = [p for p in cat.iter_products() if p.split == "test"][:args.gallery]
    rng = np.random.default_rng(0)
    image = rng.normal(size=(len(products), 256)).astype(np.float32)
    text = (image + 4.0 * rng.normal(size=image.shape)).astype(np.float32)
    timings, started = {}, time.perf_counter()
    galleries = paper_galleries([p.subcategory for p in products], PaperProtocol(), allow_fallback=True)
    scores = cosine_scores(image, text)
    paper = paper_hits(scores, galleries)
    timings["paper"] = time.perf_counter() - started
    started = time.perf_counter()
    full = full_gallery_hits(scores)
    timings["full"] = time.perf_counter() - started
    started = time.perf_counter()
    full_gallery_hits(scores, ks=CURVE_KS)
    timings["curve"] = time.perf_counter() - started
    started = time.perf_counter()
    ceiling = oracle.retrieval_scores(cat.schema, products)
    ceiling_paper, ceiling_full = paper_hits(ceiling, galleries, "expected"), full_gallery_hits(ceiling, "expected")
    timings["oracle"] = time.perf_counter() - started
    started = time.perf_counter()
    intervals = {d: interval(o).as_dict() for d, o in _outcomes(products, galleries, paper).items()}
    timings["bootstrap"] = time.perf_counter() - started
    return {"gallery": len(products), "embedding_dim": image.shape[1],
            "paper": summarize_hits(paper, galleries.label), "full": summarize_hits(full, f"full gallery of {len(products)}"),
            "ceiling": {"paper": summarize_hits(ceiling_paper, galleries.label)["ITR"],
                        "full": summarize_hits(ceiling_full, "full")["ITR"]},
            "intervals": intervals, "protocol_seconds": {k: round(v, 1) for k, v in timings.items()}}


def catalog_command(catalog: Path, args) -> list[str]:
    products = int(round(args.views / MEAN_VIEWS))
    return [sys.executable, "-m", "fashionvlp.cli", "data", "synth", "--out", str(catalog),
            "--set", f"data.synth.num_products={products}", "--set", f"data.synth.image_size={args.image_size}",
            "--set", f"data.synth.num_outfits={products // 2}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--views", type=int, default=300_000)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--gallery", type=int, default=32_000)
    ap.add_argument("--loader-workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/fashionvlp-scale"))
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--stage", help=argparse.SUPPRESS)  # internal: run one stage in this (child) process
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scale.json")
    args = ap.parse_args()
    catalog = args.work / "catalog"
    if args.stage:
        result = globals()[f"stage_{args.stage}"](args.work, catalog, args)
        print("RESULT " + json.dumps(result))
        return

    from measure import run_measured

    args.work.mkdir(parents=True, exist_ok=True)
    print(f"scale bench: about {args.views:,} views at {args.image_size} px in {catalog}; {os.cpu_count()} cores; "
          "peak RSS sampled every 0.1 s (the stage's process, and with its workers)", flush=True)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results.setdefault("stages", {})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    for stage in args.stages:
        if stage == "synth":
            if (catalog / "catalog.json").is_file():
                print("  synth: catalog already there, kept", flush=True)
                continue
            cmd = catalog_command(catalog, args)
        elif stage == "validate":
            cmd = [sys.executable, "-m", "fashionvlp.cli", "data", "validate", "--catalog", str(catalog),
                   "--report-dir", str(args.work / "validation")]
        else:
            cmd = [sys.executable, __file__, "--stage", stage, "--work", str(args.work), "--gallery", str(args.gallery),
                   "--loader-workers", str(args.loader_workers)]
        run = run_measured(cmd, env)
        detail = next((json.loads(line[7:]) for line in run.output.splitlines() if line.startswith("RESULT ")), {})
        results["stages"][stage] = {"seconds": round(run.seconds, 1), "peak_rss_mib": round(run.peak_rss_mib),
                                    "peak_rss_with_workers_mib": round(run.peak_rss_tree_mib), **detail}
        print(f"  {stage:>10}: {run.seconds:7.1f} s; peak RSS {run.peak_rss_mib:,.0f} MiB, with its workers "
              f"{run.peak_rss_tree_mib:,.0f} MiB", flush=True)
        if detail:
            print("              " + json.dumps(detail)[:600], flush=True)
    manifest = json.loads((catalog / "catalog.json").read_text())
    results.update({"catalog": {"products": manifest["counts"]["products"], "images": manifest["counts"]["images"],
                                "by_split": manifest["counts"]["by_split"], "image_size": args.image_size},
                    "cores": os.cpu_count()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"catalog: {manifest['counts']['products']:,} products, {manifest['counts']['images']:,} views; "
          f"written to {args.out}")


if __name__ == "__main__":
    main()
