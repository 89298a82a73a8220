"""The registry on a temporary sqlite store: a bundle as a version with signature, example, lineage and
card; the challenger/champion gate with margins; production and rollback; aliases only."""

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from fashionvlp.tracking.mlflow_tracking import Tracking
from tests.conftest import bundle_with_evidence
from fashionvlp.tracking.registry import (CHALLENGER, CHAMPION, PRODUCTION, RegistryError, promotion_gate,
                                          register_bundle, rollback_production, set_production)


def test_register_gate_production_and_rollback(fashionvil_bundle, tmp_path, monkeypatch):
    import mlflow.pyfunc

    _, bundle = fashionvil_bundle
    tracking = Tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", "registry-test", f"file://{tmp_path / 'artifacts'}")
    client, name = tracking.client, "fashionvlp-test"
    lineage = {"git_sha": "abc123", "data_dvc_md5": "d41d8cd98f00b204e9800998ecf8427e.dir", "pretrain_run_id": "r0"}

    def register(itr_rate, attr_rate):
        copy, metrics = bundle_with_evidence(bundle, tmp_path / f"bundle-{itr_rate}-{attr_rate}",
                                             {"xmr.ITR": itr_rate, "attributes.ATTR_R@90P": attr_rate})
        run_id = tracking.start_run("export")
        version = register_bundle(client, run_id, copy, name, metrics, lineage)
        tracking.end_run(run_id)
        return version, metrics

    v1, metrics = register(0.10, 0.05)
    mv = client.get_model_version(name, v1)
    assert mv.tags["lineage.git_sha"] == "abc123" and float(mv.tags["metric.xmr.ITR"]) == metrics["xmr.ITR"]
    assert "## Lineage" in mv.description and "text.onnx" in mv.description
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == v1

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.tracking_uri)   # what a serving process is given
    model = mlflow.pyfunc.load_model(f"models:/{name}@{CHALLENGER}")
    assert model.metadata.signature is not None and model.metadata.get_input_schema().input_names() == ["text"]
    assert model.predict(pd.DataFrame({"text": ["a red dress", "blue jeans", "boots"]})).shape[0] == 3

    margins = {"xmr.ITR": 1.0, "attributes.ATTR_R@90P": 0.0}
    assert promotion_gate(client, name, margins)["reason"] == "no champion yet"
    v2, _ = register(0.105, 0.05)                      # better by 0.5 points: less than the margin
    gate = promotion_gate(client, name, margins)
    assert not gate["promoted"] and "xmr.ITR" in gate["reason"]
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v1
    v3, _ = register(0.20, 0.10)
    assert promotion_gate(client, name, margins)["promoted"]
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v3 != v2

    assert set_production(client, name, v1) == v1
    with pytest.raises(RegistryError, match="no earlier production version"):
        rollback_production(client, name)
    assert set_production(client, name) == v3            # the champion, by an explicit step
    assert str(client.get_model_version_by_alias(name, PRODUCTION).version) == v3
    assert rollback_production(client, name) == v1
    assert str(client.get_model_version_by_alias(name, PRODUCTION).version) == v1
    assert all(v.current_stage in (None, "None") for v in client.search_model_versions(f"name='{name}'"))
    with pytest.raises(RegistryError, match="has no metric"):
        promotion_gate(client, name, {"tgir.TGIR": 0.0})


def test_cli_export_register_promote_production_rollback(fine_tuned, tiny_catalog, tmp_path):
    from typer.testing import CliRunner

    from fashionvlp.cli import app

    params, sources, _ = fine_tuned
    if params.model.arch != "fashionvil":
        pytest.skip("the CLI path is the same for both architectures")
    common = ["--set", f"tracking.store={tmp_path / 'mlflow.db'}", "--set",
              f"tracking.artifact_root={tmp_path / 'artifacts'}", "--set", "registry.name=cli-{arch}"]
    run = CliRunner()
    res = run.invoke(app, ["export", "--register", "--retrieval", str(sources["retrieval"]), "--attributes",
                           str(sources["attributes"]), "--categories", str(sources["categories"]), "--catalog",
                           str(tiny_catalog), "--out", str(tmp_path / "bundle"), *common])
    assert res.exit_code == 0, res.output
    assert "registered cli-fashionvil version 1 (alias challenger)" in res.output
    assert "xmr.ITR" in res.output and "attributes.ATTR_R@90P" in res.output
    res = run.invoke(app, ["promote", *common])
    assert res.exit_code == 0 and "PROMOTED (no champion yet)" in res.output, res.output
    res = run.invoke(app, ["production", "set", *common])
    assert res.exit_code == 0 and "production → v1" in res.output, res.output
    res = run.invoke(app, ["production", "rollback", *common])
    assert res.exit_code == 1 and "no earlier production version" in res.output
