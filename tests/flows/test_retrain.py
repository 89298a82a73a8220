"""The retrain flow on a real (temporary) Prefect API and a real sqlite MLflow store."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, TINY_MODEL, scratch_repo

pytestmark = pytest.mark.e2e


def test_retrain_flow_runs_the_chain_from_data_to_the_promotion_gate(prefect_harness, tiny_catalog, tmp_path):
    sys.path.insert(0, str(REPO / "flows"))
    from retrain import RetrainParameters, report, retrain

    # The tiny config written into the repository's params.yaml (no overrides), so DVC sees what the run does.
    repo = scratch_repo(tmp_path, tiny_catalog, TINY_MODEL + [
        "evaluation.allow_fallback=true", "finetune.tasks=[xmr, classification, tgir, ocir, attributes, captioning]"])
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "data"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "data"], cwd=repo, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()

    parameters = RetrainParameters(params_file=str(repo / "params.yaml"))
    out = retrain(parameters)
    pin = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]["md5"]
    run = MlflowClient(out["tracking_uri"]).get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["data.dvc_md5"] == pin
    assert run.data.tags["data.workspace_matches"] == "True"
    assert run.data.tags["data.git_sha"] == sha == run.data.tags["mlflow.source.git.commit"]
    assert run.data.params["data.synth.num_products"] == "140"
    assert run.data.metrics["data.products"] == 140
    assert (repo / "mlflow" / "artifacts").is_dir()     # explicit artifact location, not ./mlruns

    # One nested MLflow run per stage under the flow's parent run.
    client = MlflowClient(out["tracking_uri"])
    children = {r.data.tags["mlflow.runName"]: r for r in client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{out['run_id']}'")}
    tasks = ["xmr", "classification", "tgir", "ocir", "attributes"]
    assert {"vqvae", "pretrain-fashionvil", "evaluate-xmr-fashionvil",
            *[f"finetune-{t}-fashionvil" for t in tasks]} <= set(children)
    assert out["skipped"] == {"captioning": "the fashionvil architecture cannot run it"}   # no decoder
    assert "classification.CR.accuracy" in children["finetune-classification-fashionvil"].data.metrics
    assert "tgir.mean.recall_at_10" in children["finetune-tgir-fashionvil"].data.metrics
    # 140 products: too few for the 1 + 100 protocol
    assert "FALLBACK" in out["downstream"]["xmr (pre-trained)"]["metrics"]["paper"]["protocol"]
    assert {"finetuned.ocir.OCIR", "pretrained.xmr.ITR"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(out["run_id"], "report")}
    assert {"report/report.md", "report/xmr_xmr_recall_at_k.png", "report/attributes_attributes_pr.png"} <= artifacts
    assert children["vqvae"].data.metrics["vqvae.codes_used"] >= 1
    assert "vqvae.perplexity" in children["vqvae"].data.metrics
    pre = children["pretrain-fashionvil"]
    assert pre.info.status == "FINISHED" and pre.data.tags["data.dvc_md5"] == pin
    assert any(k.startswith("loss/") for k in pre.data.metrics)
    assert (repo / "derived" / "pretrain" / "fashionvil" / "model" / "model.safetensors").exists()

    printed = io.StringIO()                          # what `make run` prints at the end (not capsys: Prefect's
    with contextlib.redirect_stdout(printed):        # log handler would keep its closed stream for later tests)
        report(out)
    printed = printed.getvalue()
    assert "== where to look ==" in printed and "FALLBACK" in printed and "category-balanced" in printed

    # Export → register as challenger → gate (the first version becomes champion; production is not moved).
    from fashionvlp.serving.bundle import Bundle
    from fashionvlp.tracking.registry import CHALLENGER, CHAMPION

    name, version = out["registered"]["name"], out["registered"]["version"]
    assert name == "fashionvlp-fashionvil" and version == "1" and out["gate"]["promoted"]
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == version
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == version
    assert "production" not in client.get_registered_model(name).aliases
    assert client.get_model_version(name, version).tags["lineage.data_dvc_md5"] == pin
    assert run.data.tags["registry.version"] == version
    bundle = Bundle(out["bundle"])
    assert set(bundle.sessions) == {"image", "text", "attributes", "categories"}
    assert bundle.embed_texts(["a red dress"]).shape[0] == 1
    assert {"export-fashionvil", f"promote-{name}"} <= {r.data.tags["mlflow.runName"] for r in client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{out['run_id']}'")}
    assert f"{name} version 1" in printed and "alias challenger" in printed

    # DVC: the stages' outputs are in dvc.lock, `dvc status` has nothing to say, and the next run's patch
    # labels are skipped; validation is cached by its inputs.
    from prefect import flow
    from retrain import validate, vqvae

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert out["dvc_lock"] == str(repo / "dvc.lock")
    assert {"validate", "vqvae", "pretrain", "evaluate_xmr", "finetune@xmr", "finetune@attributes", "export"} <= set(lock)
    assert "finetune@captioning" not in lock
    stages = ["validate", "vqvae", "pretrain", "evaluate_xmr", "finetune@ocir", "export"]
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json", *stages], cwd=repo,
                            capture_output=True, text=True)
    assert status.returncode == 0 and json.loads(status.stdout) == {}, status.stdout + status.stderr
    assert vqvae.fn(parameters, str(repo / "data"), out["run_id"])["skipped"]

    @flow
    def validate_twice():
        return [validate(parameters, str(repo / "data"), pin, return_state=True) for _ in range(2)]

    states = validate_twice()
    assert states[1].name == "Cached" and states[1].result()["counts"] == states[0].result()["counts"]

    # The fan-out's fine-tunings (pool workers) give, to the bit, what a standalone run in a fresh process
    # gives: each training stage sets its own thread count, nothing depends on the hash seed or the pool,
    # and evaluation does not depend on its thread count (the workers evaluate on their share of the
    # cores, the standalone run on evaluation.threads; only that recorded count may differ).
    from fashionvlp.stages.finetune import flat_numbers

    cli = Path(sys.executable).parent / "fashionvlp"
    for task in ("classification", "tgir"):
        alone = tmp_path / f"standalone-{task}"
        res = subprocess.run([str(cli), "finetune", "--task", task, "--init-from", out["pretrain"]["model_dir"],
                              "--params", str(repo / "params.yaml"), "--catalog", str(repo / "data"),
                              "--out", str(alone), "--no-track"], env={**os.environ, "PYTHONHASHSEED": "7"},
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
        standalone = json.loads((alone / "metrics.json").read_text())
        threads = f"{task}.evaluation.torch_threads"
        alone_numbers = flat_numbers(standalone, task)
        pooled_numbers = flat_numbers(out["downstream"][task]["metrics"], task)
        settings = parameters.load()
        share = min(settings.evaluation.threads, max(1, (os.cpu_count() or 1) // settings.finetune.workers))
        assert alone_numbers.pop(threads) == settings.evaluation.threads and pooled_numbers.pop(threads) == share
        assert alone_numbers == pooled_numbers
