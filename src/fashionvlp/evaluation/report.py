"""The evaluation report: one Markdown file with every task's headline numbers, protocols and details,
and PNG plots (recall@K of XMR — full gallery —, TGIR and OCIR; attribute precision–recall curves).
Logged to MLflow as an artifact."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from fashionvlp.evaluation.bootstrap import format_interval
from fashionvlp.evaluation.formatting import format_result


def _read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _plot_recall_at_k(rows: list[dict], title: str, subtitle: str, out: Path) -> None:
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    ks = [int(r["k"]) for r in rows]
    for column in [c for c in rows[0] if c != "k"]:
        style = ({"color": "grey", "linestyle": ":", "marker": None} if column == "chance" else
                 {"color": "black", "linestyle": "--", "marker": None, "linewidth": 1} if column == "ceiling" else
                 {"linestyle": "--", "marker": "x"} if column.endswith(" ceiling") else {"marker": "o"})
        label = "attribute oracle (ceiling)" if column == "ceiling" else column
        ax.plot(ks, [float(r[column]) for r in rows], label=label, **style)
    ax.set(xscale="log", xlabel="K", ylabel="recall@K (%)", ylim=(0, 100))
    ax.set_title(title, fontsize=10)
    fig.text(0.5, 0.005, textwrap.fill(subtitle, 110), ha="center", va="bottom", fontsize=6, color="dimgrey")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _plot_pr(rows: list[dict], title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = defaultdict(list)
    for r in rows:
        curves[r["attribute"]].append((float(r["recall"]), float(r["precision"])))
    fig, ax = plt.subplots(figsize=(6, 4))
    colours = plt.get_cmap("tab20").colors  # 12 attributes: tab10's cycle would give two of them one colour
    for i, (name, points) in enumerate(sorted(curves.items())):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name, linewidth=1,
                color=colours[(2 * i) % 20 + (2 * i) // 20], linestyle="-" if i < 10 else "--")
    ax.axhline(90, color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel="recall (% of products with a value)", ylabel="precision (%)", title=title)
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _headline_table(results: list[dict]) -> list[str]:
    lines = ["| stage | task | split | headline [95% interval] | attribute-oracle ceiling | share of ceiling | "
             "model steps |", "|---|---|---|---|---|---|---|"]
    for r in results:
        intervals, ceiling = r.get("intervals", {}), r.get("ceiling") or {}
        headline = ", ".join(f"{k} {format_interval(v, intervals.get(k))}" for k, v in r["headline"].items())
        top = ", ".join(f"{k} {format_interval(v, ceiling.get('intervals', {}).get(k))}"
                        for k, v in ceiling.get("headline", {}).items()) or "–"
        share = ", ".join(f"{k} {v:.0f}%" for k, v in ceiling.get("of_ceiling", {}).items()) or "–"
        lines.append(f"| {r.get('stage', 'fine-tuned')} | {r['task']} | {r['split']} | {headline} | {top} | {share} | "
                     f"{r.get('steps')} |")
    return lines


def _curve_protocol(result: dict, task: str) -> str:
    """What a task's recall@K curve measured: XMR's curve is the full gallery, the others their protocol."""
    protocol = (result.get("full") or {}).get("protocol") if task == "xmr" else result.get("protocol")
    return f"{result.get('split', '?')} split; {protocol or 'protocol not recorded'}"


def _plot_label(result: dict) -> str:
    return result["task"] + ("_pretrained" if result.get("stage") == "pre-trained" else "")


def write_report(results: list[dict], out: Path, title: str, context: str) -> Path:
    """``results``: task results (as ``<task>.json``/``metrics.json``), each with its ``plots`` directory
    and ``stage``. Writes ``out/report.md`` and its PNGs beside it; returns the Markdown path.
    """
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", context, "",
             "Headline numbers: XMR = mean of R@1/5/10 under the papers' protocol; TGIR = mean over groups of "
             "(R@10+R@50)/2; OCIR = mean of category-balanced R@10/30/50; CR/SCR = accuracy; "
             "attributes = average R@90P; captioning = BLEU-4. Intervals: 95% percentile bootstrap over the "
             "evaluation units (query products, triplets, outfit queries, products), seeded; ties rank above the "
             "positive. Ceiling: an oracle that knows each product's labelled visible attributes and reads the "
             "texts through the schema's surface forms, under the same protocol and galleries (ties at random); "
             "for attributes it is 100 (a visible label is what the image shows). Recall@K plots: chance is a "
             "random ranking of the same galleries; the ceiling curve is the oracle's.", "",
             *_headline_table(results), ""]
    for result in (r for r in results if r.get("plots")):
        plots, label = Path(result["plots"]), _plot_label(result)
        for curve in sorted(plots.glob("*_recall_at_k.csv")):
            task = curve.name.removesuffix("_recall_at_k.csv")
            name = f"{label}_{curve.stem}.png"
            stage = result.get("stage", "fine-tuned")
            _plot_recall_at_k(_read_csv(curve), f"{task.upper()} recall@K, {stage} model (steps {result.get('steps')})",
                              _curve_protocol(result, task), out / name)
            lines += [f"![{task} recall@K, {label}]({name})", ""]
        pr = plots / "attributes_pr.csv"
        if pr.is_file():
            name = f"{label}_attributes_pr.png"
            _plot_pr(_read_csv(pr), f"Attribute precision–recall ({label}, {result.get('split', '?')} split)",
                     out / name)
            lines += [f"![attribute precision-recall, {label}]({name})", ""]
    lines += ["## Details", ""]
    for r in results:
        lines += [f"### {r['task']} ({r.get('stage', 'fine-tuned')})", "", "```", *format_result(r), "```", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
