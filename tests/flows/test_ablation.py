"""The ablation flow on a real Prefect API, a process pool and a real sqlite MLflow store (tiny rows)."""

import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, TINY_MODEL

pytestmark = pytest.mark.e2e


def test_ablation_writes_the_papers_table(prefect_harness, tiny_catalog, tiny_patch_labels, tmp_path):
    sys.path.insert(0, str(REPO / "flows"))
    from ablation import AblationParameters, ablation

    overrides = TINY_MODEL + [f"paths.derived={tmp_path / 'derived'}", f"tracking.store={tmp_path / 'mlflow.db'}",
                              f"tracking.artifact_root={tmp_path / 'artifacts'}", "evaluation.allow_fallback=true",
                              "pretrain.steps=2"]
    rows = ["None", "same, w/o sharing TE and FE"]
    out = ablation(AblationParameters(presets=[], overrides=overrides, catalog=str(tiny_catalog),
                                      fashionvil_rows=rows, seeds=2))
    table = out["table"]
    assert list(table["fashionvil"]) == rows
    for row in table["fashionvil"].values():
        assert set(row) == {"ITR", "TIR", "TGIR", "SCR", "OCIR", "Meta-sum"}
        assert row["Meta-sum"] == pytest.approx(sum(v for k, v in row.items() if k != "Meta-sum"))
    for label, seeds in out["per_seed"]["fashionvil"].items():           # 2 pre-training seeds per row
        assert len(seeds) == 2
        for column in ("ITR", "Meta-sum"):
            assert out["table"]["fashionvil"][label][column] == pytest.approx(np.mean([r[column] for r in seeds]))
            assert out["std"]["fashionvil"][label][column] == pytest.approx(np.std([r[column] for r in seeds], ddof=1))
    assert set(table["kgflip"]) == {"KG-FLIP: KG-MLIM + KG-ITM + LM (guided)", "unguided: MLM + ITM + LM"}
    text = (tmp_path / "derived" / "ablation" / "ablation.md").read_text()
    assert "| Pre-training tasks | ITR | TIR | TGIR | SCR | OCIR | Meta-sum |" in text and "ATTR_R@90P" in text
    assert " ± " in text and "2 pre-training seed(s) [0, 1]" in text

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(out["run_id"])
    assert "fashionvil.none.Meta-sum" in parent.data.metrics
    assert {a.path for a in client.list_artifacts(out["run_id"], "ablation")} >= {"ablation/ablation.md"}
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{out['run_id']}'")
    assert {r.data.tags["ablation.row"] for r in children} == set(rows) | set(table["kgflip"])
    # The separate-encoder row really has no shared fusion encoder.
    import json

    separate = tmp_path / "derived" / "ablation" / "fashionvil" / "same-w-o-sharing-te-and-fe" / "seed-1" / "pretrain" / "model"
    assert json.loads((separate / "model.json").read_text())["model"]["shared_fusion"] is False
    # Pooled pre-trainings run on one thread each (two of two threads on two cores crawl).
    resolved = json.loads((separate.parent / "resolved_config.json").read_text())
    assert resolved["pretrain"]["threads"] == 1
    pretrain_runs = [r for r in client.search_runs([parent.info.experiment_id])
                     if "repro.torch_threads" in r.data.params and r.data.tags.get("stage") == "pretrain"]
    assert pretrain_runs and {r.data.params["repro.torch_threads"] for r in pretrain_runs} == {"1"}
