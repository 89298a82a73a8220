"""The VQ-VAE and pre-training stages on the tiny catalog: outputs, tracking, exact resume, bad input."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from fashionvlp.data.catalog_io import read_catalog
from fashionvlp.data.patch_labels import read_patch_labels
from fashionvlp.errors import ModelInputError
from fashionvlp.models.text_encoders import train_wordpiece
from fashionvlp.stages.pretrain import pretrain
from fashionvlp.tracking.mlflow_tracking import Tracking
from tests.conftest import KGFLIP, tiny_params


def test_patch_labels_align_with_the_encoder_grid(tiny_catalog, tiny_patch_labels):
    labels = read_patch_labels(tiny_patch_labels)
    assert labels.grid == (8, 8) and labels.image_size == 64 and labels.codebook_size == 32
    assert labels.codes.shape[1] == 64 and labels.codes.max() < 32 and labels.codes.min() >= 0
    meta = json.loads((tiny_patch_labels / "meta.json").read_text())
    assert meta["vqvae"]["codes_used"] + meta["vqvae"]["dead_codes"] == 32
    vq_dir = tiny_patch_labels.parent / "vqvae"
    assert (vq_dir / "reconstructions.png").exists() and (vq_dir / "vqvae.pt").exists()
    metrics = json.loads((vq_dir / "metrics.json").read_text())
    assert metrics["perplexity"] > 1 and metrics["reconstruction_mse"] > 0
    assert metrics["colour_error"] >= 0 and metrics["colour_error_grey"] > 0 and metrics["coloured_cells"] > 0


def test_the_colour_check_scores_a_perfect_and_a_grey_reconstruction():
    from fashionvlp.stages.vqvae import COLOURED_CELL, _encode_all

    class Reconstructs(torch.nn.Module):  # a stand-in VQ-VAE that decodes to ``decode(pixels)``, one code per 8×8
        def __init__(self, decode):
            super().__init__()
            self.decode = decode

        def forward(self, pixels):
            return self.decode(pixels), torch.zeros(len(pixels), 4, 4, dtype=torch.long), torch.zeros(())

    # Flat colour blocks, one per 8×8 cell: strongly coloured cells and grey ones.
    images = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8).repeat_interleave(8, 2).repeat_interleave(8, 3)
    _, exact = _encode_all(Reconstructs(lambda x: x), [images], len(images))
    _, grey = _encode_all(Reconstructs(lambda x: x.mean(1, keepdim=True).expand_as(x)), [images], len(images))
    assert exact["coloured_cells"] == grey["coloured_cells"] > 0
    assert exact["colour_error"] == pytest.approx(0.0, abs=1e-3)
    assert grey["colour_error"] == pytest.approx(grey["colour_error_grey"], rel=1e-5)
    assert grey["colour_error_grey"] > COLOURED_CELL


@pytest.mark.parametrize("arch_overrides", [[], KGFLIP], ids=["fashionvil", "kgflip"])
def test_pretrain_tracks_losses_config_data_version_and_weights(tiny_catalog, tiny_patch_labels, tmp_path,
                                                                  arch_overrides):
    params = tiny_params(tmp_path, *arch_overrides)
    tracking = Tracking.from_params(params)
    result = pretrain(params, tiny_catalog, tiny_patch_labels, tracking=tracking)
    assert result.finished and result.summary["steps"] == 4
    run = MlflowClient(params.tracking_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    objectives = list(params.pretrain.active_objectives)
    logged = set(run.data.metrics)
    assert {"lr", "samples_per_s"} <= logged
    assert any(f"loss/{name}" in logged for name in objectives)
    assert run.data.params["model.arch"] == params.model.arch
    assert run.data.tags["data.catalog_md5"] == result.summary["catalog_md5"]
    artifacts = {a.path for a in MlflowClient(params.tracking_uri).list_artifacts(result.run_id, "model")}
    assert {"model/model.safetensors", "model/model.json", "model/tokenizer"} <= artifacts
    if params.pretrain.combine == "sum":   # every step runs every objective
        history = [json.loads(line) for line in (result.out / "history.jsonl").read_text().splitlines()]
        assert all(f"loss/{n}" in row for row in history for n in objectives)


def test_resume_is_exact(tiny_catalog, tiny_patch_labels, tmp_path):
    # One tokenizer for both runs (WordPiece training is not bit-reproducible across processes).
    train_wordpiece([p["title"] for p in read_catalog(tiny_catalog).products.to_pylist()] * 3, 300, tmp_path / "tok")
    params = tiny_params(tmp_path, "pretrain.steps=6", "pretrain.checkpoint_every=3",
                         f"model.text.tokenizer={tmp_path / 'tok'}")
    straight = pretrain(params, tiny_catalog, tiny_patch_labels, out=tmp_path / "straight")
    first = pretrain(params, tiny_catalog, tiny_patch_labels, out=tmp_path / "resumed", stop_after=3)
    assert not first.finished and first.summary["steps"] == 3
    second = pretrain(params, tiny_catalog, tiny_patch_labels, out=tmp_path / "resumed")
    assert second.finished and second.summary["resumed_from"] == 3
    a = load_file(straight.model_dir / "model.safetensors")
    b = load_file(second.model_dir / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run"
    rows = lambda r: [json.loads(x) for x in (r.out / "history.jsonl").read_text().splitlines()]  # noqa: E731
    strip = lambda row: {k: v for k, v in row.items() if k != "samples_per_s"}  # noqa: E731
    assert [strip(r) for r in rows(straight)] == [strip(r) for r in rows(second)]


def test_bad_inputs_fail_before_training(tiny_catalog, tiny_patch_labels, tmp_path):
    # patch labels from another grid (a 128 px micro ViT with 8 px patches has a 16×16 grid)
    with pytest.raises(ModelInputError, match="8×8 grid.*16×16"):
        pretrain(tiny_params(tmp_path, "model.image.image_size=128"), tiny_catalog, tiny_patch_labels)
    # a catalog other than the one the labels were made from
    changed = tmp_path / "catalog"
    shutil.copytree(tiny_catalog, changed)
    image = next((changed / "images").rglob("*.jpg"))
    image.write_bytes(image.read_bytes() + b"\0")
    with pytest.raises(ModelInputError, match="made from catalog version"):
        pretrain(tiny_params(tmp_path), changed, tiny_patch_labels)
    # a missing checkpoint, a tokenizer of another model, missing labels
    with pytest.raises(ModelInputError, match="does not exist"):
        pretrain(tiny_params(tmp_path, "model.image.name=resnet18", "model.image.pretrained=true",
                             f"model.image.checkpoint={tmp_path / 'resnet18.pth'}", "pretrain.objectives.mpfc=0"),
                 tiny_catalog, tiny_patch_labels)
    train_wordpiece(["a blue v-neck dress with long sleeves"] * 50, 200, tmp_path / "tok")
    with pytest.raises(ModelInputError, match="do not belong together"):
        pretrain(tiny_params(tmp_path, "model.text.source=minilm", f"model.text.tokenizer={tmp_path / 'tok'}"),
                 tiny_catalog, tiny_patch_labels)
    with pytest.raises(ModelInputError, match="holds no patch labels"):
        pretrain(tiny_params(tmp_path), tiny_catalog, tmp_path / "nowhere")
    with pytest.raises(ModelInputError, match="'lm' needs decode"):
        pretrain(tiny_params(tmp_path, "pretrain.objectives.lm=1"), tiny_catalog, tiny_patch_labels)
    assert not (tmp_path / "derived" / "pretrain" / "fashionvil" / "checkpoints").exists()


def test_kgflip_patch_labels_not_needed(tiny_catalog, tmp_path):
    result = pretrain(tiny_params(tmp_path, *KGFLIP, "pretrain.steps=2"), tiny_catalog, tmp_path / "no-labels")
    assert result.finished
    assert np.isfinite([row["last"] for row in result.summary["losses"].values()]).all()


def test_distributed_data_parallel_on_two_cpu_processes(tiny_catalog, tiny_patch_labels, tmp_path):
    """`accelerate launch` with configs/accelerate/cpu_ddp.yaml, 2 CPU processes: a gloo DDP group; ITC
    gathers, batches are sharded."""
    import os
    import subprocess
    import sys

    import yaml

    from fashionvlp.config import load_params
    from tests.conftest import REPO, TINY_MODEL

    every_step = ["pretrain.steps=3", "pretrain.combine=sum",   # ITC/MVC gather and ITM mines on every step
                  "pretrain.objectives={itc: 1, itm: 1, mlm: 0, mpfc: 1, mvc: 1, pac: 0}"]
    values = load_params(REPO / "params.yaml", overrides=TINY_MODEL + every_step).model_dump(
        mode="json", exclude={"root"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(values))
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file",
                str(REPO / "configs" / "accelerate" / "cpu_ddp.yaml"), "-m", "fashionvlp.cli", "pretrain",
                "--params", str(tmp_path / "params.yaml"), "--no-track", "--catalog", str(tiny_catalog),
                "--patch-labels", str(tiny_patch_labels), "--out", str(tmp_path / "out")]
    res = subprocess.run(launcher, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["samples"] == 3 * 8 * 2   # two processes, 8 each per step
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()
