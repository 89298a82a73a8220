"""The backfill flow on a tiny catalog: production model from a temporary sqlite registry, shards on a
local Dask cluster of 2 processes, resumption, the merged dataset and its DVC pin."""

import json
import shutil
import sys

import pyarrow.parquet as pq
import yaml

from tests.conftest import REPO, TINY_MODEL, scratch_repo


def test_backfill_fills_missing_attributes_resumes_and_is_dvc_tracked(prefect_harness, fashionvil_bundle,
                                                                     tiny_catalog, tmp_path):
    sys.path.insert(0, str(REPO / "flows"))
    from backfill import BackfillParameters, backfill, work_dir

    from fashionvlp.config import load_params
    from fashionvlp.data.catalog_io import read_catalog
    from fashionvlp.data.versioning import dir_md5
    from fashionvlp.serving.bundle import seal
    from fashionvlp.stages.backfill import ShardSpec, missing_attributes, run_shard
    from fashionvlp.tracking.mlflow_tracking import Tracking
    from fashionvlp.tracking.registry import register_bundle, set_production

    repo = scratch_repo(tmp_path, tiny_catalog)
    # A bundle whose colour threshold accepts every prediction, so something is filled at this scale.
    bundle = tmp_path / "bundle"
    shutil.copytree(fashionvil_bundle[1], bundle)
    thresholds = json.loads((bundle / "attribute_thresholds.json").read_text())
    thresholds["thresholds"]["color"] = 0.0
    (bundle / "attribute_thresholds.json").write_text(json.dumps(thresholds))
    seal(bundle)   # an edited bundle is a new one: its manifest's checksums are written again

    overrides = TINY_MODEL + ["backfill.shards=3", "backfill.workers=2", "backfill.batch_size=8"]
    params = load_params(repo / "params.yaml", overrides=overrides)
    tracking = Tracking.from_params(params)
    run_id = tracking.start_run("export")
    version = register_bundle(tracking.client, run_id, bundle, "fashionvlp-fashionvil", {"xmr.ITR": 1.0}, {})
    tracking.end_run(run_id)
    set_production(tracking.client, "fashionvlp-fashionvil", version)

    # An earlier run that died after its first shard.
    catalog = read_catalog(repo / "data")
    first = run_shard(bundle, repo / "data", ShardSpec(0, 3), work_dir(params), version, 8)
    assert not first["skipped"] and first["products"] > 0

    parameters = BackfillParameters(params_file=str(repo / "params.yaml"), overrides=overrides)
    out = backfill(parameters)
    assert out["model"]["version"] == version and out["model"]["uri"] == "models:/fashionvlp-fashionvil@production"
    assert [s["skipped"] for s in out["shards"]] == [True, False, False]
    assert all(s["provider"] == "CPUExecutionProvider" for s in out["shards"])

    dataset = repo / "backfill"
    predictions = pq.read_table(dataset / "attribute_predictions.parquet").to_pylist()
    products = {r["product_id"]: dict(r["attributes"]) for r in pq.read_table(dataset / "products.parquet").to_pylist()}
    before = {p.product_id: p for p in catalog.iter_products()}
    wanted = {(p.product_id, a) for p in before.values() for a in missing_attributes(catalog.schema, p)}
    assert {(r["product_id"], r["attribute"]) for r in predictions} == wanted   # every gap predicted once
    assert all(0.0 <= r["confidence"] <= 1.0 and r["model_version"] == version for r in predictions)
    accepted = [r for r in predictions if r["accepted"]]
    assert accepted and all(r["confidence"] >= r["threshold"] for r in accepted)
    assert any(r["attribute"] == "color" for r in accepted)
    for r in predictions:
        assert (products[r["product_id"]].get(r["attribute"]) == r["value"]) if r["accepted"] \
            else r["attribute"] not in products[r["product_id"]]
    for pid, product in before.items():        # catalog values are kept as they were
        assert all(products[pid][a] == v for a, v in product.attributes.items())
    counts = json.loads((dataset / "backfill.json").read_text())["counts"]
    assert counts["filled"] == len(accepted) and counts["missing_after"] == len(wanted) - len(accepted)

    pin = yaml.safe_load((repo / "backfill.dvc").read_text())["outs"][0]["md5"]
    assert out["dvc_file"].endswith("backfill.dvc") and pin == dir_md5(dataset)

    again = backfill(parameters)                          # everything done: all shards skipped, same result
    assert all(s["skipped"] for s in again["shards"])
    assert yaml.safe_load((repo / "backfill.dvc").read_text())["outs"][0]["md5"] == pin
    run = tracking.client.get_run(again["run_id"])
    assert run.data.metrics["backfill.shards_skipped"] == 3 and run.data.tags["model.version"] == version
