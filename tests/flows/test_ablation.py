"""The ablation flow on a real Prefect API, a process pool and a real sqlite MLflow store (tiny rows)."""

import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, TINY_MODEL


def test_ablation_writes_the_papers_table(prefect_harness, tiny_catalog, tiny_patch_labels, tmp_path):
    sys.path.insert(0, str(REPO / "flows"))
    from ablation import AblationParameters, ablation

    overrides = TINY_MODEL + [f"paths.derived={tmp_path / 'derived'}", f"tracking.store={tmp_path / 'mlflow.db'}",
                              f"tracking.artifact_root={tmp_path / 'artifacts'}", "evaluation.allow_fallback=true",
                              "pretrain.steps=2"]
    rows = ["None", "ITC", "same, w/o sharing TE and FE"]
    out = ablation(AblationParameters(presets=[], overrides=overrides, catalog=str(tiny_catalog),
                                      fashionvil_rows=rows))
    table = out["table"]
    assert list(table["fashionvil"]) == rows
    for row in table["fashionvil"].values():
        assert set(row) == {"ITR", "TIR", "TGIR", "SCR", "OCIR", "Meta-sum"}
        assert row["Meta-sum"] == pytest.approx(sum(v for k, v in row.items() if k != "Meta-sum"))
    assert set(table["kgflip"]) == {"KG-FLIP: KG-MLIM + KG-ITM + LM (guided)", "unguided: MLM + ITM + LM"}
    text = (tmp_path / "derived" / "ablation" / "ablation.md").read_text()
    assert "| Pre-training tasks | ITR | TIR | TGIR | SCR | OCIR | Meta-sum |" in text and "ATTR_R@90P" in text

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(out["run_id"])
    assert "fashionvil.none.Meta-sum" in parent.data.metrics
    assert {a.path for a in client.list_artifacts(out["run_id"], "ablation")} >= {"ablation/ablation.md"}
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{out['run_id']}'")
    assert {r.data.tags["ablation.row"] for r in children} == set(rows) | set(table["kgflip"])
    # The separate-encoder row really has no shared fusion encoder.
    import json

    separate = tmp_path / "derived" / "ablation" / "fashionvil" / "same-w-o-sharing-te-and-fe" / "pretrain" / "model"
    assert json.loads((separate / "model.json").read_text())["model"]["shared_fusion"] is False
