"""Pre-training stage: checks every input, builds model + objectives, trains, saves, tracks.

Everything that can be wrong with the inputs (checkpoint paths, tokenizer, patch labels' grid and
catalog version, objectives the architecture cannot run) fails here, before the first step.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from fashionvlp.config import Params
from fashionvlp.data.catalog_io import read_catalog
from fashionvlp.data.versioning import data_version, dir_md5, dvc_file_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainResult:
    out: Path
    model_dir: Path
    summary: dict
    run_id: str | None
    finished: bool


def pretrain_dir(params: Params) -> Path:
    return params.derived_dir / "pretrain" / params.model.arch


def config_fingerprint(params: Params) -> str:
    relevant = {k: v for k, v in params.model_dump(mode="json").items() if k in ("model", "pretrain", "vqvae")}
    relevant["model"].pop("image_descriptor")  # frozen, read by fine-tuned heads only: a fine-tuning attaches it
    relevant["pretrain"] = {k: v for k, v in relevant["pretrain"].items()
                            if k not in ("log_every", "checkpoint_every", "keep_checkpoints", "resume", "num_workers")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def loss_summary(history: list[dict], objectives: list[str], fraction: float = 0.2) -> dict:
    """Per objective: mean loss over the first and the last ``fraction`` of logged windows where it ran."""
    out = {}
    for name in objectives:
        values = [row[f"loss/{name}"] for row in history if f"loss/{name}" in row]
        if not values:
            continue
        k = max(1, int(len(values) * fraction))
        first, last = sum(values[:k]) / k, sum(values[-k:]) / k
        out[name] = {"first": round(first, 4), "last": round(last, 4), "fell": last < first, "windows": len(values)}
    return out


@dataclass
class Prepared:
    """Everything training needs, built and checked (no step taken yet)."""

    suite: object
    dataset: object
    collate: object
    sampler: object
    pseudo_attributes: list[str]
    catalog_md5: str
    train_products: int
    patch_labels: Path | None


def _fresh_model(params: Params, model_cfg, out: Path, texts: list[str]):
    from accelerate import PartialState

    from fashionvlp.models.registry import build_model
    from fashionvlp.training.loop import checkpoint_dirs, use_cpu

    tokenizer_dir = out / "tokenizer"
    process = PartialState(cpu=use_cpu())  # under `accelerate launch` or torchrun, one of several processes
    with process.main_process_first():
        # A resumed scratch-BERT run keeps the tokenizer it started with, and the other processes of a
        # distributed run read the one the main process has just built.
        text_cfg = model_cfg.text
        reuse = checkpoint_dirs(out) or not process.is_main_process
        if text_cfg.source == "scratch" and text_cfg.tokenizer is None and tokenizer_dir.is_dir() and reuse:
            text_cfg = text_cfg.model_copy(update={"tokenizer": tokenizer_dir})
        return build_model(model_cfg.model_copy(update={"text": text_cfg}), params.resolve, texts, tokenizer_dir)


def objective_context(cfg, schema, codebook_size: int = 0, num_pseudo_attributes: int = 0):
    """What objectives and task heads size themselves by: the schema's classes and the loop's masking."""
    from fashionvlp.data.pretrain_dataset import attribute_vocabulary, label_maps
    from fashionvlp.objectives.base import ObjectiveContext

    maps = label_maps(schema)
    vocabulary = attribute_vocabulary(schema)
    return ObjectiveContext(mask_probability=cfg.mask_probability, mpfc_mask_ratio=cfg.mpfc_mask_ratio,
                            num_pseudo_attributes=num_pseudo_attributes, codebook_size=codebook_size,
                            num_categories=len(maps["category"]), num_subcategories=len(maps["subcategory"]),
                            attributes=tuple((a, len(v)) for a, v in vocabulary.items()),
                            attribute_forms=tuple(tuple(tuple(schema.surface_forms(a, value)) for value in values)
                                                  for a, values in vocabulary.items()))


def prepare(params: Params, catalog: Path | None = None, patch_labels: Path | None = None,
            out: Path | None = None, objectives: dict[str, float] | None = None, init_from: Path | None = None,
            train_cfg=None) -> Prepared:
    """Reads and checks every input, then builds model, objectives and dataset. Raises ``ModelInputError``.

    ``init_from``: start from a saved model (fine-tuning) instead of the configured encoders; it must be
    of ``model.arch``. ``train_cfg`` replaces ``params.pretrain`` for the loop settings.
    """
    import torch

    from fashionvlp.data.knowledge import mine_pseudo_attributes
    from fashionvlp.data.patch_labels import read_patch_labels
    from fashionvlp.data.pretrain_dataset import (EpochSampler, GroupedEpochSampler, ImageTransform, PretrainCollator,
                                                 PretrainDataset)
    from fashionvlp.errors import ModelInputError
    from fashionvlp.models.image_descriptor import build_image_descriptor
    from fashionvlp.models.registry import load_pretrained
    from fashionvlp.objectives import OBJECTIVES
    from fashionvlp.objectives.combine import ObjectiveSuite
    from fashionvlp.stages.vqvae import patch_labels_dir

    cfg, model_cfg = train_cfg or params.pretrain, params.model
    weights = objectives or cfg.active_objectives
    out = Path(out or pretrain_dir(params))
    catalog_root = Path(catalog or params.catalog_dir)
    cat = read_catalog(catalog_root)
    products = [p for p in cat.iter_products() if p.split == "train"]
    texts = [p.text for p in products]

    unknown = [n for n in weights if n not in OBJECTIVES]
    if unknown:
        raise ModelInputError(f"unknown objective(s) {unknown}; known: {', '.join(sorted(OBJECTIVES))}")
    labels = None
    catalog_md5 = dir_md5(catalog_root)
    if any(OBJECTIVES[n].cls.needs_patch_labels for n in weights):
        labels = read_patch_labels(Path(patch_labels or patch_labels_dir(params)))
    torch.manual_seed(cfg.seed)
    if init_from is not None:
        model = load_pretrained(Path(init_from), expect_arch=model_cfg.arch)
        model_cfg = model.model_config
        if model_cfg.image_descriptor != params.model.image_descriptor:
            # Frozen and packaged, so it needs no pre-training: the configured one replaces the checkpoint's.
            model.image_descriptor = build_image_descriptor(params.model.image_descriptor,
                                                            model.image_encoder.normalization)
            model_cfg = model.model_config = model_cfg.model_copy(
                update={"image_descriptor": params.model.image_descriptor})
    else:
        model = _fresh_model(params, model_cfg, out, texts)
    if labels is not None:
        labels.check(model.image_encoder.grid, model_cfg.image.image_size, catalog_md5)

    pseudo = []
    if "pac" in weights:
        pseudo = mine_pseudo_attributes(texts, cfg.pac.num_pseudo_attributes, cfg.pac.min_count, cfg.pac.max_ngram)
    context = objective_context(cfg, cat.schema, labels.codebook_size if labels is not None else 0, len(pseudo))
    suite = ObjectiveSuite(model, weights, cfg.combine, cfg.seed, context)
    transform = ImageTransform(model_cfg.image.image_size, model.image_encoder.normalization)
    dataset = PretrainDataset(cat, products, model.tokenizer, transform, model_cfg.text.max_length, pseudo,
                              cfg.pac.max_ngram, labels, cfg.hflip, cfg.seed, cfg.views)
    collate = PretrainCollator(model.tokenizer.pad_token_id, max(len(pseudo), 1))
    sampler = (GroupedEpochSampler([p.subcategory for p in products], cfg.same_subcategory, cfg.seed)
               if cfg.same_subcategory else EpochSampler(len(dataset), cfg.seed))
    return Prepared(suite, dataset, collate, sampler, pseudo, catalog_md5, len(products),
                    labels.root if labels is not None else None)


def _log_inputs(tracking, run_id: str, params: Params, prepared: Prepared, out: Path, catalog_root: Path) -> None:
    version = data_version(params.root, dvc_file_for(catalog_root))
    flat = params.flat()
    tracking.log_params(run_id, {k: v for k, v in flat.items() if k.split(".")[0] in ("model", "pretrain")}
                        | {"catalog_md5": prepared.catalog_md5, "train_products": prepared.train_products,
                           "patch_labels": str(prepared.patch_labels or "none")})
    tracking.set_tags(run_id, {"data.dvc_md5": str(version.dvc_md5), "data.catalog_md5": prepared.catalog_md5,
                               "data.workspace_matches": str(version.workspace_matches)}
                      | ({"mlflow.source.git.commit": version.git_sha} if version.git_sha else {}))
    resolved = out / "resolved_config.json"
    resolved.write_text(json.dumps(params.model_dump(mode="json"), indent=2))
    tracking.log_artifact(run_id, resolved, "config")


def pretrain(params: Params, catalog: Path | None = None, patch_labels: Path | None = None, out: Path | None = None,
             tracking=None, parent_run_id: str | None = None, stop_after: int | None = None) -> PretrainResult:
    """Trains (or resumes) and writes ``out/model``, ``out/summary.json``; returns small references."""
    from accelerate import PartialState
    from safetensors.torch import save_model

    from fashionvlp.models.image_descriptor import keep_no_frozen_features
    from fashionvlp.models.registry import save_pretrained
    from fashionvlp.tracking.mlflow_tracking import maybe_run
    from fashionvlp.training.loop import train, use_cpu

    cfg, model_cfg = params.pretrain, params.model
    out = Path(out or pretrain_dir(params))
    catalog_root = Path(catalog or params.catalog_dir)
    prepared = prepare(params, catalog_root, patch_labels, out)
    # Pre-training resumes to the bit: frozen image features kept per key would come from batches that a
    # resumed run composes differently (EfficientNet's output moves by up to 3e-5 with the batch), and in
    # about one pass over the views they would seldom be read again anyway.
    keep_no_frozen_features(prepared.suite.model)
    if not PartialState(cpu=use_cpu()).is_main_process:
        tracking = None  # one MLflow run per training, logged by the main process
    out.mkdir(parents=True, exist_ok=True)
    (out / "pseudo_attributes.json").write_text(json.dumps(prepared.pseudo_attributes))
    model_dir = out / "model"
    with maybe_run(tracking, f"pretrain-{model_cfg.arch}", {"stage": "pretrain", "arch": model_cfg.arch},
                   parent_run_id) as run_id:
        if tracking is not None:
            _log_inputs(tracking, run_id, params, prepared, out, catalog_root)
        result = train(prepared.suite, prepared.dataset, prepared.sampler, prepared.collate, cfg, out, tracking,
                       run_id, config_fingerprint(params), stop_after)
        summary = {"arch": model_cfg.arch, "combine": cfg.combine, "objectives": cfg.active_objectives,
                   "steps": result.state.step, "samples": result.state.samples, "resumed_from": result.resumed_from,
                   "catalog_md5": prepared.catalog_md5,
                   "losses": loss_summary(result.history, list(cfg.active_objectives))}
        if result.accelerator.is_main_process:
            save_pretrained(result.suite.model, model_dir, model_cfg,
                            extra={"pretrain_run_id": run_id, "catalog_md5": prepared.catalog_md5,
                                   "steps": result.state.step, "pseudo_attributes": len(prepared.pseudo_attributes)})
            save_model(result.suite.objectives, str(model_dir / "objectives.safetensors"))
            (out / "summary.json").write_text(json.dumps(summary, indent=2))
            if tracking is not None:
                tracking.log_metrics(run_id, {f"summary.{name}.{k}": v for name, row in summary["losses"].items()
                                              for k, v in row.items() if k in ("first", "last")}, step=result.state.step)
                tracking.log_artifact(run_id, out / "summary.json")
                tracking.log_artifacts(run_id, model_dir, "model")
    return PretrainResult(out, model_dir, summary, run_id, result.finished)


def initial_model(params: Params, catalog: Path | None = None, out: Path | None = None) -> Path:
    """The "no pre-training" baseline: the configured encoders and freshly initialised fusion parts, saved
    like a pre-trained model (so fine-tuning starts from it the same way). Returns the model directory."""
    import torch

    from fashionvlp.models.registry import save_pretrained

    out = Path(out or pretrain_dir(params))
    catalog_root = Path(catalog or params.catalog_dir)
    texts = [p.text for p in read_catalog(catalog_root).iter_products() if p.split == "train"]
    torch.manual_seed(params.pretrain.seed)
    model = _fresh_model(params, params.model, out, texts)
    save_pretrained(model, out / "model", params.model,
                    extra={"steps": 0, "catalog_md5": dir_md5(catalog_root), "initial": True})
    return out / "model"
