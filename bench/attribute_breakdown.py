"""One attribute's top-1 accuracy, broken down by another attribute's value, from a finished attribute
evaluation (its outcomes file), each group with its 95% bootstrap interval (bounds rounded outwards, as every report here); ``--by none``: every
attribute's top-1 with its interval; ``--by text``: whether the product's text names the labelled value
(the schema's surface forms), i.e. how well the heads read the words where they say it.

    python bench/attribute_breakdown.py derived/finetune/fashionvil/attributes [--catalog data]
                                        [--attribute color] [--by pattern|none|text]

Why: an average hides where a head fails. Colour, for instance, is well defined on a solid product and
not on one whose pattern shares its area between two colours (a colour-block is half and half): the
breakdown says which part of the error the image leaves undecided.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from fashionvlp.data.catalog_io import read_catalog
from fashionvlp.env import quiet_offline
from fashionvlp.evaluation.bootstrap import format_interval, interval
from fashionvlp.evaluation.oracle import mentioned
from fashionvlp.evaluation.outcomes import MeanOutcome, outcomes_path, read_outcomes

quiet_offline()

HEADLINE = "ATTR_R@90P"


def breakdown(evaluation: Path, catalog: Path, attribute: str, by: str | None) -> list[dict]:
    """Rows of {by: value, top1, ci_low, ci_high, n}; ``by`` None: one row, every labelled product."""
    metrics = json.loads((evaluation / "metrics.json").read_text())
    names = list(metrics["attributes"])  # the outcome's columns, in the evaluation's order
    if attribute not in names:
        raise SystemExit(f"{evaluation}: no attribute {attribute!r} was evaluated; evaluated: {', '.join(names)}")
    outcomes, _ = read_outcomes(outcomes_path(evaluation, "attributes"))
    outcome = outcomes[HEADLINE]
    read = read_catalog(catalog)
    products = {p.product_id: p for p in read.iter_products()}
    missing = [str(u) for u in outcome.units if str(u) not in products]
    if missing:
        raise SystemExit(f"{catalog}: {len(missing)} evaluated product(s) are not in this catalog, e.g. "
                         f"{missing[0]!r}: pass the catalog the evaluation read (--catalog)")
    column = names.index(attribute)
    groups: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for unit, row in zip(outcome.units, outcome.correct):
        if row[column] >= 0:
            product = products[str(unit)]
            if by == "text":
                named = product.attributes[attribute] in mentioned(read.schema, product.text, product.category).get(
                    attribute, set())
                value = "names it" if named else "does not"
            else:
                value = product.attributes.get(by, "(none)") if by else "(all)"
            groups[value].append((str(unit), 100.0 * row[column]))
    rows = []
    for value, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        units, correct = zip(*members)
        ci = interval(MeanOutcome.rows(units, correct), what=f"{attribute} top-1 where {by}={value}")
        rows.append({"by": value, "top1": ci.value, "ci_low": ci.ci_low, "ci_high": ci.ci_high, "n": len(members)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("evaluation", type=Path, help="a fine-tuned attribute model's output directory")
    ap.add_argument("--catalog", type=Path, default=Path("data"))
    ap.add_argument("--attribute", default="color")
    ap.add_argument("--by", default="pattern", help="an attribute, or none: every attribute's own top-1")
    args = ap.parse_args()
    metrics = json.loads((args.evaluation / "metrics.json").read_text())
    where = f"{args.evaluation} ({metrics['split']} split, {metrics['products']} products)"
    if args.by == "none":
        print(f"{where}: top-1 per attribute over its labelled products, 95% bootstrap intervals")
        for name in metrics["attributes"]:
            row, = breakdown(args.evaluation, args.catalog, name, None)
            print(f"  {name:<14} {format_interval(row['top1'], row)}  n={row['n']}")
        return
    print(f"{where}: {args.attribute} top-1 by {args.by}, 95% bootstrap intervals")
    for row in breakdown(args.evaluation, args.catalog, args.attribute, args.by):
        print(f"  {args.by}={row['by']:<14} {format_interval(row['top1'], row)}  n={row['n']}")


if __name__ == "__main__":
    main()
