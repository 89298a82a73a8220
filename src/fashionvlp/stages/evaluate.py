"""Evaluation stage: one downstream task of a saved model on a split, under the task's protocol.

Writes ``<out>/<task>.json`` (metrics, protocol label, split, model, headline numbers) and the task's
plot data under ``<out>/plots/``; the MLflow run (nested under the pipeline's) gets the metrics under
stable names (``xmr.paper.ITR.recall_at_10``), the JSON and the plots.
"""

from __future__ import annotations

import json
from pathlib import Path

from fashionvlp.config import Params
from fashionvlp.data.catalog_io import read_catalog


def evaluation_dir(params: Params) -> Path:
    return params.derived_dir / "eval" / params.model.arch


def task_heads(params: Params, task, model, model_dir: Path, catalog):
    """The task's objectives with the weights saved beside a fine-tuned model (None if they have none)."""
    from safetensors.torch import load_file

    from fashionvlp.errors import ModelInputError
    from fashionvlp.objectives.base import build_objectives
    from fashionvlp.stages.pretrain import objective_context

    heads = build_objectives(list(task.objectives), model, objective_context(params.pretrain, catalog.schema))
    if not any(True for _ in heads.parameters()):
        return heads
    meta = json.loads((Path(model_dir) / "model.json").read_text())
    weights = Path(model_dir) / "objectives.safetensors"
    if meta.get("task") != task.name or not weights.is_file():
        raise ModelInputError(f"{model_dir} has no {task.name} heads (it was saved by "
                              f"{'fine-tuning for ' + meta['task'] if meta.get('task') else 'pre-training'}); "
                              f"fine-tune it first: fashionvlp finetune --task {task.name} --init-from {model_dir}")
    state = {k: v for k, v in load_file(str(weights)).items()}
    missing, unexpected = heads.load_state_dict(state, strict=False)
    if missing:
        raise ModelInputError(f"{weights}: the {task.name} heads do not match this catalog's schema "
                              f"(missing {missing[:5]}); fine-tune on this catalog")
    return heads


def run_task_evaluation(params: Params, task, model, heads, catalog, model_dir: Path, out: Path) -> dict:
    """The task's metrics, its headline numbers with 95% bootstrap intervals, its attribute-oracle ceiling
    where the catalog has labels, and ``<out>/<task>.outcomes.npz`` (the per-unit evidence the gate pairs)."""
    from fashionvlp.data.versioning import dir_md5
    from fashionvlp.env import fix_threads
    from fashionvlp.evaluation.outcomes import outcomes_path, write_outcomes
    from fashionvlp.tasks.base import TaskEvaluation

    cfg, ev_cfg = model.model_config, params.evaluation
    threads = fix_threads(ev_cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    ev = TaskEvaluation(params, model, heads, catalog, ev_cfg.split, out, cfg.image.image_size,
                        cfg.text.max_length, Path(model_dir))
    metrics = task.evaluate(ev)
    outcomes = metrics.pop("outcomes", {})
    headline = task.headline(metrics)
    intervals = _intervals(task.name, outcomes, headline, ev_cfg)
    ceiling = metrics.get("ceiling")
    if ceiling is not None:
        ceiling_outcomes = ceiling.pop("outcomes", {})
        ceiling["headline"] = task.headline(ceiling)
        ceiling["intervals"] = _intervals(f"{task.name} ceiling", ceiling_outcomes, ceiling["headline"], ev_cfg)
        ceiling["of_ceiling"] = {k: 100.0 * v / ceiling["headline"][k] for k, v in headline.items()
                                 if ceiling["headline"].get(k)}
    fingerprint = {"task": task.name, "split": ev.split, "catalog_md5": dir_md5(catalog.root),
                   "protocols": protocol_labels(metrics), "seed": ev_cfg.seed}
    path = write_outcomes(outcomes_path(out, task.name), outcomes, fingerprint) if outcomes else None
    meta = json.loads((Path(model_dir) / "model.json").read_text())
    return {"task": task.name, "split": ev.split, "model": str(model_dir), "arch": meta["arch"],
            "steps": meta.get("steps"), **metrics, "headline": headline, "intervals": intervals,
            "evaluation": {**fingerprint, "outcomes_file": str(path) if path else None, **threads,
                           "bootstrap_resamples": ev_cfg.bootstrap_resamples}}


def _intervals(what: str, outcomes: dict, headline: dict[str, float], ev_cfg) -> dict[str, dict]:
    from fashionvlp.evaluation.bootstrap import interval

    out = {}
    for name, outcome in outcomes.items():
        ci = interval(outcome, ev_cfg.seed, ev_cfg.bootstrap_resamples, what=f"{what} {name}")
        if name in headline and abs(ci.value - headline[name]) > 1e-6:
            raise RuntimeError(f"{what} {name}: the per-unit outcomes give {ci.value}, the headline {headline[name]}")
        out[name] = ci.as_dict()
    return out


def protocol_labels(result: dict) -> list[str]:
    """Every protocol label in a result (top level and one level down), for the evaluation's fingerprint."""
    labels = [result["protocol"]] if isinstance(result.get("protocol"), str) else []
    labels += [v["protocol"] for k, v in result.items() if k != "ceiling" and isinstance(v, dict) and "protocol" in v]
    return sorted(labels)


def log_evaluation(tracking, run_id: str, result: dict, out: Path, json_path: Path) -> None:
    from fashionvlp.stages.finetune import flat_numbers

    task = result["task"]
    tracking.log_params(run_id, {"split": result["split"], "model": result["model"]}
                        | {f"protocol.{k}": v["protocol"] if isinstance(v, dict) and "protocol" in v else v
                           for k, v in result.items() if k == "protocol" or (isinstance(v, dict) and "protocol" in v)}
                        | {f"evaluation.{k}": v for k, v in result.get("evaluation", {}).items()
                           if k in ("seed", "torch_threads", "bootstrap_resamples", "catalog_md5")})
    numbers = {k: v for k, v in result.items() if k not in ("steps", "intervals", "evaluation")}
    if "ceiling" in numbers:
        numbers["ceiling"] = {k: v for k, v in numbers["ceiling"].items() if k != "intervals"}
    metrics = (flat_numbers(numbers, task) | interval_metrics(f"{task}.headline", result)
               | interval_metrics(f"{task}.ceiling.headline", result.get("ceiling", {})))
    tracking.log_metrics(run_id, metrics)
    tracking.log_artifact(run_id, json_path, "eval")
    outcomes = result.get("evaluation", {}).get("outcomes_file")
    if outcomes:
        tracking.log_artifact(run_id, Path(outcomes), "eval")
    if (out / "plots").is_dir():
        tracking.log_artifacts(run_id, out / "plots", "plots")


def interval_metrics(prefix: str, result: dict) -> dict[str, float]:
    """``<prefix>.<headline>.ci_low`` / ``.ci_high`` (MLflow names: ``@`` → ``_at_``)."""
    return {f"{prefix}.{name}.{side}".replace("@", "_at_"): ci[side]
            for name, ci in result.get("intervals", {}).items() for side in ("ci_low", "ci_high")}


def evaluate(params: Params, task_name: str, model_dir: Path, catalog: Path | None = None, out: Path | None = None,
             tracking=None, parent_run_id: str | None = None) -> dict:
    """Evaluates ``task_name`` on ``params.evaluation.split``; returns the result (with ``run_id``)."""
    from fashionvlp.models.registry import load_pretrained
    from fashionvlp.tasks.base import check_task_fits, get_task
    from fashionvlp.tracking.mlflow_tracking import maybe_run

    task = get_task(task_name)
    cat = read_catalog(catalog or params.catalog_dir)
    model = load_pretrained(Path(model_dir))
    check_task_fits(task, model)
    heads = task_heads(params, task, model, Path(model_dir), cat)
    out = Path(out or evaluation_dir(params))
    result = run_task_evaluation(params, task, model, heads, cat, Path(model_dir), out)
    json_path = out / f"{task.name}.json"
    json_path.write_text(json.dumps(result, indent=2))
    with maybe_run(tracking, f"evaluate-{task.name}-{result['arch']}", {"stage": "evaluate", "task": task.name},
                   parent_run_id) as run_id:
        if tracking is not None:
            log_evaluation(tracking, run_id, result, out, json_path)
    result["run_id"] = run_id
    return result
