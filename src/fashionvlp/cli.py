"""``fashionvlp``: one CLI whose subcommands are the pipeline stages (each a thin call into ``stages``)."""

from __future__ import annotations

import json
import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from fashionvlp.env import quiet_offline  # noqa: E402

quiet_offline()

from fashionvlp.config import ConfigError, Params, load_params  # noqa: E402

app = typer.Typer(help="Fashion vision-and-language pre-training, fine-tuning and serving (FashionViL, KG-FLIP).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Catalog stages: synthesise, convert, validate, version.", no_args_is_help=True)
convert_app = typer.Typer(help="Convert a real dataset into a catalog.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")
data_app.add_typer(convert_app, name="convert")

ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml with every stage's defaults.")]
PresetOpt = Annotated[Optional[list[str]], typer.Option("--preset", help="Named overlay from configs/<name>.yaml.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override one value, e.g. data.synth.num_products=500.")]
DaskAddressOpt = Annotated[Optional[str], typer.Option(help="A Dask scheduler (tcp://host:8786) whose workers do the "
                                                            "image work, as backfill.address does for the backfill.")]


def _params(params: Path, preset: Optional[list[str]], overrides: Optional[list[str]]) -> Params:
    try:
        return load_params(params, preset or [], overrides or [])
    except ConfigError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 2):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _run(fn):
    """Turns expected failures (bad input, failed validation) into a clear message and exit code 1."""
    from fashionvlp.data.catalog_io import CatalogError, CatalogNotFound
    from fashionvlp.data.versioning import DataVersionError
    from fashionvlp.errors import ModelInputError, ParityError, ProtocolError

    try:
        return fn()
    except (CatalogError, CatalogNotFound, DataVersionError, FileExistsError, ModelInputError, ParityError,
            ProtocolError) as exc:
        _fail(str(exc), 1)
    except RuntimeError as exc:
        if type(exc).__name__ == "ValidationFailed":
            _fail(str(exc), 1)
        raise


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    # This project's INFO lines; a library's (Great Expectations' ~200 per validation, accelerate's per
    # checkpoint file) only with -v.
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("fashionvlp").setLevel(logging.DEBUG if verbose else logging.INFO)


@config_app.command("show")
def config_show(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None) -> None:
    """Print the resolved configuration (params.yaml + presets + --set) as JSON."""
    p = _params(params, preset, set_)
    typer.echo(json.dumps(p.model_dump(mode="json"), indent=2))


@data_app.command("synth")
def data_synth(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None,
               out: Annotated[Optional[Path], typer.Option(help="Catalog directory (default: paths.catalog).")] = None) -> None:
    """Generate the embedded synthetic fashion catalog (seeded, byte-deterministic)."""
    from fashionvlp.stages.data import synth

    p = _params(params, preset, set_)
    path = _run(lambda: synth(p, out))
    typer.echo(f"wrote synthetic catalog ({p.data.synth.num_products} products) to {path}")


@data_app.command("validate")
def data_validate(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None,
                  catalog: Annotated[Optional[Path], typer.Option(help="Catalog directory (default: paths.catalog).")] = None,
                  report_dir: Annotated[Optional[Path], typer.Option(help="Where report.json/report.md go.")] = None,
                  workers: Annotated[Optional[int], typer.Option(help="Image-decoding processes (default: validation.workers, 0 = every core).")] = None,
                  dask_address: DaskAddressOpt = None) -> None:
    """Validate a catalog with Great Expectations; exit 1 with a report when an expectation fails."""
    from fashionvlp.data.validation import summarize
    from fashionvlp.stages.data import validate

    p = _params(params, preset, set_)
    if workers is not None or dask_address:
        p = p.model_copy(update={"validation": p.validation.model_copy(update={
            "workers": p.validation.workers if workers is None else workers,
            "dask_address": dask_address or p.validation.dask_address})})
    result = _run(lambda: validate(p, catalog, report_dir))
    typer.echo(summarize(result))


@data_app.command("import")
def data_import(table: Annotated[Path, typer.Argument(help="The product table: CSV, JSONL or Parquet, one row per product.")],
                images: Annotated[Path, typer.Option(help="Directory the table's image paths are relative to.")],
                mapping: Annotated[Path, typer.Option(help="mapping.yaml: which column is what (data/catalog_import.py).")],
                taxonomy: Annotated[Path, typer.Option(help="taxonomy.yaml: categories → subcategories, attributes, values and synonyms.")],
                out: Annotated[Path, typer.Option(help="Catalog directory to write.")],
                max_reject: Annotated[int, typer.Option(help="Rows that may be rejected (listed in rejected_rows.csv); above it nothing is written.")] = 0,
                report: Annotated[Optional[Path], typer.Option(help="Where the rejected rows go when the import fails (default: <out>.rejected.csv).")] = None,
                params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """Import your own catalog: a product table, its images, a column mapping and your taxonomy."""
    from fashionvlp.data.catalog_import import REJECT_REPORT
    from fashionvlp.stages.data import import_table

    if max_reject < 0:
        _fail(f"--max-reject must be ≥ 0, got {max_reject}")
    p = _params(params, None, set_)
    path = _run(lambda: import_table(p, table, images, mapping, taxonomy, out, max_reject, report))
    manifest = json.loads((path / "catalog.json").read_text())
    counts = manifest["counts"]
    typer.echo(f"wrote catalog {path}: {counts['products']} products, {counts['images']} images "
               f"(train {counts['by_split']['train']} / val {counts['by_split']['val']} / test "
               f"{counts['by_split']['test']}; {manifest['split_policy']})")
    typer.echo(f"rejected {manifest['rejected_rows']} of {manifest['rows']} rows (listed in {path / REJECT_REPORT})"
               + (f"; values added to the schema: {', '.join(f'{a}={v}' for a, v in manifest['values_added'])}"
                  if manifest["values_added"] else ""))


@data_app.command("materialize")
def data_materialize(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None) -> None:
    """Put the pinned catalog on disk: keep it, `dvc pull` it, or regenerate it and check it against data.dvc."""
    from fashionvlp.stages.data import materialize

    p = _params(params, preset, set_)
    result = _run(lambda: materialize(p))
    typer.echo(f"catalog {result.catalog}: {result.how}; dvc md5 {result.version.dvc_md5}, git {result.version.git_sha}")


@data_app.command("version")
def data_version_cmd(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None) -> None:
    """Print the catalog's data version: the DVC pin, whether the workspace matches it, and the git sha."""
    from fashionvlp.data.versioning import data_version, dvc_file_for

    p = _params(params, preset, set_)
    version = _run(lambda: data_version(p.root, dvc_file_for(p.catalog_dir)))
    typer.echo(json.dumps(version.__dict__, indent=2))


def _tracking(p: Params, track: bool):
    if not track:
        return None
    from fashionvlp.tracking.mlflow_tracking import Tracking

    return Tracking.from_params(p)


TrackOpt = Annotated[bool, typer.Option("--track/--no-track", help="Log the run to MLflow (tracking.* params).")]


@app.command("vqvae")
def vqvae_cmd(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None,
              catalog: Annotated[Optional[Path], typer.Option(help="Catalog directory (default: paths.catalog).")] = None,
              track: TrackOpt = True) -> None:
    """Train the VQ-VAE on catalog images and write MPFC's patch labels (one code per encoder patch)."""
    from fashionvlp.stages.vqvae import train_vqvae

    p = _params(params, preset, set_)
    result = _run(lambda: train_vqvae(p, catalog, _tracking(p, track)))
    m = result.metrics
    typer.echo(f"VQ-VAE ({m['num_images']} images, grid {m['grid']}): reconstruction MSE {m['reconstruction_mse']:.4f}, "
               f"colour error {m['colour_error']:.1f}/255 on coloured cells (a grey reconstruction: "
               f"{m['colour_error_grey']:.1f}), perplexity {m['perplexity']:.1f}, codes used {m['codes_used']}/{m['codebook_size']} "
               f"(dead {m['dead_codes']})\npatch labels: {result.labels_dir}\nmodel: {result.model_dir}")


@app.command("pretrain")
def pretrain_cmd(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None,
                 catalog: Annotated[Optional[Path], typer.Option(help="Catalog directory (default: paths.catalog).")] = None,
                 patch_labels: Annotated[Optional[Path], typer.Option(help="Patch labels (default: derived/patch_labels).")] = None,
                 out: Annotated[Optional[Path], typer.Option(help="Output directory (default: derived/pretrain/<arch>).")] = None,
                 stop_after: Annotated[Optional[int], typer.Option(help="Stop after this many steps in this call (resume later).")] = None,
                 track: TrackOpt = True) -> None:
    """Pre-train FashionViL or KG-FLIP (model.arch) with the configured objectives; resumes from checkpoints."""
    from fashionvlp.stages.pretrain import pretrain

    p = _params(params, preset, set_)
    result = _run(lambda: pretrain(p, catalog, patch_labels, out, _tracking(p, track), stop_after=stop_after))
    s = result.summary
    typer.echo(f"{s['arch']} pre-training, {s['steps']} steps ({s['combine']} of {', '.join(s['objectives'])}), "
               f"{'finished' if result.finished else 'stopped early (rerun to resume)'}")
    for name, row in s["losses"].items():
        typer.echo(f"  loss/{name}: {row['first']:.4f} → {row['last']:.4f} (first vs last 20% of logged windows)")
    typer.echo(f"model: {result.model_dir}" + (f"\nMLflow run: {result.run_id}" if result.run_id else ""))


TASK_NAMES = ("xmr", "classification", "tgir", "ocir", "attributes", "captioning")
DownstreamTaskName = Enum("DownstreamTaskName", {name: name for name in TASK_NAMES}, type=str)
TASK_HELP = ("xmr (image↔text retrieval), classification (CR+SCR), tgir (text-guided image retrieval), "
             "ocir (outfit completion), attributes (R@90P; KG-FLIP), captioning (BLEU-4; KG-FLIP only).")


@app.command("evaluate")
def evaluate_cmd(model: Annotated[Path, typer.Option(help="A saved model directory (e.g. derived/pretrain/fashionvil/model).")],
                 task: Annotated[DownstreamTaskName, typer.Option(help=TASK_HELP)] = DownstreamTaskName.xmr,
                 split: Annotated[Optional[str], typer.Option(help="Catalog split (default: evaluation.split).")] = None,
                 allow_fallback: Annotated[Optional[bool], typer.Option("--allow-fallback/--no-fallback", help="Let subcategories with < 101 products use smaller galleries, labelled (default: evaluation.allow_fallback).")] = None,
                 rerank_k: Annotated[Optional[int], typer.Option(help="XMR: re-rank each query's ITC top-k with the model's ITM head (default: evaluation.rerank_k; 0 = off).")] = None,
                 params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None,
                 catalog: Annotated[Optional[Path], typer.Option(help="Catalog directory (default: paths.catalog).")] = None,
                 out: Annotated[Optional[Path], typer.Option(help="Output directory (default: derived/eval/<arch>).")] = None,
                 track: TrackOpt = True) -> None:
    """Evaluate a saved model on one task; every number is printed with its protocol and split.

    Tasks with heads (classification, tgir, ocir, attributes) need a model fine-tuned for them."""
    from fashionvlp.evaluation.formatting import format_result
    from fashionvlp.stages.evaluate import evaluate

    flags = ([f"evaluation.split={split}"] if split else []) + \
        ([f"evaluation.allow_fallback={str(allow_fallback).lower()}"] if allow_fallback is not None else []) + \
        ([f"evaluation.rerank_k={rerank_k}"] if rerank_k is not None else [])
    p = _params(params, preset, (set_ or []) + flags)
    result = _run(lambda: evaluate(p, task.value, model, catalog, out, _tracking(p, track)))
    typer.echo("\n".join(format_result(result)))


@app.command("finetune")
def finetune_cmd(task: Annotated[DownstreamTaskName, typer.Option(help=TASK_HELP)],
                 init_from: Annotated[Path, typer.Option(help="A saved pre-trained model directory of model.arch.")],
                 params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None,
                 catalog: Annotated[Optional[Path], typer.Option(help="Catalog directory (default: paths.catalog).")] = None,
                 out: Annotated[Optional[Path], typer.Option(help="Output directory (default: derived/finetune/<arch>/<task>).")] = None,
                 track: TrackOpt = True) -> None:
    """Fine-tune a pre-trained model on one downstream task, then evaluate it (protocol and split printed)."""
    from fashionvlp.evaluation.formatting import format_result
    from fashionvlp.stages.finetune import finetune

    p = _params(params, preset, set_)
    result = _run(lambda: finetune(p, task.value, init_from, catalog, out, _tracking(p, track)))
    typer.echo(f"{task.value} fine-tuned from {init_from} ({result.metrics['steps']} steps)")
    typer.echo("\n".join(format_result(result.metrics)))
    typer.echo(f"model: {result.model_dir}")


@app.command("export")
def export_cmd(retrieval: Annotated[Optional[Path], typer.Option(help="XMR model dir (default: derived/finetune/<arch>/xmr/model).")] = None,
               attributes: Annotated[Optional[Path], typer.Option(help="Attribute model dir (default: derived/finetune/<arch>/attributes/model).")] = None,
               categories: Annotated[Optional[Path], typer.Option(help="Classification model dir (default: derived/finetune/<arch>/classification/model).")] = None,
               tolerance: Annotated[float, typer.Option(help="Largest |PyTorch − ONNX Runtime| accepted per output.")] = 1e-4,
               int8: Annotated[bool, typer.Option("--int8/--no-int8", help="Also write dynamic-int8 encoder graphs and measure their XMR cost on the evaluation split.")] = False,
               register: Annotated[bool, typer.Option("--register/--no-register", help="Register the bundle in MLflow as a new version with the alias challenger.")] = False,
               params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None,
               catalog: Annotated[Optional[Path], typer.Option(help="Catalog directory (default: paths.catalog).")] = None,
               out: Annotated[Optional[Path], typer.Option(help="Bundle directory (default: derived/export/<arch>).")] = None) -> None:
    """Export the fine-tuned models to one ONNX bundle (image, text, attributes, categories) with a parity check."""
    from fashionvlp.stages.export import export

    p = _params(params, preset, set_)
    sources = {k: v for k, v in {"retrieval": retrieval, "attributes": attributes, "categories": categories}.items() if v}
    result = _run(lambda: export(p, sources, catalog, out, tolerance, int8))
    typer.echo(f"ONNX bundle: {result.out}  (parity: max |PyTorch − ONNX Runtime| per output, tolerance {tolerance:g})")
    for graph, outputs in result.parity.items():
        typer.echo(f"  {graph}.onnx: " + ", ".join(f"{o} {d:.2e}" for o, d in outputs.items()))
    if register:
        from fashionvlp.stages.export import register as register_stage

        r = _run(lambda: register_stage(p, result, sources))
        typer.echo(f"registered {r['name']} version {r['version']} (alias challenger); metrics: "
                   + ", ".join(f"{k} {v:.2f}" for k, v in r["metrics"].items()))
    q = result.quantization
    if q:
        typer.echo(f"int8 (dynamic, ONNX Runtime) vs fp32, XMR on the {q['split']} split ({q['products']} products), "
                   f"[{q['fp32']['protocol']}]:")
        for label in ("fp32", "int8"):
            typer.echo(f"  {label}: " + "  ".join(f"{d} " + "/".join(f"{v:.2f}" for v in q[label][d].values())
                                                 for d in ("ITR", "TIR")) + "  (R@1/5/10)")
        typer.echo("  R@1 lost: " + ", ".join(f"{d} {v:.2f}" for d, v in q["R@1_lost"].items())
                   + "; sizes MB: " + ", ".join(f"{k} {v}" for k, v in q["size_mb"].items()))


production_app = typer.Typer(help="The production alias: set it (explicitly) or roll it back.")
app.add_typer(production_app, name="production")


def _registry(params: Path, preset, set_):
    from fashionvlp.tracking.mlflow_tracking import Tracking

    p = _params(params, preset, set_)
    return p, Tracking.from_params(p).client, p.registry.model_name(p.model.arch)


@app.command("promote")
def promote_cmd(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None) -> None:
    """The gate: champion moves to the challenger only when a paired bootstrap shows it better on every
    registry.margins metric (difference above the margin, 95% interval above 0)."""
    from fashionvlp.stages.promote import describe, gate as gate_stage

    p = _params(params, preset, set_)
    gate = _run(lambda: gate_stage(p))
    typer.echo("\n".join(describe(gate)))


@production_app.command("set")
def production_set_cmd(version: Annotated[Optional[str], typer.Option(help="Version (default: the champion).")] = None,
                       params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None, set_: SetOpt = None) -> None:
    from fashionvlp.tracking.registry import set_production

    _, client, name = _registry(params, preset, set_)
    typer.echo(f"{name}: production → v{_run(lambda: set_production(client, name, version))}")


@production_app.command("rollback")
def production_rollback_cmd(params: ParamsOpt = Path("params.yaml"), preset: PresetOpt = None,
                            set_: SetOpt = None) -> None:
    from fashionvlp.tracking.registry import rollback_production

    _, client, name = _registry(params, preset, set_)
    typer.echo(f"{name}: production rolled back → v{_run(lambda: rollback_production(client, name))}")


@app.command("serve")
def serve_cmd(config: Annotated[Path, typer.Option(help="Serving configuration (YAML).")] = Path("deploy/serving.yaml"),
              model: Annotated[Optional[str], typer.Option(help="models:/<name>@<alias>, models:/<name>/<version> or a bundle directory (default: the config's).")] = None,
              host: Annotated[Optional[str], typer.Option(help="Bind address (default 127.0.0.1).")] = None,
              port: Annotated[Optional[int], typer.Option(help="Port (default: the config's).")] = None,
              set_: SetOpt = None) -> None:
    """Serve an exported bundle over HTTP: embeddings, text→image search, attributes, categories (ONNX Runtime)."""
    from fashionvlp.serving.app import serve
    from fashionvlp.serving.bundle import BundleError
    from fashionvlp.serving.config import load_serving_config

    overrides = list(set_ or []) + [f"{k}={v}" for k, v in {"model": model, "host": host, "port": port}.items()
                                     if v is not None]
    try:
        cfg = load_serving_config(config, overrides)
    except ConfigError as exc:
        _fail(str(exc))
    try:
        serve(cfg)
    except BundleError as exc:
        _fail(str(exc), 1)


@convert_app.command("fashiongen")
def convert_fashiongen_cmd(out: Annotated[Path, typer.Option(help="Catalog directory to write.")],
                           train: Annotated[Optional[Path], typer.Option(help="fashiongen_256_256_train.h5")] = None,
                           val: Annotated[Optional[Path], typer.Option(help="h5 file for the val split (default: "
                                                                            "--val-share of the train products)")] = None,
                           test: Annotated[Optional[Path], typer.Option(help="fashiongen_256_256_validation.h5 (the papers' evaluation split)")] = None,
                           encoding: Annotated[str, typer.Option(help="Text encoding of the h5 strings (the release's is latin-1).")] = "latin-1",
                           on_duplicate: Annotated[str, typer.Option(help="A product id in two files: error (name them) or first (keep the first file's).")] = "error",
                           val_share: Annotated[float, typer.Option(help="Share of the train products moved to val (seeded, whole products) when no --val file is given.")] = 0.05,
                           seed: Annotated[int, typer.Option(help="Seed of the val draw.")] = 0,
                           workers: Annotated[Optional[int], typer.Option(help="JPEG-encoding processes (default: every core).")] = None,
                           dask_address: DaskAddressOpt = None,
                           params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """FashionGen h5 files → catalog (views grouped by product id; the papers' split: train file → train, validation file → test)."""
    from fashionvlp.data.converters.fashiongen import DUPLICATE_POLICIES, convert_fashiongen
    from fashionvlp.stages.data import image_limits

    files = {k: v for k, v in (("train", train), ("val", val), ("test", test)) if v is not None}
    if not files:
        _fail("give at least one of --train, --val, --test")
    if on_duplicate not in DUPLICATE_POLICIES:
        _fail(f"--on-duplicate must be one of {', '.join(DUPLICATE_POLICIES)}, got {on_duplicate!r}")
    if not 0.0 <= val_share < 1.0:
        _fail(f"--val-share must be in [0, 1), got {val_share}")
    p = _params(params, None, set_)
    path = _run(lambda: convert_fashiongen(files, out, image_limits(p), encoding=encoding, on_duplicate=on_duplicate,
                                           val_share=val_share, seed=seed, workers=workers,
                                           dask_address=dask_address))
    typer.echo(f"wrote FashionGen catalog to {path}")


@convert_app.command("fashioniq")
def convert_fashioniq_cmd(root: Annotated[Path, typer.Argument(help="FashionIQ root (captions/, image_splits/, images/)")],
                          out: Annotated[Path, typer.Option(help="Catalog directory to write.")],
                          max_missing: Annotated[float, typer.Option(help="Largest share of products whose image may be missing (left out, listed in missing_images.txt).")] = 0.15,
                          params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """FashionIQ as released → catalog with triplets (train → train, val → test: the papers' split)."""
    from fashionvlp.data.converters.fashioniq import MISSING_REPORT, convert_fashioniq
    from fashionvlp.stages.data import image_limits

    if not 0.0 <= max_missing <= 1.0:
        _fail(f"--max-missing must be in [0, 1], got {max_missing}")
    p = _params(params, None, set_)
    path = _run(lambda: convert_fashioniq(root, out, image_limits(p), max_missing=max_missing))
    manifest = json.loads((path / "catalog.json").read_text())
    counts, left = manifest["counts"], manifest["left_out"]
    typer.echo(f"wrote FashionIQ catalog to {path}: {counts['products']} products, {counts['triplets']} triplets "
               f"(train {counts['by_split']['train']} / test {counts['by_split']['test']} products)")
    without = sum(left["captions_without_target"].values())
    typer.echo(f"left out: {without} caption entries without a target "
               f"({', '.join(f'{k} {v}' for k, v in left['captions_without_target'].items()) or 'none'}), "
               f"{left['test_images']} test-split images, {left['missing_images']} products whose image is missing "
               f"(listed in {path / MISSING_REPORT}) and the {left['triplets_missing_image']} triplets naming them")


@convert_app.command("polyvore")
def convert_polyvore_cmd(root: Annotated[Path, typer.Argument(help="Polyvore Outfits root")],
                         out: Annotated[Path, typer.Option(help="Catalog directory to write.")],
                         variant: Annotated[str, typer.Option(help="nondisjoint or disjoint")] = "nondisjoint",
                         params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """Polyvore Outfits → catalog with outfits."""
    from fashionvlp.data.converters.polyvore import convert_polyvore
    from fashionvlp.stages.data import image_limits

    p = _params(params, None, set_)
    path = _run(lambda: convert_polyvore(root, out, variant, image_limits(p)))
    typer.echo(f"wrote Polyvore catalog to {path}")


if __name__ == "__main__":
    sys.exit(app())
