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

    from fashionvlp.models.image_encoders import ModelInputError
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
    from fashionvlp.tasks.base import TaskEvaluation

    cfg = model.model_config
    out.mkdir(parents=True, exist_ok=True)
    ev = TaskEvaluation(params, model, heads, catalog, params.evaluation.split, out, cfg.image.image_size,
                        cfg.text.max_length, Path(model_dir))
    metrics = task.evaluate(ev)
    meta = json.loads((Path(model_dir) / "model.json").read_text())
    return {"task": task.name, "split": ev.split, "model": str(model_dir), "arch": meta["arch"],
            "steps": meta.get("steps"), **metrics, "headline": task.headline(metrics)}


def log_evaluation(tracking, run_id: str, result: dict, out: Path, json_path: Path) -> None:
    from fashionvlp.stages.finetune import flat_numbers

    task = result["task"]
    tracking.log_params(run_id, {"split": result["split"], "model": result["model"]}
                        | {f"protocol.{k}": v["protocol"] if isinstance(v, dict) and "protocol" in v else v
                           for k, v in result.items() if k == "protocol" or (isinstance(v, dict) and "protocol" in v)})
    tracking.log_metrics(run_id, flat_numbers({k: v for k, v in result.items() if k not in ("steps",)}, task))
    tracking.log_artifact(run_id, json_path, "eval")
    if (out / "plots").is_dir():
        tracking.log_artifacts(run_id, out / "plots", "plots")


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
