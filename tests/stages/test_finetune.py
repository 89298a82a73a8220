"""Fine-tuning from a saved model: XMR and CR/SCR, their metrics and heads, and the wrong-architecture error."""

import json

import pytest
from mlflow.tracking import MlflowClient

from fashionvlp.models.image_encoders import ModelInputError
from fashionvlp.stages.finetune import finetune
from fashionvlp.stages.pretrain import pretrain
from fashionvlp.tracking.mlflow_tracking import Tracking
from tests.conftest import KGFLIP, tiny_params


@pytest.fixture(scope="module")
def pretrained(tiny_catalog, tiny_patch_labels, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pre")
    return pretrain(tiny_params(tmp, "pretrain.steps=2"), tiny_catalog, tiny_patch_labels).model_dir


@pytest.mark.parametrize("task", ["xmr", "classification"])
def test_finetune_then_evaluate(tiny_catalog, pretrained, tmp_path, task):
    params = tiny_params(tmp_path, "evaluation.allow_fallback=true")
    result = finetune(params, task, pretrained, tiny_catalog, tracking=Tracking.from_params(params))
    metrics = json.loads((result.model_dir.parent / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["losses"]
    assert (result.model_dir / "objectives.safetensors").exists()
    assert json.loads((result.model_dir / "model.json").read_text())["finetuned_from"] == str(pretrained)
    logged = MlflowClient(params.tracking_uri).get_run(result.run_id).data.metrics
    if task == "xmr":
        assert "FALLBACK" in metrics["paper"]["protocol"]
        assert "xmr.full.ITR.recall_at_10" in logged
    else:
        assert set(metrics["CR"]) == {"accuracy", "macro_f1", "classes", "chance_accuracy"}
        assert metrics["SCR"]["classes"] == 14 and "classification.SCR.macro_f1" in logged


def test_checkpoint_of_the_other_architecture(tiny_catalog, pretrained, tmp_path):
    with pytest.raises(ModelInputError, match="holds a fashionvil model, but kgflip was asked for"):
        finetune(tiny_params(tmp_path, *KGFLIP), "classification", pretrained, tiny_catalog)
    with pytest.raises(ModelInputError, match="unknown task 'tgir'"):
        finetune(tiny_params(tmp_path), "tgir", pretrained, tiny_catalog)
