"""The ceiling of OCIR on the embedded synthetic catalog: an oracle that knows the generator's outfit rule.

    python bench/ocir_ceiling.py [--catalog data] [--split test]

The generator (``data/synth/generate.py``) builds an outfit from one formality (a property of the
subcategory) under ``compatible``: at most one patterned item and at most one non-neutral colour. Every
candidate of the blank's category that keeps the partial outfit compatible is as good a completion as the
blank, so the best any model can do is rank those first, in some order: expected R@K = min(1, K / n) for
n compatible candidates (0 where the catalog's labels make the blank itself look incompatible, e.g. a
missing colour label). Same blanks (evaluation seed), candidates and category balancing as
``tasks/ocir.py``; prints R@10/30/50 and their mean (the OCIR headline) with 95% bootstrap intervals.
Only for catalogs made by ``fashionvlp data synth``: a real catalog's outfit rule is not known.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fashionvlp.config import load_params
from fashionvlp.data.catalog_io import read_catalog
from fashionvlp.data.synth.generate import compatible
from fashionvlp.data.synth.spec import SUBCATEGORY_BY_NAME
from fashionvlp.evaluation.bootstrap import format_interval, interval
from fashionvlp.evaluation.outcomes import MeanOutcome
from fashionvlp.tasks.ocir import KS, blank_position

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", type=Path, default=REPO / "data")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    params = load_params(REPO / "params.yaml", [], [])
    catalog = read_catalog(args.catalog)
    products = {p.product_id: p for p in catalog.iter_products()}
    outfits = [o for o in catalog.iter_outfits() if o.split == args.split]
    rng = np.random.default_rng(params.evaluation.seed)
    blanks = [blank_position(o, rng) for o in outfits]  # the evaluation's draws, in the same order
    by_category: dict[str, list] = {}
    for p in products.values():
        if p.split == args.split:
            by_category.setdefault(p.category, []).append(p)
    formality = {name: spec.formality for name, spec in SUBCATEGORY_BY_NAME.items()}
    rows, strata, units, sizes, missed = {k: [] for k in KS}, [], [], [], 0
    for outfit, b in zip(outfits, blanks):
        blank = products[outfit.product_ids[b]]
        items = [products[i].attributes for k, i in enumerate(outfit.product_ids) if k != b]
        wanted = formality[products[outfit.product_ids[(b + 1) % len(outfit.product_ids)]].subcategory]

        def fits(p) -> bool:
            return formality[p.subcategory] == wanted and compatible(
                [{"color": "black", **a} for a in items + [p.attributes]])

        n = sum(fits(p) for p in by_category[blank.category])
        hit = fits(blank)
        missed += not hit
        sizes.append(n)
        for k in KS:
            rows[k].append(100.0 * min(1.0, k / n) if hit else 0.0)
        strata.append(blank.category)
        units.append(outfit.outfit_id)
    print(f"OCIR ceiling on {args.catalog} ({args.split} split, {len(outfits)} outfit queries, "
          f"{len(by_category)} categories; the generator's outfit rule as oracle, category-balanced; 95% bootstrap)")
    print(f"  compatible candidates per query: median {np.median(sizes):.0f} of "
          f"{np.median([len(v) for v in by_category.values()]):.0f}; blanks the labels make incompatible: {missed}")
    headline = MeanOutcome.rows(units, np.mean([rows[k] for k in KS], axis=0), strata)
    for k in KS:
        ci = interval(MeanOutcome.rows(units, rows[k], strata))
        print(f"  R@{k}: {format_interval(ci.value, ci.as_dict())} (chance {100 * k / np.median([len(v) for v in by_category.values()]):.1f})")
    ci = interval(headline)
    print(f"  headline (mean of R@10/30/50): {format_interval(ci.value, ci.as_dict())}")


if __name__ == "__main__":
    main()
