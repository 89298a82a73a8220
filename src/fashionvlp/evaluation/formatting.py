"""Printable lines of a task's evaluation result: every number with its protocol and split."""

from __future__ import annotations

from fashionvlp.evaluation.bootstrap import format_interval
from fashionvlp.evaluation.retrieval import format_xmr


def _recalls(row: dict) -> str:
    return "  ".join(f"{k} {v:.2f}" for k, v in row.items() if k.startswith("R@"))


def format_headline(result: dict) -> str:
    """``ITR 29.07 [27.2, 30.9] (37% of the ceiling 78.10 [77.0, 79.2])``, one entry per headline number."""
    intervals, ceiling = result.get("intervals", {}), result.get("ceiling") or {}
    parts = []
    for name, value in result["headline"].items():
        text = f"{name} {format_interval(value, intervals.get(name))}"
        if name in ceiling.get("of_ceiling", {}):
            text += (f" ({ceiling['of_ceiling'][name]:.0f}% of the ceiling "
                     f"{format_interval(ceiling['headline'][name], ceiling.get('intervals', {}).get(name))})")
        parts.append(text)
    return ", ".join(parts)


def _ceiling_lines(result: dict, indent: str) -> list[str]:
    ceiling = result.get("ceiling")
    if not ceiling:
        return []
    lines = [f"{indent}[ceiling — {ceiling['protocol']}]"]
    if result["task"] == "xmr":
        for proto in ("paper", "full"):
            for direction in ("ITR", "TIR"):
                lines.append(f"{indent}  {proto} {direction}: " + _recalls(ceiling[proto][direction]))
    elif result["task"] == "tgir":
        lines.append(f"{indent}  mean: {_recalls(ceiling['mean'])}  (R@10+R@50)/2 {ceiling['mean']['mean']:.2f}")
    elif result["task"] == "attributes":
        named = ceiling["text_names_value"]
        lines.append(f"{indent}  the text names the labelled value: " + ", ".join(
            f"{k} {v:.1f}%" for k, v in named.items() if k != "average") + f"; average {named['average']:.1f}%")
    return lines


def format_result(result: dict, indent: str = "  ") -> list[str]:
    task = result["task"]
    lines = [f"{task} of {result['model']} ({result['arch']}) on the {result['split']} split"]
    if "intervals" in result:
        lines.append(f"{indent}headline (95% bootstrap interval): {format_headline(result)}")
    if task == "xmr":
        lines += format_xmr(result, indent)
        if "rerank" in result:
            r = result["rerank"]
            lines.append(f"{indent}[{r['protocol']}]")
            for direction in ("ITR", "TIR"):
                lines.append(f"{indent}  {direction}: ITC {_recalls(r['itc'][direction])}  →  ITC+ITM "
                             f"{_recalls(r['itc+itm'][direction])}")
            c = r["cost"]
            lines.append(f"{indent}  cost: {c['fused_passes_per_query']:.0f} fused passes/query, "
                         f"{c['ms_per_query']:.1f} ms/query ({c['seconds']:.1f} s in all)")
    elif task == "classification":
        for name in ("CR", "SCR"):
            r = result[name]
            lines.append(f"{indent}{name}: accuracy {r['accuracy']:.2f}, macro-F1 {r['macro_f1']:.2f} "
                         f"({r['classes']} classes; majority class {r['chance_accuracy']:.2f})")
    elif task == "tgir":
        lines.append(f"{indent}[{result['protocol']}]")
        for group, row in result["groups"].items():
            lines.append(f"{indent}  {group}: {_recalls(row)} ({row['queries']} queries, gallery {row['gallery']})")
        lines.append(f"{indent}  mean: {_recalls(result['mean'])}  (R@10+R@50)/2 {result['mean']['mean']:.2f}")
    elif task == "ocir":
        lines.append(f"{indent}[{result['protocol']}]")
        for category, row in result["categories"].items():
            lines.append(f"{indent}  {category}: {_recalls(row)} ({row['queries']} queries, {row['candidates']} "
                         "candidates)")
        lines.append(f"{indent}  category-balanced: {_recalls(result['balanced'])}")
        lines.append(f"{indent}  all queries: {_recalls(result['all_queries'])}")
    elif task == "attributes":
        lines.append(f"{indent}[{result['protocol']}]")
        for name, row in result["attributes"].items():
            saved = row["at_saved_threshold"]
            precision = "n/a" if saved["precision"] is None else f"{saved['precision']:.1f}"
            lines.append(f"{indent}  {name}: R@90P {row['R@90P']:.2f}, top-1 {row['top1_accuracy']:.2f} "
                         f"({row['labelled']} labelled; saved threshold gives P {precision} R {saved['recall']:.1f})")
        lines.append(f"{indent}  average: R@90P {result['average']['R@90P']:.2f}, "
                     f"top-1 {result['average']['top1_accuracy']:.2f}")
    elif task == "captioning":
        lines.append(f"{indent}[{result['protocol']}]")
        lines.append(f"{indent}  BLEU-4 {result['BLEU-4']:.2f} over {result['products']} products")
        for ex in result["examples"]:
            lines.append(f"{indent}  {ex['product_id']}: {ex['generated']!r}  (title: {ex['title']!r})")
    return lines + _ceiling_lines(result, indent)
