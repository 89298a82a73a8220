"""The sweep flow on a real Prefect API, a process pool and a real sqlite MLflow store (tiny rows)."""

import json
import sys

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, TINY_MODEL

pytestmark = pytest.mark.e2e


def _sweep_module():
    sys.path.insert(0, str(REPO / "flows"))
    import sweep

    return sweep


def test_every_row_is_a_run_of_one_experiment_with_its_intervals(prefect_harness, tiny_catalog, tmp_path):
    module = _sweep_module()
    spec = tmp_path / "tiny-sweep.yaml"
    spec.write_text(yaml.safe_dump({"experiment": "sweep-test", "tasks": ["xmr", "classification"], "rows": [
        {"label": "base", "overrides": []},
        {"label": "xmr at another rate", "overrides": ["finetune.xmr.lr=0.001"], "tasks": ["xmr"],
         "pretrained_from": "base"},
        {"label": "another VQ-VAE", "overrides": ["vqvae.codebook_size=16"], "tasks": ["xmr"]},
    ]}))
    overrides = TINY_MODEL + [f"paths.derived={tmp_path / 'derived'}", f"tracking.store={tmp_path / 'mlflow.db'}",
                              f"tracking.artifact_root={tmp_path / 'artifacts'}", "evaluation.allow_fallback=true",
                              "pretrain.steps=2"]
    out = module.sweep(module.SweepParameters(presets=[], overrides=overrides, sweep=str(spec),
                                              catalog=str(tiny_catalog)))
    table = out["table"]
    assert list(table) == ["base", "xmr at another rate", "another VQ-VAE"]
    assert set(table["base"]) == {"ITR", "TIR", "CR", "SCR"} and set(table["xmr at another rate"]) == {"ITR", "TIR"}
    for cells in table.values():
        for cell in cells.values():
            assert cell["ci_low"] <= cell["value"] <= cell["ci_high"]
    root = tmp_path / "derived" / "sweep" / "tiny-sweep"
    # The fine-tuning-only row reused base's pre-trained model; the other VQ-VAE trained its own patch labels.
    assert not (root / "xmr-at-another-rate" / "seed-0" / "pretrain").exists()
    assert len(list((root / "patch_labels").iterdir())) == 2
    metrics = json.loads((root / "xmr-at-another-rate" / "seed-0" / "xmr" / "metrics.json").read_text())
    assert metrics["headline"]["ITR"] == pytest.approx(table["xmr at another rate"]["ITR"]["value"])
    text = (root / "sweep.md").read_text()
    assert "| row | overrides | ITR | TIR | CR | SCR |" in text and "`finetune.xmr.lr=0.001`" in text
    assert "from the pre-trained model of 'base'" in text

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sweep-test")
    rows = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{out['run_id']}'")
    assert {r.data.tags["sweep.row"] for r in rows} == set(table)
    base = next(r for r in rows if r.data.tags["sweep.row"] == "base")
    assert base.data.metrics["ITR"] == pytest.approx(table["base"]["ITR"]["value"])
    assert base.data.metrics["ITR.ci_low"] == pytest.approx(table["base"]["ITR"]["ci_low"])
    other = next(r for r in rows if r.data.tags["sweep.row"] == "xmr at another rate")
    assert other.data.params["row.overrides"] == "finetune.xmr.lr=0.001"
    assert {a.path for a in client.list_artifacts(out["run_id"], "sweep")} >= {"sweep/sweep.md"}


@pytest.mark.parametrize("rows, message", [
    ([{"label": "a", "pretrained_from": "b"}, {"label": "b"}],
     r"rows\[0\] \('a'\)\.pretrained_from: 'b' is not the label of an earlier row"),
    ([{"label": "a", "tasks": ["xmr", "dance"]}], r"rows\[0\] \('a'\)\.tasks: unknown task\(s\) \['dance'\]"),
    ([{"label": "a"}, {"label": "a"}], "labels must be unique"),
    ([{"label": "a", "overide": []}], "overide"),
])
def test_a_bad_sweep_file_names_the_row_and_field(tmp_path, rows, message):
    module = _sweep_module()
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({"experiment": "x", "tasks": ["xmr"], "rows": rows}))
    with pytest.raises(ValueError, match=message) as error:
        module.read_sweep(spec)
    assert str(spec) in str(error.value)
