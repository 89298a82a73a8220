"""The sweep flow: a grid of named configurations, each pre-trained, fine-tuned and evaluated like the
retrain flow, recorded as MLflow runs of one experiment so that the sweep is itself an MLflow comparison.

A sweep is a YAML file (``configs/sweeps/*.yaml``)::

    experiment: sweep-13                   # the MLflow experiment every row is a run of
    tasks: [xmr, classification, tgir, ocir, attributes]
    rows:
      - label: default
        overrides: []                      # --set values on top of the flow's params, presets and --set
      - label: XMR fine-tuning at lr 1e-3
        overrides: [finetune.xmr.lr=0.001]
        tasks: [xmr]                       # only these fine-tunings (default: the sweep's tasks)
        pretrained_from: default           # fine-tune that row's pre-trained model instead of pre-training

Each row is an MLflow run named ``row: <label>`` (tags ``sweep.name``, ``sweep.row``; params: its overrides)
with every headline and its 95% interval as ``<metric>``, ``<metric>.ci_low``, ``<metric>.ci_high``, and
its stage runs nested below; the parent run holds the table. A row with ``--seeds=N`` > 1 logs the mean
over pre-training seeds and ``<metric>.std``. Writes ``<out>/sweep.md`` and ``sweep.json``.

Run: ``make sweep SWEEP=configs/sweeps/issue13.yaml`` or ``python flows/sweep.py --sweep=FILE [--preset=...]
[--set=...] [--row=LABEL ...] [--seeds=N] [--out=DIR]``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from fashionvlp.env import quiet_offline  # noqa: E402

quiet_offline()

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from prefect import flow, get_run_logger  # noqa: E402
from prefect.task_runners import ProcessPoolTaskRunner  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, model_validator  # noqa: E402

from fashionvlp.config import FlowParameters, flow_options  # noqa: E402
from fashionvlp.stages import data as data_stages  # noqa: E402
from fashionvlp.tasks import TASKS  # noqa: E402
from fashionvlp.tracking.mlflow_tracking import Tracking  # noqa: E402
from grid import finetune_row_task, patch_labels, pretrain_row, slug  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


class SweepRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    overrides: list[str] = Field(default_factory=list)
    tasks: list[str] | None = None
    pretrained_from: str | None = None


class Sweep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment: str
    tasks: list[str]
    rows: list[SweepRow] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "Sweep":
        labels = [r.label for r in self.rows]
        if len(set(labels)) != len(labels):
            raise ValueError(f"rows: labels must be unique, got {labels}")
        for i, row in enumerate(self.rows):
            unknown = [t for t in (row.tasks or self.tasks) if t not in TASKS]
            if unknown:
                raise ValueError(f"rows[{i}] ({row.label!r}).tasks: unknown task(s) {unknown}; known: {sorted(TASKS)}")
            if row.pretrained_from is not None and row.pretrained_from not in labels[:i]:
                raise ValueError(f"rows[{i}] ({row.label!r}).pretrained_from: {row.pretrained_from!r} is not the "
                                 f"label of an earlier row ({labels[:i]})")
        return self


def read_sweep(path: Path) -> Sweep:
    try:
        return Sweep.model_validate(yaml.safe_load(Path(path).read_text()))
    except ValueError as error:
        raise ValueError(f"sweep file {path}: {error}") from None


class SweepParameters(FlowParameters):
    params_file: str = str(REPO / "params.yaml")
    sweep: str
    rows: list[str] = Field(default_factory=list)   # labels to run (default: every row)
    seeds: int = Field(1, ge=1)
    catalog: str | None = None        # default: the DVC-pinned catalog of paths.catalog
    out: str | None = None            # default: <paths.derived>/sweep/<sweep file stem>


def _labels_key(params) -> str:
    # Rows whose VQ-VAE and image encoder agree share patch labels; the others train their own.
    config = json.dumps([params.vqvae.model_dump(), params.model.image.model_dump()], sort_keys=True, default=str)
    return hashlib.sha256(config.encode()).hexdigest()[:12]


@flow(name="sweep", log_prints=True, task_runner=ProcessPoolTaskRunner(max_workers=2))
def sweep(parameters: SweepParameters) -> dict:
    logger = get_run_logger()
    spec = read_sweep(Path(parameters.sweep))
    unknown = [r for r in parameters.rows if r not in [row.label for row in spec.rows]]
    if unknown:
        raise ValueError(f"unknown sweep rows {unknown}; {parameters.sweep} has {[r.label for r in spec.rows]}")
    picked = {r.label for r in spec.rows if not parameters.rows or r.label in parameters.rows}
    for row in spec.rows:
        if row.label in picked and row.pretrained_from and row.pretrained_from not in picked:
            picked.add(row.pretrained_from)     # its pre-trained model is needed
    rows = [r for r in spec.rows if r.label in picked]
    base = [f"tracking.experiment={spec.experiment}"]
    params = parameters.load(base)
    tracking = Tracking.from_params(params)
    root = Path(parameters.out) if parameters.out else params.derived_dir / "sweep" / Path(parameters.sweep).stem
    catalog = parameters.catalog or str(data_stages.materialize(params).catalog)
    labels_futures: dict[str, object] = {}
    with tracking.run(f"sweep: {Path(parameters.sweep).stem}", tags={"pipeline": "sweep",
                                                                     "sweep.name": Path(parameters.sweep).stem}) as run_id:
        tracking.log_params(run_id, {"sweep": parameters.sweep, "presets": ",".join(parameters.presets),
                                     "overrides": " ".join(parameters.overrides), "seeds": parameters.seeds,
                                     "catalog": catalog})
        models: dict[str, list] = {}
        pending = []
        for row in rows:
            overrides = base + row.overrides
            row_params = parameters.load(overrides)
            row_run = tracking.start_run(f"row: {row.label}", {"sweep.name": Path(parameters.sweep).stem,
                                                               "sweep.row": row.label}, run_id)
            tracking.log_params(row_run, {"row.overrides": " ".join(row.overrides) or "(none)",
                                          "row.pretrained_from": row.pretrained_from or "(own)"})
            if row.pretrained_from:
                models[row.label] = models[row.pretrained_from]
            else:
                key = _labels_key(row_params)
                if key not in labels_futures:
                    labels_futures[key] = patch_labels.submit(parameters, catalog, overrides,
                                                              str(root / "patch_labels" / key / "labels"))
                models[row.label] = [pretrain_row.with_options(name=f"pretrain-{slug(row.label)}-seed{seed}").submit(
                    parameters, overrides, catalog, labels_futures[key],
                    str(root / slug(row.label) / f"seed-{seed}" / "pretrain"), row_run, seed)
                    for seed in range(parameters.seeds)]
            per_seed = [[finetune_row_task.with_options(name=f"finetune-{slug(row.label)}-{t}-seed{seed}").submit(
                parameters, overrides + [f"pretrain.seed={seed}"], t, model, catalog,
                str(root / slug(row.label) / f"seed-{seed}" / t), row_run) for t in (row.tasks or spec.tasks)]
                for seed, model in enumerate(models[row.label])]
            pending.append((row, row_run, per_seed))
        table = {}
        for row, row_run, per_seed in pending:
            seeds = []
            for futures in per_seed:
                headline, intervals = {}, {}
                for future in futures:
                    result = future.result()
                    headline |= result["headline"]
                    intervals |= result["intervals"]
                seeds.append({"headline": headline, "intervals": intervals})
            table[row.label] = _cell_values(seeds)
            tracking.log_metrics(row_run, _mlflow_names(table[row.label]))
            tracking.end_run(row_run)
            logger.info("%s: %s", row.label, ", ".join(f"{k} {_cell(v)}" for k, v in table[row.label].items()))
        result = {"sweep": parameters.sweep, "experiment": spec.experiment, "seeds": list(range(parameters.seeds)),
                  "presets": parameters.presets, "overrides": parameters.overrides,
                  "rows": {r.label: r.model_dump() for r in rows}, "table": table,
                  "split": params.evaluation.split, "catalog": catalog}
        root.mkdir(parents=True, exist_ok=True)
        (root / "sweep.json").write_text(json.dumps(result, indent=2))
        (root / "sweep.md").write_text(markdown(result))
        tracking.log_artifact(run_id, root / "sweep.md", "sweep")
        tracking.log_artifact(run_id, root / "sweep.json", "sweep")
    return {"run_id": run_id, "markdown": str(root / "sweep.md"), **result}


def _cell_values(seeds: list[dict]) -> dict[str, dict]:
    """One seed: the value and its bootstrap interval; more: the mean and the sample std over seeds."""
    cells = {}
    for metric in seeds[0]["headline"]:
        values = [s["headline"][metric] for s in seeds]
        if len(seeds) == 1:
            interval = seeds[0]["intervals"].get(metric, {})
            cells[metric] = {"value": values[0], "ci_low": interval.get("ci_low"), "ci_high": interval.get("ci_high")}
        else:
            cells[metric] = {"value": float(np.mean(values)), "std": float(np.std(values, ddof=1)), "per_seed": values}
    return cells


def _mlflow_names(cells: dict[str, dict]) -> dict[str, float]:
    out = {}
    for metric, cell in cells.items():
        name = metric.replace("@", "_at_")
        out[name] = cell["value"]
        out |= {f"{name}.{k}": cell[k] for k in ("ci_low", "ci_high", "std") if cell.get(k) is not None}
    return out


def _cell(cell: dict | None) -> str:
    if cell is None:
        return "–"
    if "std" in cell:
        return f"{cell['value']:.2f} ± {cell['std']:.2f}"
    if cell.get("ci_low") is None:
        return f"{cell['value']:.2f}"
    return f"{cell['value']:.2f} [{cell['ci_low']:.1f}, {cell['ci_high']:.1f}]"


def markdown(result: dict) -> str:
    metrics = list(dict.fromkeys(m for row in result["table"].values() for m in row))
    seeds = result["seeds"]
    lines = [f"# Sweep {Path(result['sweep']).stem} (MLflow experiment `{result['experiment']}`)", "",
             f"Catalog {result['catalog']}, {result['split']} split; presets {result['presets']}, overrides "
             f"{result['overrides']}; " + ("one seed, each cell the headline and its 95% bootstrap interval."
                                           if len(seeds) == 1 else
                                           f"pre-training seeds {seeds}, each cell the mean ± the sample std "
                                           "over seeds."), "",
             "| row | overrides | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
    for label, cells in result["table"].items():
        row = result["rows"][label]
        how = " ".join(f"`{o}`" for o in row["overrides"]) or "–"
        if row["pretrained_from"]:
            how += f" (from the pre-trained model of {row['pretrained_from']!r})"
        lines.append(f"| {label} | {how} | " + " | ".join(_cell(cells.get(m)) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    spec = next((a.removeprefix("--sweep=") for a in argv if a.startswith("--sweep=")), None)
    if spec is None:
        print("usage: python flows/sweep.py --sweep=FILE [--preset=NAME] [--set=key=value] [--row=LABEL] "
              "[--seeds=N] [--out=DIR]", file=sys.stderr)
        return 2
    parameters = SweepParameters(**flow_options(argv), sweep=str(Path(spec).resolve()),
                                 rows=[a.removeprefix("--row=") for a in argv if a.startswith("--row=")],
                                 seeds=next((int(a.removeprefix("--seeds=")) for a in argv
                                             if a.startswith("--seeds=")), 1),
                                 out=next((a.removeprefix("--out=") for a in argv if a.startswith("--out=")), None))
    read_sweep(Path(parameters.sweep))            # a bad file fails here, before any server starts
    out = sweep(parameters)
    print(Path(out["markdown"]).read_text())
    print(f"MLflow: experiment {out['experiment']}, parent run {out['run_id']}; table: {out['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
