"""Real DVC in a scratch git repo: the hash we compute is DVC's, and add/push/pull/repro work."""

import shutil
import subprocess
import sys

import yaml

from fashionvlp.data.versioning import dir_md5, pinned_md5, workspace_matches
from fashionvlp.config import load_params
from tests.conftest import REPO, TINY_MODEL


def _sh(args, cwd):
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert res.returncode == 0, (args, res.stdout, res.stderr)
    return res.stdout


def test_dvc_add_push_pull_repro(tiny_catalog, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    dvc = [sys.executable, "-m", "dvc"]
    _sh(["git", "init", "-q"], repo)
    _sh(dvc + ["init", "-q"], repo)
    shutil.copytree(tiny_catalog, repo / "data")
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    # The tiny model's values written into params.yaml, so `dvc repro pretrain` runs in seconds.
    params = load_params(REPO / "params.yaml", overrides=TINY_MODEL + ["evaluation.allow_fallback=true"]
                         ).model_dump(mode="json", exclude={"root"})
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copytree(REPO / "src" / "fashionvlp", repo / "src" / "fashionvlp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    _sh(dvc + ["add", "-q", "data"], repo)
    assert pinned_md5(repo / "data.dvc") == dir_md5(repo / "data")
    assert workspace_matches(repo, repo / "data.dvc")

    _sh(dvc + ["remote", "add", "--local", "-d", "local", str(tmp_path / "remote")], repo)
    _sh(dvc + ["push", "-q"], repo)
    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    assert not workspace_matches(repo, repo / "data.dvc")
    _sh(dvc + ["pull", "-q", "data.dvc"], repo)
    assert workspace_matches(repo, repo / "data.dvc")

    env_bin = str(REPO / ".venv" / "bin")
    res = subprocess.run(dvc + ["repro", "validate"], cwd=repo, capture_output=True, text=True,
                         env={**__import__("os").environ, "PATH": env_bin + ":" + __import__("os").environ["PATH"]})
    assert res.returncode == 0, res.stderr
    assert (repo / "dvc.lock").exists() and (repo / "derived" / "validation" / "report.md").exists()
    metrics = __import__("json").loads(_sh(dvc + ["metrics", "show", "--json"], repo))
    assert metrics[""]["data"]["derived/validation/summary.json"]["data"]["success"] == 1
    # unchanged inputs: DVC has nothing to rerun
    assert "didn't change" in _sh(dvc + ["repro", "validate"], repo)

    # VQ-VAE patch labels → pre-training, as DVC stages with params, outputs and metrics.
    res = subprocess.run(dvc + ["repro", "pretrain"], cwd=repo, capture_output=True, text=True,
                         env={**__import__("os").environ, "PATH": env_bin + ":" + __import__("os").environ["PATH"],
                              "PYTHONPATH": str(repo / "src")})
    assert res.returncode == 0, res.stderr[-3000:]
    assert (repo / "derived" / "patch_labels" / "codes.npy").exists()
    assert (repo / "derived" / "pretrain" / "fashionvil" / "model" / "model.safetensors").exists()
    metrics = __import__("json").loads(_sh(dvc + ["metrics", "show", "--json"], repo))[""]["data"]
    assert metrics["derived/vqvae/metrics.json"]["data"]["codebook_size"] == 32
    assert metrics["derived/pretrain/fashionvil/summary.json"]["data"]["steps"] == 4
    assert "didn't change" in _sh(dvc + ["repro", "pretrain"], repo)

    # Every downstream stage: zero-shot XMR, and one fine-tuning stage per task, with metrics and plots.
    res = subprocess.run(dvc + ["repro"], cwd=repo, capture_output=True, text=True,
                         env={**__import__("os").environ, "PATH": env_bin + ":" + __import__("os").environ["PATH"],
                              "PYTHONPATH": str(repo / "src")})
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = __import__("json").loads(_sh(dvc + ["metrics", "show", "--json"], repo))[""]["data"]
    for task in ("xmr", "classification", "tgir", "ocir", "attributes"):
        assert metrics[f"derived/finetune/fashionvil/{task}/metrics.json"]["data"]["task"] == task
    assert "FALLBACK" in metrics["derived/eval/fashionvil/xmr.json"]["data"]["paper"]["protocol"]
    assert (repo / "derived" / "export" / "fashionvil" / "attributes.onnx").exists()
    plots = __import__("json").loads(_sh(dvc + ["plots", "show", "--json"], repo))["data"]
    for name in ("XMR recall@K, full gallery (fine-tuned)", "TGIR recall@K (mean over FashionIQ groups)",
                 "OCIR recall@K (category-balanced)", "SCR confusion matrix",
                 "Attribute precision vs recall (one point per threshold, all attributes)"):
        values = plots[name][0]["content"]["data"]["values"]
        assert values, name
