"""Fine-tuning stage: start from a saved (pre-trained) model, train one downstream task with the same
Accelerate loop, save the model with its task head, and evaluate the task on the evaluation split.

Tasks built so far:
- ``xmr``: image↔text retrieval, fine-tuned with ITC on the unimodal embeddings, evaluated under the
  papers' and the full-gallery protocols;
- ``classification``: CR and SCR heads on the fused pooled output, accuracy and macro-F1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fashionvlp.config import Params

TASK_OBJECTIVES = {"xmr": {"itc": 1.0}, "classification": {"classification": 1.0}}


@dataclass(frozen=True)
class FinetuneResult:
    model_dir: Path
    metrics: dict
    run_id: str | None


def finetune_dir(params: Params, task: str) -> Path:
    return params.derived_dir / "finetune" / params.model.arch / task


def finetune(params: Params, task: str, init_from: Path, catalog: Path | None = None, out: Path | None = None,
             tracking=None, parent_run_id: str | None = None) -> FinetuneResult:
    import fashionvlp.tasks.classification  # noqa: F401  (registers the classification objective)
    from fashionvlp.models.image_encoders import ModelInputError
    from fashionvlp.stages.pretrain import config_fingerprint, prepare
    from fashionvlp.tracking.mlflow_tracking import maybe_run
    from accelerate import PartialState

    from fashionvlp.training.loop import train, use_cpu

    if task not in TASK_OBJECTIVES:
        raise ModelInputError(f"unknown task {task!r}; built so far: {', '.join(TASK_OBJECTIVES)}")
    task_cfg = getattr(params.finetune, task)
    loop_cfg = params.pretrain.model_copy(update={
        "objectives": TASK_OBJECTIVES[task], "combine": "sum", "steps": task_cfg.steps,
        "batch_size": task_cfg.batch_size, "lr": task_cfg.lr, "warmup_steps": task_cfg.warmup_steps,
        "grad_accum": 1, "checkpoint_every": max(task_cfg.steps, 1)})
    out = Path(out or finetune_dir(params, task))
    catalog_root = Path(catalog or params.catalog_dir)
    prepared = prepare(params, catalog_root, out=out, objectives=TASK_OBJECTIVES[task], init_from=init_from,
                       train_cfg=loop_cfg)
    model = prepared.suite.model
    model_dir = out / "model"
    if not PartialState(cpu=use_cpu()).is_main_process:
        tracking = None  # one MLflow run per fine-tuning, logged by the main process
    with maybe_run(tracking, f"finetune-{task}-{model.arch}", {"stage": "finetune", "task": task},
                   parent_run_id) as run_id:
        if tracking is not None:
            tracking.log_params(run_id, {f"finetune.{k}": v for k, v in task_cfg.model_dump().items()}
                                | {"task": task, "init_from": str(init_from), "catalog_md5": prepared.catalog_md5})
        fingerprint = config_fingerprint(params) + json.dumps([task, str(init_from), task_cfg.model_dump()])
        result = train(prepared.suite, prepared.dataset, prepared.sampler, prepared.collate, loop_cfg, out, tracking,
                       run_id, fingerprint)
        metrics = {}
        if result.accelerator.is_main_process:  # under DDP, one process writes and evaluates
            metrics = _save_and_evaluate(params, task, prepared, result, model_dir, init_from, catalog_root, out)
            if tracking is not None:
                tracking.log_metrics(run_id, _flat_numbers(metrics, task), step=result.state.step)
                tracking.log_artifact(run_id, out / "metrics.json", "eval")
    return FinetuneResult(model_dir, metrics, run_id)


def _save_and_evaluate(params: Params, task: str, prepared, result, model_dir: Path, init_from: Path,
                       catalog_root: Path, out: Path) -> dict:
    from safetensors.torch import save_model

    from fashionvlp.data.catalog_io import read_catalog
    from fashionvlp.models.registry import save_pretrained
    from fashionvlp.stages.evaluate import evaluate_xmr
    from fashionvlp.stages.pretrain import loss_summary
    from fashionvlp.tasks.classification import evaluate_classification

    model = prepared.suite.model
    save_pretrained(model, model_dir, model.model_config,
                    extra={"task": task, "finetuned_from": str(init_from), "steps": result.state.step,
                           "catalog_md5": prepared.catalog_md5})
    save_model(prepared.suite.objectives, str(model_dir / "objectives.safetensors"))
    if task == "xmr":
        metrics = evaluate_xmr(params, model_dir, catalog_root, out=out, tracking=None)
    else:
        cat = read_catalog(catalog_root)
        products = [p for p in cat.iter_products() if p.split == params.evaluation.split]
        cfg = model.model_config
        metrics = {"task": "classification", "split": params.evaluation.split, "products": len(products),
                   **evaluate_classification(model, prepared.suite.objectives["classification"], cat, products,
                                             cfg.image.image_size, cfg.text.max_length)}
    metrics["losses"] = loss_summary(result.history, list(TASK_OBJECTIVES[task]))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _flat_numbers(tree: dict, prefix: str) -> dict[str, float]:
    """Nested numbers → MLflow-safe dotted names (``R@10`` becomes ``recall_at_10``)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}.{str(key).replace('R@', 'recall_at_')}"
        if isinstance(value, dict):
            out.update(_flat_numbers(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out
