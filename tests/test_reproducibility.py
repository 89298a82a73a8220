"""Same commit, params and seed → the same metrics, to the bit: a small pipeline (VQ-VAE, pre-training,
fine-tuning and evaluation of two tasks) run twice in fresh processes with different hash seeds."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY_MODEL

pytestmark = pytest.mark.e2e

PIPELINE = """
import json, sys
from pathlib import Path
from fashionvlp.config import load_params
from fashionvlp.stages.finetune import finetune, flat_numbers
from fashionvlp.stages.pretrain import pretrain
from fashionvlp.stages.vqvae import train_vqvae

out, catalog, overrides = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
params = load_params(sys.argv[4], overrides=overrides + [f"paths.derived={out}"])
labels = train_vqvae(params, catalog).labels_dir
model = pretrain(params, catalog, labels).model_dir
numbers = {}
for task in ("xmr", "classification"):
    numbers |= flat_numbers(finetune(params, task, model, catalog).metrics, task)
(out / "numbers.json").write_text(json.dumps(numbers, sort_keys=True))
"""


def test_a_small_pipeline_twice_gives_identical_metrics(tiny_catalog, tmp_path):
    overrides = TINY_MODEL + ["evaluation.allow_fallback=true", "pretrain.steps=6"]
    runs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"run-{hash_seed}"
        res = subprocess.run([sys.executable, "-c", PIPELINE, str(out), str(tiny_catalog), json.dumps(overrides),
                              str(REPO / "params.yaml")], env={**os.environ, "PYTHONHASHSEED": hash_seed},
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        runs.append(json.loads((out / "numbers.json").read_text()))
    first, second = runs
    assert len(first) > 40 and first.keys() == second.keys()
    differing = {k: (first[k], second[k]) for k in first if first[k] != second[k]}
    assert not differing, differing
    assert "xmr.intervals.ITR.ci_low" in first and "classification.intervals.SCR.ci_high" in first
