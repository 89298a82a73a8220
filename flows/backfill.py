"""The attribute backfill flow: the production bundle fills a catalog's missing attributes.

resolve the model (registry alias → version → local bundle) → one task per shard on a Dask task runner
(a local cluster of ``backfill.workers`` processes, or ``backfill.address``) → merge into a new dataset with
confidences → ``dvc add`` it → an MLflow run with the counts. Finished shards are skipped on a re-run,
so a killed backfill resumes where it stopped.

``python flows/backfill.py [--preset=…] [--set=backfill.workers=4] [--set=backfill.address=tcp://…]``
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from fashionvlp.env import quiet_offline  # noqa: E402

quiet_offline()

from prefect import flow, get_run_logger, task  # noqa: E402

from fashionvlp.config import FlowParameters, Params, flow_options  # noqa: E402
from fashionvlp.stages import backfill as stage  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


class BackfillParameters(FlowParameters):
    params_file: str = str(REPO / "params.yaml")
    run_name: str = "backfill"


def work_dir(params: Params) -> Path:
    return params.derived_dir / "backfill-shards" / params.model.arch


@task(name="resolve-model", retries=2, retry_delay_seconds=2)
def resolve_model(parameters: BackfillParameters) -> dict:
    """The model's version and a local copy of its bundle (downloaded once per version)."""
    from fashionvlp.serving.source import ModelSource

    params = parameters.load()
    spec = params.backfill.model_uri(params.model.arch)
    if not spec.startswith("models:/"):
        spec = str(params.resolve(spec))
    source = ModelSource(spec, params.tracking_uri, params.derived_dir / "serving")
    resolved = source.current()
    return {"uri": spec, "version": resolved.version, "bundle": str(source.fetch(resolved))}


@task(name="backfill-shard", retries=1, retry_delay_seconds=2)
def backfill_shard(bundle: str, catalog: str, index: int, count: int, work: str, version: str, batch_size: int,
                   threads: int) -> dict:
    return stage.run_shard(Path(bundle), Path(catalog), stage.ShardSpec(index, count), Path(work), version,
                           batch_size, threads)


@task(name="backfill-merge")
def merge(catalog: str, work: str, out: str, shards: int, model: dict) -> dict:
    return stage.merge(Path(catalog), Path(work), Path(out), shards, model)


@task(name="dvc-add", retries=2, retry_delay_seconds=2)
def dvc_add(repo: str, out: str) -> str | None:
    return stage.dvc_track(Path(repo), Path(out))


def task_runner(params: Params):
    import cloudpickle
    from prefect_dask import DaskTaskRunner

    # This file is a script, not an installed module: ship its tasks to the Dask workers by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

    if params.backfill.address:
        return DaskTaskRunner(address=params.backfill.address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": params.backfill.workers, "threads_per_worker": 1,
                                         "processes": True, "dashboard_address": None})


@flow(name="backfill-shards")
def run_shards(parameters: BackfillParameters, model: dict, catalog: str, work: str) -> list[dict]:
    params = parameters.load()
    b = params.backfill
    # Local workers split the cores; a remote cluster's workers keep ONNX Runtime's default.
    threads = 0 if b.address else max(1, (os.cpu_count() or 1) // b.workers)
    futures = [backfill_shard.submit(model["bundle"], catalog, i, b.shards, work, model["version"], b.batch_size,
                                     threads) for i in range(b.shards)]
    return [f.result() for f in futures]


@flow(name="backfill", log_prints=True)
def backfill(parameters: BackfillParameters = BackfillParameters()) -> dict:
    from fashionvlp.tracking.mlflow_tracking import Tracking

    logger = get_run_logger()
    params = parameters.load()
    catalog, out, work = params.catalog_dir, params.resolve(params.backfill.out), work_dir(params)
    model = resolve_model(parameters)
    logger.info("backfilling %s with %s (version %s), %d shards", catalog, model["uri"], model["version"],
                params.backfill.shards)
    started = time.perf_counter()
    shards = run_shards.with_options(task_runner=task_runner(params))(parameters, model, str(catalog), str(work))
    seconds = time.perf_counter() - started
    ran = [s for s in shards if not s["skipped"]]
    predicted_products = sum(s["products"] for s in ran)
    logger.info("shards: %d ran, %d skipped (already done); %d products in %.1f s", len(ran),
                len(shards) - len(ran), predicted_products, seconds)
    manifest = merge(str(catalog), str(work), str(out), params.backfill.shards, model)
    dvc_file = dvc_add(str(params.root.resolve()), str(out))
    tracking = Tracking.from_params(params)
    with tracking.run(parameters.run_name, {"pipeline": "backfill", "model.uri": model["uri"],
                                            "model.version": model["version"]}) as run_id:
        tracking.log_metrics(run_id, {f"backfill.{k}": v for k, v in manifest["counts"].items()}
                             | {"backfill.shards_ran": len(ran), "backfill.shards_skipped": len(shards) - len(ran),
                                "backfill.seconds": seconds})
        tracking.log_artifact(run_id, out / "backfill.json", "backfill")
    return {"out": str(out), "dvc_file": dvc_file, "model": model, "shards": shards, "manifest": manifest,
            "seconds": seconds, "run_id": run_id, "products_predicted": predicted_products}


def main(argv: list[str]) -> int:
    out = backfill(BackfillParameters(**flow_options(argv)))
    counts = out["manifest"]["counts"]
    print(f"\nbackfilled dataset: {out['out']}  (DVC: {out['dvc_file'] or 'not a DVC repository'})")
    print(f"model: {out['model']['uri']} version {out['model']['version']}")
    print(f"missing attribute values: {counts['missing_before']} before, {counts['filled']} filled at ≥90% "
          f"precision thresholds, {counts['missing_after']} left; {counts['predicted']} predictions with "
          f"confidences in attribute_predictions.parquet")
    print(f"shards: {sum(not s['skipped'] for s in out['shards'])} ran, {sum(s['skipped'] for s in out['shards'])} "
          f"skipped; {out['products_predicted']} products in {out['seconds']:.1f} s; MLflow run {out['run_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
