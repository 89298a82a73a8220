"""XMR evaluation of a saved model: protocol labels, the too-small-split error, MLflow metrics."""

import json

from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from fashionvlp.cli import app
from fashionvlp.stages.evaluate import evaluate
from fashionvlp.stages.pretrain import pretrain
from fashionvlp.tracking.mlflow_tracking import Tracking
from tests.conftest import tiny_params


def test_xmr_on_a_split_too_small_for_the_paper_protocol(tiny_catalog, tiny_patch_labels, tmp_path):
    params = tiny_params(tmp_path, "pretrain.steps=1")
    model_dir = pretrain(params, tiny_catalog, tiny_patch_labels).model_dir
    res = CliRunner().invoke(app, ["evaluate", "--model", str(model_dir), "--catalog", str(tiny_catalog),
                                   "--no-track", "--out", str(tmp_path / "eval")])
    assert res.exit_code == 1
    assert "needs ≥ 101 products per subcategory; too small:" in res.output
    assert not (tmp_path / "eval" / "xmr.json").exists()

    params = tiny_params(tmp_path, "pretrain.steps=1", "evaluation.allow_fallback=true")
    result = evaluate(params, "xmr", model_dir, tiny_catalog, out=tmp_path / "eval", tracking=Tracking.from_params(params))
    assert "FALLBACK" in result["paper"]["protocol"] and result["full"]["protocol"].startswith("full gallery")
    assert set(result["paper"]) == {"ITR", "TIR", "protocol"} and set(result["paper"]["ITR"]) == {"R@1", "R@5", "R@10"}
    assert json.loads((tmp_path / "eval" / "xmr.json").read_text())["split"] == "test"
    metrics = MlflowClient(params.tracking_uri).get_run(result["run_id"]).data.metrics
    assert {"xmr.paper.ITR.recall_at_1", "xmr.full.TIR.recall_at_10"} <= set(metrics)
