"""How long evaluation takes, and what vectorising the papers' XMR protocol bought.

1. The papers' protocol (5 repeats × 1,000 queries per direction, 1 + 100 same-subcategory galleries) on
   random embeddings of the embedded catalog's test split size: the per-query loop it used to be (kept
   here only as the "before") against the vectorised ``paper_galleries`` + ``paper_hits``.
2. With ``--models DIR`` (a ``derived/finetune/<arch>`` of a ``make run``): ``evaluate`` of every task —
   embeddings, metrics, ceilings, 95% bootstrap intervals — timed end to end on the configured catalog.

    python bench/evaluation_speed.py [--models derived/finetune/fashionvil] [--params params.yaml] [--out FILE]

Prints the figures and writes ``bench/results/evaluation_speed.json`` (or ``--out``). The "before" of
``evaluate`` is this script's ``task_timing`` run with an older checkout's code first on the path
(``PYTHONPATH=<old>/src``, from the old checkout, with its params and catalog) on the same models.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np



def per_query_loop(image, text, subcategories, protocol: PaperProtocol) -> dict:
    """The protocol as it was implemented before (one cosine and one sort per query)."""
    from fashionvlp.evaluation.metrics import recall_at_k
    from fashionvlp.evaluation.retrieval import KS, _cosine

    subcategories = np.asarray(subcategories)
    members = {s: np.flatnonzero(subcategories == s) for s in np.unique(subcategories)}
    rng = np.random.default_rng(protocol.seed)
    results = {"ITR": [], "TIR": []}
    for _ in range(protocol.repeats):
        for direction, (q_emb, g_emb) in {"ITR": (image, text), "TIR": (text, image)}.items():
            scores = []
            for q in rng.choice(len(subcategories), size=protocol.queries, replace=False):
                pool = members[subcategories[q]]
                pool = pool[pool != q]
                gallery = np.concatenate([[q], rng.choice(pool, size=protocol.negatives, replace=False)])
                scores.append(_cosine(q_emb[q:q + 1], g_emb[gallery])[0])
            relevant = np.zeros((len(scores), protocol.negatives + 1), bool)
            relevant[:, 0] = True
            results[direction].append(recall_at_k(np.stack(scores), relevant, KS))
    return results


def protocol_timing(products: int, subcategories: int, dim: int = 384) -> dict:
    # Imported here so that --skip-protocol runs with an older checkout's code, which lacks them.
    from fashionvlp.evaluation.retrieval import PaperProtocol, _cosine, paper_galleries, paper_hits

    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(products, dim)), rng.normal(size=(products, dim))
    subs = np.repeat([f"s{i}" for i in range(subcategories)], products // subcategories)
    protocol = PaperProtocol()
    start = time.perf_counter()
    per_query_loop(image, text, subs, protocol)
    before = time.perf_counter() - start
    start = time.perf_counter()
    paper_hits(_cosine(image, text), paper_galleries(subs, protocol))
    after = time.perf_counter() - start
    return {"products": len(subs), "dim": dim, "per_query_loop_s": round(before, 3), "vectorised_s": round(after, 3),
            "speedup": round(before / after, 1)}


def task_timing(models: Path, params_file: Path) -> dict:
    from fashionvlp.config import load_params
    from fashionvlp.stages.evaluate import evaluate

    params = load_params(params_file)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task_dir in sorted(p for p in models.iterdir() if (p / "model" / "model.json").is_file()):
            start = time.perf_counter()
            result = evaluate(params, task_dir.name, task_dir / "model", out=Path(tmp) / task_dir.name)
            out[task_dir.name] = {"seconds": round(time.perf_counter() - start, 2), "headline": result["headline"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=None)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--products", type=int, default=2408, help="test-split size (the embedded default's)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "evaluation_speed.json")
    parser.add_argument("--skip-protocol", action="store_true", help="only time evaluate (e.g. with older code)")
    args = parser.parse_args()
    import fashionvlp

    results = {"code": str(Path(fashionvlp.__file__).parent), "params": str(args.params.resolve())}
    if not args.skip_protocol:
        results["paper_protocol"] = p = protocol_timing(args.products, 14)
        print(f"papers' XMR protocol, {p['products']} products × {p['dim']}-d, 2 × 5 × 1000 queries: per-query "
              f"loop {p['per_query_loop_s']:.2f} s, vectorised {p['vectorised_s']:.2f} s ({p['speedup']}×)")
    if args.models:
        results["evaluate"] = task_timing(args.models, args.params)
        for task, row in results["evaluate"].items():
            print(f"evaluate --task {task}: {row['seconds']:.1f} s (embeddings, metrics, ceiling, 95% intervals)")
    path = args.out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"→ {path}")


if __name__ == "__main__":
    main()
