"""Export stage: a model family → one ONNX bundle for serving.

Graphs: ``image.onnx`` (global + patch embeddings) and ``text.onnx`` (global embedding) from the
retrieval (XMR) model, ``attributes.onnx`` (per-attribute probabilities) from the attribute model and
``categories.onnx`` (category and subcategory logits) from the classification model; each fine-tuned
model keeps its own fused encoder, so its heads are exported with it. Beside them: the tokenizer,
preprocessing, label maps, the attribute thresholds and the parity report. The bundle is built in a
staging directory and swapped in only when every graph passes parity.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from fashionvlp.config import Params
from fashionvlp.data.catalog_io import read_catalog

ROLES = {"retrieval": "xmr", "attributes": "attributes", "categories": "classification"}


@dataclass(frozen=True)
class ExportResult:
    out: Path
    parity: dict[str, dict[str, float]]
    tolerance: float
    quantization: dict | None = None

    @classmethod
    def read(cls, out: Path) -> "ExportResult":
        """The result of an export already on disk (its parity report and quantisation, if any)."""
        out = Path(out)
        parity = json.loads((out / "parity.json").read_text())
        quantization = out / "quantization.json"
        return cls(out, parity["max_abs_diff"], parity["tolerance"],
                   json.loads(quantization.read_text()) if quantization.is_file() else None)


def export_dir(params: Params) -> Path:
    return params.derived_dir / "export" / params.model.arch


def default_sources(params: Params) -> dict[str, Path]:
    from fashionvlp.stages.finetune import finetune_dir

    return {role: finetune_dir(params, task) / "model" for role, task in ROLES.items()}


def _examples(model, catalog, split: str, image_size: int, max_length: int) -> list[dict]:
    """Two batches of real products (3 and 2, different text lengths) for export and parity."""
    from fashionvlp.evaluation.embed import product_batches

    products = [p for p in catalog.iter_products() if p.split == split][:5]
    batches = []
    for chunk in (products[:3], products[3:5]):
        _, pixels, enc = next(product_batches(model, catalog, chunk, image_size, max_length))
        batches.append({"pixels": pixels, "input_ids": enc.input_ids, "attention_mask": enc.attention_mask})
    return batches


def export(params: Params, sources: dict[str, Path] | None = None, catalog: Path | None = None,
           out: Path | None = None, tolerance: float = 1e-4, int8: bool = False) -> ExportResult:
    from fashionvlp.data.pretrain_dataset import attribute_vocabulary, label_maps
    from fashionvlp.evaluation.outcomes import BUNDLE_DIR, outcomes_path
    from fashionvlp.export.graphs import AttributeGraph, CategoryGraph, ImageGraph, TextGraph
    from fashionvlp.errors import ParityError
    from fashionvlp.export.onnx_export import export_graph, parity
    from fashionvlp.serving.bundle import seal
    from fashionvlp.errors import ModelInputError
    from fashionvlp.models.registry import load_pretrained
    from fashionvlp.stages.evaluate import task_heads
    from fashionvlp.tasks.attributes import THRESHOLDS_FILE
    from fashionvlp.tasks.base import get_task

    sources = {**default_sources(params), **(sources or {})}
    missing = {role: str(d) for role, d in sources.items() if not (Path(d) / "model.json").is_file()}
    if missing:
        raise ModelInputError(f"export needs a saved model per role; missing: {missing} (fine-tune them first: "
                              f"fashionvlp finetune --task …)")
    cat = read_catalog(catalog or params.catalog_dir)
    out = Path(out or export_dir(params))
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        graphs, sizes = {}, {}
        for role, source in sources.items():
            model = load_pretrained(Path(source), expect_arch=params.model.arch).eval()
            cfg = model.model_config
            sizes[role] = (cfg.image.image_size, cfg.text.max_length)
            if role == "retrieval":
                graphs["image"] = (ImageGraph(model), model)
                graphs["text"] = (TextGraph(model), model)
            else:
                task = get_task(ROLES[role])
                heads = task_heads(params, task, model, Path(source), cat)
                graph_cls = AttributeGraph if role == "attributes" else CategoryGraph
                graphs[role] = (graph_cls(model, heads[next(iter(task.objectives))]), model)
        if len(set(sizes.values())) != 1:
            raise ModelInputError(f"the models disagree on image size / text length: {sizes}")
        image_size, max_length = sizes["retrieval"]
        report: dict[str, dict[str, float]] = {}
        manifest_graphs = {}
        for name, (graph, model) in graphs.items():
            batches = _examples(model, cat, params.evaluation.split, image_size, max_length)
            path = export_graph(graph, batches[0], staging / f"{name}.onnx")
            report[name] = parity(graph, path, batches)
            manifest_graphs[name] = {"file": path.name, "inputs": list(graph.input_names),
                                     "outputs": list(graph.output_names)}
        failed = {g: {o: d for o, d in outs.items() if d > tolerance} for g, outs in report.items()}
        failed = {g: o for g, o in failed.items() if o}
        (staging / "parity.json").write_text(json.dumps({"tolerance": tolerance, "max_abs_diff": report}, indent=2))
        if failed:
            raise ParityError(f"ONNX Runtime differs from PyTorch by more than {tolerance}: {failed}; "
                              f"nothing was written to {out}")
        retrieval = Path(sources["retrieval"])
        shutil.copytree(retrieval / "tokenizer", staging / "tokenizer")
        normalization = graphs["image"][0].model.image_encoder.normalization
        (staging / "preprocessing.json").write_text(json.dumps({
            "image_size": image_size, "resize": "bicubic, to a square", "mean": list(normalization.mean),
            "std": list(normalization.std), "channels": "RGB, [0,1] then normalised, NCHW float32",
            "max_length": max_length, "text": "title + '. ' + description"}, indent=2))
        maps = label_maps(cat.schema)
        (staging / "labels.json").write_text(json.dumps({
            "categories": list(maps["category"]), "subcategories": list(maps["subcategory"]),
            "attributes": attribute_vocabulary(cat.schema),
            "attributes_by_category": {c: cat.schema.attributes_for(c) for c in cat.schema.categories}}, indent=2))
        for role, task_name in ROLES.items():
            evidence = outcomes_path(Path(sources[role]).parent, task_name)
            if evidence.is_file():
                (staging / BUNDLE_DIR).mkdir(exist_ok=True)
                shutil.copy2(evidence, staging / BUNDLE_DIR / evidence.name)
        thresholds = Path(sources["attributes"]) / THRESHOLDS_FILE
        if thresholds.is_file():
            shutil.copy2(thresholds, staging / THRESHOLDS_FILE)
        meta = json.loads((retrieval / "model.json").read_text())
        (staging / "manifest.json").write_text(json.dumps({
            "arch": params.model.arch, "graphs": manifest_graphs, "sources": {r: str(s) for r, s in sources.items()},
            "pretrain_run_id": meta.get("pretrain_run_id"), "catalog_md5": meta.get("catalog_md5"),
            "dynamic_axes": {"batch": "every input's axis 0", "seq": "input_ids / attention_mask axis 1"}}, indent=2))
        quantization = None
        if int8:
            from fashionvlp.evaluation.retrieval import PaperProtocol
            from fashionvlp.export.quantize import int8_accuracy_cost, quantize_bundle

            ev = params.evaluation
            files = quantize_bundle(staging)
            products = [p for p in cat.iter_products() if p.split == ev.split]
            quantization = {"files": files, "split": ev.split, "products": len(products),
                            **int8_accuracy_cost(staging, cat, products, PaperProtocol(
                                ev.paper_queries, ev.paper_negatives, ev.paper_repeats, ev.seed), ev.allow_fallback)}
            (staging / "quantization.json").write_text(json.dumps(quantization, indent=2))
        seal(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out, report, tolerance, quantization)


def bundle_metrics(sources: dict[str, Path]) -> dict[str, float]:
    """The headline numbers of the fine-tuned models the bundle came from (``<task>.<column>``), with their
    95% intervals (``<task>.<column>.ci_low`` / ``.ci_high``)."""
    out = {}
    for role, source in sources.items():
        metrics = Path(source).parent / "metrics.json"
        if metrics.is_file():
            result = json.loads(metrics.read_text())
            out |= {f"{result['task']}.{k}": float(v) for k, v in result.get("headline", {}).items()}
            out |= {f"{result['task']}.{k}.{side}": float(ci[side]) for k, ci in result.get("intervals", {}).items()
                    for side in ("ci_low", "ci_high")}
    return out


def register(params: Params, result: ExportResult, sources: dict[str, Path] | None = None, tracking=None,
             parent_run_id: str | None = None) -> dict:
    """Registers the bundle as a new version (alias ``challenger``) with metrics, lineage and a model card."""
    from fashionvlp.data.versioning import data_version, dvc_file_for
    from fashionvlp.tracking.mlflow_tracking import Tracking
    from fashionvlp.tracking.registry import register_bundle

    sources = {**default_sources(params), **(sources or {})}
    tracking = tracking or Tracking.from_params(params)
    version = data_version(params.root, dvc_file_for(params.catalog_dir))
    pretrained = json.loads((Path(sources["retrieval"]) / "model.json").read_text()).get("finetuned_from")
    pre_meta = Path(pretrained) / "model.json" if pretrained else None
    lineage = {"git_sha": version.git_sha, "data_dvc_md5": version.dvc_md5, "arch": params.model.arch,
               "pretrain_run_id": json.loads(pre_meta.read_text()).get("pretrain_run_id") if pre_meta and
               pre_meta.is_file() else None, "bundle": str(result.out)}
    metrics = bundle_metrics(sources)
    name = params.registry.model_name(params.model.arch)
    with tracking.run(f"export-{params.model.arch}", {"stage": "export"}, parent_run_id) as run_id:
        tracking.log_metrics(run_id, {f"parity.{g}.{o}": d for g, outs in result.parity.items() for o, d in outs.items()})
        tracking.log_artifact(run_id, result.out / "parity.json", "export")
        registered = register_bundle(tracking.client, run_id, result.out, name, metrics,
                                     {k: str(v) for k, v in lineage.items()})
    return {"name": name, "version": registered, "run_id": run_id, "metrics": metrics, "lineage": lineage}
