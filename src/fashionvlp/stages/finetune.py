"""Fine-tuning stage: start from a saved (pre-trained) model, train one downstream task with the same
Accelerate loop, save the model with its task heads, and evaluate the task on the evaluation split.

The tasks are plug-ins (``fashionvlp.tasks``): each names its objectives, optionally its own training
data (FashionIQ triplets, outfits), and its evaluation.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from fashionvlp.config import Params


@dataclass(frozen=True)
class FinetuneResult:
    model_dir: Path
    metrics: dict
    run_id: str | None


def finetune_dir(params: Params, task: str) -> Path:
    return params.derived_dir / "finetune" / params.model.arch / task


def task_fits_arch(task_name: str, arch: str) -> bool:
    from fashionvlp.models.registry import _architecture
    from fashionvlp.tasks.base import get_task

    return get_task(task_name).requires <= _architecture(arch).capabilities


def missing_catalog_data(task_name: str, catalog: Path, splits: tuple[str, ...]) -> str | None:
    """Why ``catalog`` cannot train and evaluate the task (a table it needs is empty in one of ``splits``),
    or None. A shop's own catalog has products but often no FashionIQ triplets or outfits."""
    import pyarrow.compute as pc

    from fashionvlp.data.catalog_io import read_catalog
    from fashionvlp.tasks.base import get_task

    tables = read_catalog(catalog).tables
    for name in get_task(task_name).catalog_tables:
        empty = [s for s in splits if pc.sum(pc.equal(tables[name]["split"], s)).as_py() in (None, 0)]
        if empty:
            return f"no {name} in the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''}"
    return None


def _fingerprint(params: Params, task: str, init_from: Path) -> str:
    from fashionvlp.stages.pretrain import config_fingerprint

    return config_fingerprint(params) + json.dumps([task, str(init_from), getattr(params.finetune, task).model_dump()])


def finished_metrics(params: Params, task: str, init_from: Path, out: Path) -> dict | None:
    """The metrics of a fine-tuning that already finished in ``out`` with this config and start, else None.
    ``metrics.json`` is written last, after the model and the evaluation, so its presence means done."""
    out = Path(out)
    fingerprint = out / "config_fingerprint.txt"
    if not (out / "metrics.json").is_file() or not (out / "model").is_dir() or not fingerprint.is_file():
        return None
    if fingerprint.read_text() != _fingerprint(params, task, init_from):
        return None
    return json.loads((out / "metrics.json").read_text())


def finetune(params: Params, task: str, init_from: Path, catalog: Path | None = None, out: Path | None = None,
             tracking=None, parent_run_id: str | None = None, reuse_finished: bool = False) -> FinetuneResult:
    """``reuse_finished``: a fine-tuning already finished in ``out`` with the same config and start is not
    run again (its metrics are returned, and no MLflow run is made): an interrupted grid of runs resumes."""
    from accelerate import PartialState

    from fashionvlp.data.pretrain_dataset import EpochSampler
    from fashionvlp.errors import ModelInputError
    from fashionvlp.stages.pretrain import prepare
    from fashionvlp.tasks.base import TaskData, get_task
    from fashionvlp.tracking.mlflow_tracking import maybe_run
    from fashionvlp.training.loop import train, use_cpu

    spec = get_task(task)
    if not task_fits_arch(task, params.model.arch):
        raise ModelInputError(f"task {task!r} needs {', '.join(sorted(spec.requires))}, which the "
                              f"{params.model.arch} architecture does not have")
    task_cfg = getattr(params.finetune, task)
    loop_cfg = params.pretrain.model_copy(update={
        "objectives": spec.objectives, "combine": "sum", "steps": task_cfg.steps,
        "batch_size": task_cfg.batch_size, "lr": task_cfg.lr, "warmup_steps": task_cfg.warmup_steps,
        "grad_accum": 1, "checkpoint_every": max(task_cfg.steps, 1), "threads": params.finetune.threads,
        "same_subcategory": task_cfg.same_subcategory, "views": task_cfg.views,
        "head_lr_multiplier": task_cfg.head_lr_multiplier})
    out = Path(out or finetune_dir(params, task))
    if reuse_finished and (metrics := finished_metrics(params, task, init_from, out)) is not None:
        return FinetuneResult(out / "model", metrics, None)
    catalog_root = Path(catalog or params.catalog_dir)
    prepared = prepare(params, catalog_root, out=out, objectives=spec.objectives, init_from=init_from,
                       train_cfg=loop_cfg)
    model = prepared.suite.model
    if spec.training_data is not None:
        from fashionvlp.data.catalog_io import read_catalog

        if task_cfg.same_subcategory:
            raise ModelInputError(f"finetune.{task}.same_subcategory: {task} trains on its own rows, not on the "
                                  f"catalog's products; set it to 0")
        if task_cfg.views != "all":
            raise ModelInputError(f"finetune.{task}.views: {task} trains on its own rows, not on the catalog's "
                                  f"products' views; leave it at 'all'")
        cfg = model.model_config
        dataset, collate = spec.training_data(TaskData(read_catalog(catalog_root), model, cfg.image.image_size,
                                                       cfg.text.max_length, loop_cfg.seed))
        prepared = replace(prepared, dataset=dataset, collate=collate, sampler=EpochSampler(len(dataset), loop_cfg.seed))
    model_dir = out / "model"
    if not PartialState(cpu=use_cpu()).is_main_process:
        tracking = None  # one MLflow run per fine-tuning, logged by the main process
    with maybe_run(tracking, f"finetune-{task}-{model.arch}", {"stage": "finetune", "task": task},
                   parent_run_id) as run_id:
        if tracking is not None:
            tracking.log_params(run_id, {f"finetune.{k}": v for k, v in task_cfg.model_dump().items()}
                                | {"task": task, "init_from": str(init_from), "catalog_md5": prepared.catalog_md5,
                                   "train_samples": len(prepared.dataset)})
        result = train(prepared.suite, prepared.dataset, prepared.sampler, prepared.collate, loop_cfg, out, tracking,
                       run_id, _fingerprint(params, task, init_from), label=f"finetune-{task}")
        metrics = {}
        if result.accelerator.is_main_process:  # under DDP, one process writes and evaluates
            metrics = _save_and_evaluate(params, spec, prepared, result, model_dir, init_from, catalog_root, out)
            if tracking is not None:
                from fashionvlp.stages.evaluate import log_evaluation

                log_evaluation(tracking, run_id, metrics, out, out / "metrics.json")
    return FinetuneResult(model_dir, metrics, run_id)


def _save_and_evaluate(params: Params, spec, prepared, result, model_dir: Path, init_from: Path,
                       catalog_root: Path, out: Path) -> dict:
    from safetensors.torch import save_model

    from fashionvlp.data.catalog_io import read_catalog
    from fashionvlp.models.registry import save_pretrained
    from fashionvlp.stages.evaluate import run_task_evaluation
    from fashionvlp.stages.pretrain import loss_summary

    model = prepared.suite.model
    save_pretrained(model, model_dir, model.model_config,
                    extra={"task": spec.name, "finetuned_from": str(init_from), "steps": result.state.step,
                           "catalog_md5": prepared.catalog_md5})
    save_model(prepared.suite.objectives, str(model_dir / "objectives.safetensors"))
    metrics = run_task_evaluation(params, spec, model, prepared.suite.objectives, read_catalog(catalog_root),
                                  model_dir, out)
    for name in spec.serving_files:
        shutil.copy2(out / name, model_dir / name)
    metrics["losses"] = loss_summary(result.history, list(spec.objectives))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def flat_numbers(tree: dict, prefix: str) -> dict[str, float]:
    """Nested numbers → MLflow-safe dotted names (``R@10`` becomes ``recall_at_10``)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}.{str(key).replace('R@', 'recall_at_').replace('@', '_at_')}"
        if isinstance(value, dict):
            out.update(flat_numbers(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            if abs(float(value)) != float("inf"):
                out[name] = float(value)
    return out
