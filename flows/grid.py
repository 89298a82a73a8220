"""Prefect tasks shared by the flows that train a grid of configurations (the ablation and the sweep): a
row's patch labels, its pre-training (or the no-pre-training initialisation) and one fine-tuning.

Each task loads ``Params`` from the flow's file, presets and overrides plus the row's own overrides, and
passes paths and run ids, never tensors. A grid stopped part-way resumes when run again: pre-training from
its last checkpoint, and a fine-tuning already finished with the same config is not run again.
"""

from __future__ import annotations

import re
from pathlib import Path

from prefect import task

from fashionvlp.config import FlowParameters
from fashionvlp.stages import finetune as finetune_stage
from fashionvlp.stages import pretrain as pretrain_stage
from fashionvlp.stages import vqvae as vqvae_stage
from fashionvlp.tracking.mlflow_tracking import Tracking


# Pre-training in a grid's process pool runs on one thread per worker, ahead of the flow's own overrides
# (a --set=pretrain.threads=N still wins). Why: two workers of two torch/OpenMP threads each on two cores
# ran KG-FLIP's tiny pre-training at 2-10 samples/s against 37 with one thread each, since every small op's
# parallel region waits on a thread that is not running. The thread count is part of the result (see
# ``fashionvlp.env.fix_threads``), so a grid's row reproduces with this count, not the retrain flow's 2.
POOLED_PRETRAIN_THREADS = 1


def slug(label: str) -> str:
    """A row label as a directory name."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


@task(name="vqvae-patch-labels")
def patch_labels(parameters: FlowParameters, catalog: str, overrides: list[str] | None = None,
                 labels_dir: str | None = None) -> str:
    """Trains the VQ-VAE unless ``labels_dir`` (default: the config's) already holds patch labels."""
    params = parameters.load(overrides or [])
    labels = Path(labels_dir) if labels_dir else vqvae_stage.patch_labels_dir(params)
    if not (labels / "meta.json").is_file():
        vqvae_stage.train_vqvae(params, Path(catalog), out_dir=labels.parent / "vqvae" if labels_dir else None,
                                labels_dir=labels)
    return str(labels)


@task(name="pretrain-row")
def pretrain_row(parameters: FlowParameters, overrides: list[str] | None, catalog: str, labels: str,
                 out: str, parent_run_id: str, seed: int = 0) -> str:
    """``overrides`` None: the no-pre-training row (its random initialisation is seeded by ``seed``)."""
    pooled = parameters.model_copy(update={"overrides": [f"pretrain.threads={POOLED_PRETRAIN_THREADS}",
                                                         *parameters.overrides]})
    params = pooled.load((overrides or []) + [f"pretrain.seed={seed}"])
    if overrides is None:
        return str(pretrain_stage.initial_model(params, Path(catalog), Path(out)))
    return str(pretrain_stage.pretrain(params, Path(catalog), Path(labels), Path(out),
                                       tracking=Tracking.from_params(params), parent_run_id=parent_run_id).model_dir)


@task(name="finetune-row-task")
def finetune_row_task(parameters: FlowParameters, overrides: list[str] | None, task_name: str, model_dir: str,
                      catalog: str, out: str, parent_run_id: str) -> dict:
    params = parameters.load(overrides or [])
    result = finetune_stage.finetune(params, task_name, Path(model_dir), Path(catalog), Path(out),
                                     tracking=Tracking.from_params(params), parent_run_id=parent_run_id,
                                     reuse_finished=True)
    return {"task": task_name, "headline": result.metrics["headline"],
            "intervals": result.metrics.get("intervals", {}), "metrics_path": str(Path(out) / "metrics.json")}
