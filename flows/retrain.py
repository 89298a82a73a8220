"""The retraining flow. Stages built so far: data version check → validation → VQ-VAE patch labels →
pre-training → (fanned out) zero-shot XMR and the fine-tuning + evaluation of every downstream task →
evaluation report; tracked in MLflow (one parent run, one nested run per stage and task).

Run it with ``make run`` (or ``python flows/retrain.py``). With PREFECT_API_URL unset Prefect starts a
temporary local API, so no server is needed. Tasks pass paths and ids, never data.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

from fashionvlp.env import quiet_offline  # noqa: E402

quiet_offline()

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.task_runners import ProcessPoolTaskRunner  # noqa: E402


from fashionvlp.config import FlowParameters, Params, flow_options  # noqa: E402
from fashionvlp.data import validation as validation_module  # noqa: E402
from fashionvlp.data.versioning import commit_stages, stage_up_to_date  # noqa: E402
from fashionvlp.evaluation.formatting import format_headline, format_result  # noqa: E402
from fashionvlp.evaluation.report import write_report  # noqa: E402
from fashionvlp.stages import data as data_stages  # noqa: E402
from fashionvlp.stages import evaluate as evaluate_stage  # noqa: E402
from fashionvlp.stages import export as export_stage  # noqa: E402
from fashionvlp.stages import finetune as finetune_stage  # noqa: E402
from fashionvlp.stages import pretrain as pretrain_stage  # noqa: E402
from fashionvlp.stages import promote as promote_stage  # noqa: E402
from fashionvlp.stages import vqvae as vqvae_stage  # noqa: E402
from fashionvlp.tracking.mlflow_tracking import Tracking  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# The fine-tunings in two lanes, one per worker, each task waiting for the one before it in its lane: the
# pool alone does not take queued tasks in order (one run put OCIR after attributes, 10:00 in all). Measured
# one thread each, side by side, with the image prior (session 29's AMD EPYC machine, training and
# evaluation): attributes 750 steps 7:15 (700 in the default), XMR 500 3:11, classification 200 2:21, OCIR 250 2:45, TGIR 150
# 1:53. Tasks in no lane (captioning) join the second; zero-shot XMR of the pre-trained model ends it.
LANES = [["attributes", "tgir"], ["xmr", "classification", "ocir", "captioning"]]


class RetrainParameters(FlowParameters):
    params_file: str = str(REPO / "params.yaml")
    run_name: str = "retrain"


@task(name="data-version-check", retries=2, retry_delay_seconds=2)
def data_version_check(parameters: RetrainParameters) -> dict:
    """Catalog on disk and equal to its DVC pin (pulled or regenerated when absent)."""
    result = data_stages.materialize(parameters.load())
    return {"catalog": str(result.catalog), "how": result.how, **result.version.__dict__}


def dvc_governs(params: Params, parameters: RetrainParameters) -> bool:
    """dvc.yaml's stages read params.yaml: DVC speaks for this run only when no preset or override changes it."""
    return (not parameters.presets and not parameters.overrides and (params.root / "dvc.yaml").is_file()
            and (params.root / ".dvc").is_dir())


def validation_cache_key(context, arguments) -> str | None:
    """Validation is deterministic in (its config, the catalog's DVC hash, its code): cached by those, and
    only while its report is still on disk. No DVC hash, no caching."""
    params = arguments["parameters"].load()
    report = data_stages.validation_dir(params) / "report.json"
    if not arguments.get("catalog_md5") or not report.is_file():
        return None
    code = (Path(validation_module.__file__)).read_bytes()
    key = {"validation": params.validation.model_dump(mode="json", exclude={"workers", "dask_address"}), "catalog": arguments["catalog"],
           "catalog_md5": arguments["catalog_md5"], "report": str(report), "code": hashlib.sha256(code).hexdigest()}
    return "validate-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


@task(name="validate", cache_key_fn=validation_cache_key, persist_result=True, cache_expiration=timedelta(days=30))
def validate(parameters: RetrainParameters, catalog: str, catalog_md5: str | None) -> dict:
    result = data_stages.validate(parameters.load(), Path(catalog))
    return {"report_json": str(result.report_json), "report_md": str(result.report_md), "counts": result.counts}


@task(name="vqvae-patch-labels")
def vqvae(parameters: RetrainParameters, catalog: str, parent_run_id: str) -> dict:
    """Patch labels, skipped when DVC says the ``vqvae`` stage is up to date (same catalog, params, code)."""
    params = parameters.load()
    if dvc_governs(params, parameters) and stage_up_to_date(params.root, "vqvae"):
        metrics = json.loads((vqvae_stage.vqvae_dir(params) / "metrics.json").read_text())
        return {"labels_dir": str(vqvae_stage.patch_labels_dir(params)), "run_id": None, "skipped": True, **metrics}
    result = vqvae_stage.train_vqvae(params, Path(catalog), Tracking.from_params(params), parent_run_id)
    return {"labels_dir": str(result.labels_dir), "run_id": result.run_id, "skipped": False, **result.metrics}


@task(name="pretrain")
def pretrain(parameters: RetrainParameters, catalog: str, patch_labels: str, parent_run_id: str) -> dict:
    params = parameters.load()
    result = pretrain_stage.pretrain(params, Path(catalog), Path(patch_labels), tracking=Tracking.from_params(params),
                                     parent_run_id=parent_run_id)
    return {"model_dir": str(result.model_dir), "run_id": result.run_id, "summary": result.summary}


@task(name="evaluate")
def evaluate(parameters: RetrainParameters, task_name: str, model_dir: str, catalog: str, parent_run_id: str) -> dict:
    params = parameters.load()
    result = evaluate_stage.evaluate(params, task_name, Path(model_dir), Path(catalog),
                                     tracking=Tracking.from_params(params), parent_run_id=parent_run_id)
    return {"run_id": result["run_id"], "out": str(evaluate_stage.evaluation_dir(params)), "metrics": result}


@task(name="finetune")
def finetune(parameters: RetrainParameters, task_name: str, model_dir: str, catalog: str, parent_run_id: str) -> dict:
    params = parameters.load()
    result = finetune_stage.finetune(params, task_name, Path(model_dir), Path(catalog),
                                     tracking=Tracking.from_params(params), parent_run_id=parent_run_id)
    return {"model_dir": str(result.model_dir), "run_id": result.run_id, "out": str(result.model_dir.parent),
            "metrics": result.metrics}


@flow(name="downstream",
      task_runner=ProcessPoolTaskRunner(max_workers=2))
def downstream(parameters: RetrainParameters, model_dir: str, catalog: str, parent_run_id: str,
               tasks: list[str]) -> dict:
    """Zero-shot XMR of the pre-trained model and the fine-tuning of every task, fanned out.

    Each runs in a worker process of the flow's task runner (Accelerate's state is per process).
    """
    params = parameters.load()
    # Evaluation's numbers do not depend on its thread count, so each worker takes its share of the cores
    # (the workers' fine-tuning keeps finetune.threads: training is not shown to be thread-count-free).
    share = max(1, (os.cpu_count() or 1) // params.finetune.workers)
    parameters = parameters.model_copy(update={"overrides": [*parameters.overrides,
                                                             f"evaluation.threads={min(share, params.evaluation.threads)}"]})
    lanes = [[t for t in lane if t in tasks] for lane in LANES]
    lanes[-1] += [t for t in tasks if not any(t in lane for lane in LANES)]
    futures = {}
    for lane in lanes:
        before = []
        for name in lane:
            # A failed fine-tuning fails the rest of its lane (Prefect's upstream error) and then the flow.
            futures[name] = finetune.with_options(name=f"finetune-{name}").submit(
                parameters, name, model_dir, catalog, parent_run_id, wait_for=before)
            before = [futures[name]]
    futures["xmr (pre-trained)"] = evaluate.with_options(name="evaluate-xmr").submit(
        parameters, "xmr", model_dir, catalog, parent_run_id, wait_for=before)
    return {name: futures[name].result() for name in ["xmr (pre-trained)", *tasks]}


@task(name="evaluation-report", retries=2, retry_delay_seconds=2)
def evaluation_report(parameters: RetrainParameters, outcomes: dict, parent_run_id: str) -> str:
    """report.md + plots from every task's results, logged to the pipeline's MLflow run."""
    params = parameters.load()
    results = [{**o["metrics"], "stage": "pre-trained" if label.endswith("(pre-trained)") else "fine-tuned",
                "plots": str(Path(o["out"]) / "plots")} for label, o in outcomes.items()]
    out = params.derived_dir / "report" / params.model.arch
    context = (f"Pipeline run `{parent_run_id}`, architecture `{params.model.arch}`, catalog `{params.catalog_dir}`, "
               f"evaluation split `{params.evaluation.split}`.")
    path = write_report(results, out, f"fashionvlp evaluation report ({params.model.arch})", context)
    Tracking.from_params(params).log_artifacts(parent_run_id, out, "report")
    return str(path)


@task(name="dvc-lock", retries=2, retry_delay_seconds=2)
def dvc_lock(parameters: RetrainParameters, stages: list[str]) -> str | None:
    """Records the outputs of the dvc.yaml stages this run produced in dvc.lock, so `dvc status` and the
    next run see them as up to date."""
    params = parameters.load()
    return str(commit_stages(params.root, stages)) if dvc_governs(params, parameters) else None


@task(name="export", retries=1, retry_delay_seconds=2)
def export(parameters: RetrainParameters, outcomes: dict) -> str:
    """The ONNX bundle of the fine-tuned retrieval, attribute and classification models (parity-checked)."""
    params = parameters.load()
    sources = {role: outcomes[task]["model_dir"] for role, task in export_stage.ROLES.items() if task in outcomes}
    return str(export_stage.export(params, {r: Path(d) for r, d in sources.items()}).out)


@task(name="register-challenger", retries=2, retry_delay_seconds=2)
def register(parameters: RetrainParameters, bundle: str, parent_run_id: str) -> dict:
    params = parameters.load()
    out = export_stage.register(params, export_stage.ExportResult.read(Path(bundle)),
                                tracking=Tracking.from_params(params), parent_run_id=parent_run_id)
    return {k: out[k] for k in ("name", "version", "run_id", "metrics")}


@task(name="promotion-gate", retries=2, retry_delay_seconds=2)
def gate(parameters: RetrainParameters, parent_run_id: str) -> dict:
    params = parameters.load()
    return promote_stage.gate(params, Tracking.from_params(params), parent_run_id)


@flow(name="retrain", log_prints=True)
def retrain(parameters: RetrainParameters = RetrainParameters()) -> dict:
    logger = get_run_logger()
    params = parameters.load()
    tracking = Tracking.from_params(params)
    with tracking.run(parameters.run_name, tags={"pipeline": "retrain"}) as run_id:
        tracking.log_params(run_id, params.flat())
        version = data_version_check(parameters)
        tracking.set_tags(run_id, {f"data.{k}": str(v) for k, v in version.items() if k != "catalog"}
                          | ({"mlflow.source.git.commit": version["git_sha"]} if version.get("git_sha") else {}))
        logger.info("catalog %s (%s), dvc md5 %s", version["catalog"], version["how"], version["dvc_md5"])
        report = validate(parameters, version["catalog"], version["dvc_md5"])
        tracking.log_metrics(run_id, {f"data.{k}": v for k, v in report["counts"].items()})
        tracking.log_artifact(run_id, Path(report["report_md"]), "validation")
        tracking.log_artifact(run_id, Path(report["report_json"]), "validation")
        codes = vqvae(parameters, version["catalog"], run_id)
        logger.info("VQ-VAE: perplexity %.1f, %s/%s codes used%s", codes["perplexity"], codes["codes_used"],
                    codes["codebook_size"], " (skipped: DVC says the vqvae stage is up to date)" if codes["skipped"]
                    else "")
        pretrained = pretrain(parameters, version["catalog"], codes["labels_dir"], run_id)
        tracking.log_metrics(run_id, {f"pretrain.{name}.last": row["last"]
                                      for name, row in pretrained["summary"]["losses"].items()})
        tasks = [t for t in params.finetune.tasks if finetune_stage.task_fits_arch(t, params.model.arch)]
        skipped = {t: f"the {params.model.arch} architecture cannot run it"
                   for t in params.finetune.tasks if t not in tasks}
        skipped |= {t: f"the catalog has {why}" for t in tasks if (why := finetune_stage.missing_catalog_data(
            t, Path(version["catalog"]), ("train", params.evaluation.split)))}
        for name, why in skipped.items():
            logger.warning("skipped %s: %s", name, why)
        tasks = [t for t in tasks if t not in skipped]
        runner = ProcessPoolTaskRunner(max_workers=params.finetune.workers)
        outcomes = downstream.with_options(task_runner=runner)(parameters, pretrained["model_dir"],
                                                               version["catalog"], run_id, tasks)
        for label, outcome in outcomes.items():
            prefix = "pretrained" if label.endswith("(pre-trained)") else "finetuned"
            m = outcome["metrics"]
            tracking.log_metrics(run_id, {f"{prefix}.{m['task']}.{k}".replace("@", "_at_"): v
                                          for k, v in m["headline"].items()}
                                 | evaluate_stage.interval_metrics(f"{prefix}.{m['task']}", m)
                                 | {f"{prefix}.{m['task']}.{k}.ceiling".replace("@", "_at_"): v
                                    for k, v in (m.get("ceiling") or {}).get("headline", {}).items()})
        report_md = evaluation_report(parameters, outcomes, run_id)
        bundle = registered = decision = None
        lacking = sorted(set(export_stage.ROLES.values()) - set(outcomes))
        if lacking:
            logger.info("not exported or registered: the bundle needs the fine-tuned %s models", ", ".join(lacking))
        else:
            bundle = export(parameters, outcomes)
            registered = register(parameters, bundle, run_id)
            tracking.set_tags(run_id, {"registry.model": registered["name"], "registry.version": registered["version"]})
            decision = gate(parameters, run_id)
        stages = ["validate", "vqvae", "pretrain", "evaluate_xmr", *[f"finetune@{t}" for t in tasks]]
        lock = dvc_lock(parameters, stages + (["export"] if bundle else []))
        logger.info("dvc.lock %s", f"updated: {lock}" if lock else "left alone (presets or overrides differ from "
                                                                   "params.yaml, which dvc.yaml reads)")
    return {"bundle": bundle, "registered": registered, "gate": decision, "dvc_lock": lock, "run_id": run_id, "tracking_uri": params.tracking_uri, "experiment": params.tracking.experiment,
            "data_version": version, "validation": report, "vqvae": codes, "pretrain": pretrained,
            "downstream": outcomes, "skipped": skipped, "report": report_md}


def main(argv: list[str]) -> int:
    report(retrain(RetrainParameters(**flow_options(argv))))
    return 0


def report(out: dict) -> None:
    """Prints where a finished run's results are, and its headline numbers."""
    print("\n== where to look ==")
    print(f"MLflow run:      {out['run_id']}  (experiment '{out['experiment']}', store {out['tracking_uri']})")
    print("MLflow UI:       make mlflow-ui   → http://127.0.0.1:5000")
    print(f"Data version:    dvc md5 {out['data_version']['dvc_md5']}  git {out['data_version']['git_sha']}"
          f"  ({out['data_version']['how']})")
    print(f"Validation:      {out['validation']['report_md']}")
    print("Metrics:         " + ", ".join(f"{k}={v}" for k, v in out["validation"]["counts"].items()))
    codes = out["vqvae"]
    print(f"VQ-VAE:          perplexity {codes['perplexity']:.1f}, codes used {codes['codes_used']}/"
          f"{codes['codebook_size']}, reconstruction MSE {codes['reconstruction_mse']:.4f}, colour error "
          f"{codes['colour_error']:.1f}/255 on coloured cells (a grey reconstruction: {codes['colour_error_grey']:.1f})"
          f"  → {codes['labels_dir']}")
    summary = out["pretrain"]["summary"]
    print(f"Pre-training:    {summary['arch']}, {summary['steps']} steps; model → {out['pretrain']['model_dir']}")
    for name, row in summary["losses"].items():
        print(f"                 loss/{name}: {row['first']:.4f} → {row['last']:.4f}")
    print(f"Evaluation report: {out['report']}  (also in MLflow: run artifacts → report/)")
    if out.get("registered"):
        r, g = out["registered"], out["gate"]
        print(f"ONNX bundle:     {out['bundle']}")
        print(f"Registered:      {r['name']} version {r['version']} → alias challenger. Production moves only "
              "by an explicit step: make promote (or fashionvlp production set), then make serve")
        print("Gate:            " + "\n                 ".join(promote_stage.describe(g)))
    print("Downstream tasks (headline numbers with 95% bootstrap intervals over the evaluation units, and the "
          "share of the attribute-oracle ceiling; details with protocols below):")
    for label, outcome in out["downstream"].items():
        m = outcome["metrics"]
        print(f"  {label:<22} " + format_headline(m) + f"   ({m['split']} split)")
    if out["skipped"]:
        for name, why in out["skipped"].items():
            print(f"  {name:<22} skipped: {why}")
    for label, outcome in out["downstream"].items():
        print(f"-- {label}")
        print("\n".join(format_result(outcome["metrics"])))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
