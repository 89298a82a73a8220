"""The ablation flow: the papers' pre-training ablations, re-run at tiny scale on the embedded catalog.

- FashionViL (its Table "Ablation Study"): no pre-training, each objective alone, the cumulative rows
  (ITC+MLM+MPFC, +ITM, +MVC, +PAC) and the full set without sharing the text and fusion encoders.
  Every row is fine-tuned and evaluated on XMR (ITR, TIR), TGIR, SCR and OCIR; Meta-sum adds them.
- KG-FLIP: knowledge-guided (KG-MLIM + KG-ITM + LM) vs unguided (MLM + ITM + LM) pre-training, compared
  on attribute extraction (average R@90P).

Writes ``derived/ablation/ablation.md`` and ``ablation.json`` (the table, the config and the protocols),
and logs the table to an MLflow parent run with one nested run per row (its stage runs nested below).
Run: ``make ablation`` or ``python flows/ablation.py [--preset=tiny] [--set=pretrain.steps=200]
[--only=fashionvil|kgflip] [--row=LABEL ...] [--out=DIR] [--seeds=N]``; ``--row`` picks rows by label
(repeatable), e.g. to re-run one row and check that its per-seed cells reproduce.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fashionvlp.env import quiet_offline  # noqa: E402

quiet_offline()

from prefect import flow, get_run_logger  # noqa: E402
from prefect.task_runners import ProcessPoolTaskRunner  # noqa: E402
from pydantic import Field  # noqa: E402
import numpy as np  # noqa: E402

from fashionvlp.config import FlowParameters, Params, flow_options  # noqa: E402
from fashionvlp.stages import data as data_stages  # noqa: E402
from fashionvlp.tracking.mlflow_tracking import Tracking  # noqa: E402
from grid import finetune_row_task, patch_labels, pretrain_row, slug  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FASHIONVIL_OBJECTIVES = ("itc", "itm", "mlm", "mpfc", "mvc", "pac", "kg_mlim", "kg_itm", "lm")


def _objectives(**weights: float) -> str:
    return "pretrain.objectives={" + ", ".join(f"{n}: {weights.get(n, 0)}" for n in FASHIONVIL_OBJECTIVES) + "}"


def _cumulative(names: list[str]) -> str:
    # FashionViL's sampling probabilities (params.yaml), restricted to the row's objectives.
    probabilities = {"itc": 0.2, "itm": 0.15, "mlm": 0.15, "mpfc": 0.15, "mvc": 0.2, "pac": 0.15}
    return _objectives(**{n: probabilities[n] for n in names})


# row label → overrides (None: no pre-training). The paper's row order.
FASHIONVIL_ROWS: dict[str, list[str] | None] = {
    "None": None,
    "MVC": [_objectives(mvc=1)],
    "MPFC": [_objectives(mpfc=1)],
    "MLM": [_objectives(mlm=1)],
    "PAC": [_objectives(pac=1)],
    "ITM": [_objectives(itm=1)],
    "ITC": [_objectives(itc=1)],
    "ITC + MLM + MPFC": [_cumulative(["itc", "mlm", "mpfc"])],
    "ITC + MLM + MPFC + ITM": [_cumulative(["itc", "mlm", "mpfc", "itm"])],
    "ITC + MLM + MPFC + ITM + MVC": [_cumulative(["itc", "mlm", "mpfc", "itm", "mvc"])],
    "ITC + MLM + MPFC + ITM + MVC + PAC": [_cumulative(["itc", "mlm", "mpfc", "itm", "mvc", "pac"])],
    "same, w/o sharing TE and FE": [_cumulative(["itc", "mlm", "mpfc", "itm", "mvc", "pac"]),
                                    "model.shared_fusion=false"],
}
KGFLIP_ROWS: dict[str, list[str]] = {
    "KG-FLIP: KG-MLIM + KG-ITM + LM (guided)": ["model.arch=kgflip", "pretrain.combine=sum",
                                                _objectives(kg_mlim=1, kg_itm=1, lm=1)],
    "unguided: MLM + ITM + LM": ["model.arch=kgflip", "pretrain.combine=sum", _objectives(mlm=1, itm=1, lm=1)],
}
FASHIONVIL_TASKS = ("xmr", "tgir", "classification", "ocir")
FASHIONVIL_COLUMNS = ("ITR", "TIR", "TGIR", "SCR", "OCIR")
KGFLIP_TASKS = ("attributes",)
KGFLIP_COLUMNS = ("ATTR_R@90P",)


class AblationParameters(FlowParameters):
    params_file: str = str(REPO / "params.yaml")
    presets: list[str] = Field(default_factory=lambda: ["tiny"])
    fashionvil_rows: list[str] = Field(default_factory=lambda: list(FASHIONVIL_ROWS))
    kgflip_rows: list[str] = Field(default_factory=lambda: list(KGFLIP_ROWS))
    workers: int = Field(2, ge=1)
    # Pre-training seeds per row (pretrain.seed = 0 … seeds-1; fine-tuning follows it): cells are mean ± std.
    seeds: int = Field(1, ge=1)
    catalog: str | None = None        # default: the DVC-pinned catalog of paths.catalog
    out: str | None = None            # default: <paths.derived>/ablation


def _rows(parameters: AblationParameters) -> list[tuple[str, str, list[str] | None, tuple[str, ...]]]:
    unknown = [r for r in parameters.fashionvil_rows if r not in FASHIONVIL_ROWS] + \
              [r for r in parameters.kgflip_rows if r not in KGFLIP_ROWS]
    if unknown:
        raise ValueError(f"unknown ablation rows {unknown}; known: {list(FASHIONVIL_ROWS) + list(KGFLIP_ROWS)}")
    return [("fashionvil", r, FASHIONVIL_ROWS[r], FASHIONVIL_TASKS) for r in parameters.fashionvil_rows] + \
           [("kgflip", r, KGFLIP_ROWS[r], KGFLIP_TASKS) for r in parameters.kgflip_rows]


# Training runs in worker processes: Accelerate's state is per process, so threads cannot share it.
@flow(name="ablation", log_prints=True,
      task_runner=ProcessPoolTaskRunner(max_workers=2))
def ablation(parameters: AblationParameters = AblationParameters()) -> dict:
    logger = get_run_logger()
    params = parameters.load()
    tracking = Tracking.from_params(params)
    root = Path(parameters.out) if parameters.out else params.derived_dir / "ablation"
    rows = _rows(parameters)
    catalog = parameters.catalog or str(data_stages.materialize(params).catalog)
    with tracking.run("ablation", tags={"pipeline": "ablation"}) as run_id:
        tracking.log_params(run_id, {"presets": ",".join(parameters.presets), "overrides": " ".join(parameters.overrides),
                                     "pretrain.steps": params.pretrain.steps, "catalog": catalog}
                            | {f"finetune.{t}.steps": getattr(params.finetune, t).steps
                               for t in FASHIONVIL_TASKS + KGFLIP_TASKS})
        labels = patch_labels(parameters, catalog) if parameters.fashionvil_rows else ""
        pending = []
        for family, label, overrides, tasks in rows:
            row_run = tracking.start_run(f"row: {label}", {"ablation.family": family, "ablation.row": label}, run_id)
            per_seed = []
            for seed in range(parameters.seeds):
                seeded = (overrides or []) + [f"pretrain.seed={seed}"]
                out = root / family / slug(label) / f"seed-{seed}"
                model = pretrain_row.with_options(name=f"pretrain-{slug(label)}-seed{seed}").submit(
                    parameters, overrides, catalog, labels, str(out / "pretrain"), row_run, seed)
                per_seed.append([finetune_row_task.with_options(name=f"finetune-{slug(label)}-{t}-seed{seed}").submit(
                    parameters, seeded, t, model, catalog, str(out / t), row_run) for t in tasks])
            pending.append((family, label, row_run, per_seed))
        table, spread, values = {"fashionvil": {}, "kgflip": {}}, {"fashionvil": {}, "kgflip": {}}, \
            {"fashionvil": {}, "kgflip": {}}
        for family, label, row_run, per_seed in pending:
            columns = FASHIONVIL_COLUMNS if family == "fashionvil" else KGFLIP_COLUMNS
            seeds = []
            for futures in per_seed:
                scores = {}
                for future in futures:
                    scores.update(future.result()["headline"])
                row = {c: scores[c] for c in columns}
                if family == "fashionvil":
                    row["Meta-sum"] = sum(row.values())
                seeds.append(row)
            table[family][label] = {c: float(np.mean([r[c] for r in seeds])) for c in seeds[0]}
            spread[family][label] = {c: float(np.std([r[c] for r in seeds], ddof=1)) if len(seeds) > 1 else None
                                     for c in seeds[0]}
            values[family][label] = seeds
            tracking.log_metrics(row_run, {f"ablation.{k}".replace("@", "_at_"): v
                                           for k, v in table[family][label].items()}
                                 | {f"ablation.{k}.std".replace("@", "_at_"): v
                                    for k, v in spread[family][label].items() if v is not None})
            tracking.end_run(row_run)
            logger.info("%s: %s", label, ", ".join(f"{k} {_cell(table[family][label][k], spread[family][label][k])}"
                                                   for k in table[family][label]))
        result = {"table": table, "std": spread, "per_seed": values, "seeds": list(range(parameters.seeds)),
                  "config": _config(params, parameters), "protocols": PROTOCOLS}
        root.mkdir(parents=True, exist_ok=True)
        (root / "ablation.json").write_text(json.dumps(result, indent=2))
        (root / "ablation.md").write_text(markdown(result))
        tracking.log_metrics(run_id, {f"{family}.{slug(label)}.{k}".replace("@", "_at_"): v
                                      for family, rows_ in table.items() for label, row in rows_.items()
                                      for k, v in row.items()})
        tracking.log_artifact(run_id, root / "ablation.md", "ablation")
        tracking.log_artifact(run_id, root / "ablation.json", "ablation")
    return {"run_id": run_id, "markdown": str(root / "ablation.md"), **result}


PROTOCOLS = {
    "ITR/TIR": "mean of R@1/5/10, papers' protocol (1000 queries, 1 + 100 same-subcategory, 5 repeats)",
    "TGIR": "mean over FashionIQ groups of (R@10 + R@50)/2",
    "SCR": "subcategory accuracy",
    "OCIR": "mean of category-balanced R@10/30/50",
    "ATTR_R@90P": "average over attributes of recall at 90% precision",
}


def _config(params: Params, parameters: AblationParameters) -> dict:
    return {"presets": parameters.presets, "overrides": parameters.overrides, "pretrain_steps": params.pretrain.steps,
            "pretrain_batch_size": params.pretrain.batch_size,
            "finetune_steps": {t: getattr(params.finetune, t).steps for t in FASHIONVIL_TASKS + KGFLIP_TASKS},
            "evaluation_split": params.evaluation.split, "image": params.model.image.name,
            "text": params.model.text.source}


def markdown(result: dict) -> str:
    cfg = result["config"]
    lines = ["# Pre-training ablation (papers' form)", "",
             f"Config: presets {cfg['presets']} {' '.join(cfg['overrides'])}; image encoder {cfg['image']}, text "
             f"encoder {cfg['text']}; pre-training {cfg['pretrain_steps']} steps (batch {cfg['pretrain_batch_size']}); "
             f"fine-tuning steps {cfg['finetune_steps']}; evaluated on the {cfg['evaluation_split']} split; "
             f"{len(result['seeds'])} pre-training seed(s) {result['seeds']}, each cell the mean ± the standard "
             "deviation over seeds (sample std).", "",
             "Columns: " + "; ".join(f"{k} = {v}" for k, v in result["protocols"].items()) + ".", ""]
    for family, columns in (("fashionvil", FASHIONVIL_COLUMNS + ("Meta-sum",)), ("kgflip", KGFLIP_COLUMNS)):
        rows = result["table"][family]
        if not rows:
            continue
        lines += [f"## {'FashionViL' if family == 'fashionvil' else 'KG-FLIP'}", "",
                  "| Pre-training tasks | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        best = {c: max(r[c] for r in rows.values()) for c in columns}
        for label, row in rows.items():
            std = result["std"][family][label]
            cells = [f"**{_cell(row[c], std[c])}**" if row[c] == best[c] and len(rows) > 1 else _cell(row[c], std[c])
                     for c in columns]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def main(argv: list[str]) -> int:
    only = [a.removeprefix("--only=") for a in argv if a.startswith("--only=")]
    out = next((a.removeprefix("--out=") for a in argv if a.startswith("--out=")), None)
    rows = {} if not only else {"fashionvil_rows": [] if "fashionvil" not in only else list(FASHIONVIL_ROWS),
                                "kgflip_rows": [] if "kgflip" not in only else list(KGFLIP_ROWS)}
    picked = [a.removeprefix("--row=") for a in argv if a.startswith("--row=")]
    if picked:
        rows = {"fashionvil_rows": [r for r in picked if r not in KGFLIP_ROWS],
                "kgflip_rows": [r for r in picked if r in KGFLIP_ROWS]}
    seeds = next((int(a.removeprefix("--seeds=")) for a in argv if a.startswith("--seeds=")), 1)
    parameters = AblationParameters(**flow_options(argv, ["tiny"]), out=out, seeds=seeds, **rows)
    params = parameters.load()
    runner = ProcessPoolTaskRunner(max_workers=parameters.workers)
    out = ablation.with_options(task_runner=runner)(parameters)
    print(Path(out["markdown"]).read_text())
    print(f"MLflow run: {out['run_id']} (store {params.tracking_uri}); table: {out['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
