"""Resume after a fault: the retrain flow, killed (SIGKILL) during pre-training, is run again with the same
command and continues from the last checkpoint, not from step 0, and completes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, TINY_MODEL, scratch_repo

pytestmark = pytest.mark.e2e


def test_killed_during_pretraining_the_rerun_resumes_from_the_checkpoint(tiny_catalog, tmp_path):
    repo = scratch_repo(tmp_path, tiny_catalog)
    overrides = TINY_MODEL + ["evaluation.allow_fallback=true", "pretrain.steps=60", "pretrain.checkpoint_every=5",
                              "finetune.tasks=[]"]
    command = [sys.executable, str(REPO / "flows" / "retrain.py"), f"--params={repo / 'params.yaml'}",
               *[f"--set={o}" for o in overrides]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")} | {
        "PREFECT_HOME": str(tmp_path / "prefect-home")}
    out = repo / "derived" / "pretrain" / "fashionvil"
    first_log = tmp_path / "first.log"
    with first_log.open("w") as log:
        first = subprocess.Popen(command, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    deadline = time.time() + 300
    while not list((out / "checkpoints").glob("step_*")):
        assert first.poll() is None, f"the flow ended before a checkpoint:\n{first_log.read_text()[-3000:]}"
        if time.time() > deadline:                          # a hang guard, not a speed check
            pytest.fail("no checkpoint appeared within 300 s")
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)                  # the fault: the whole flow process group, at once
    first.wait(30)
    assert not (out / "summary.json").exists()             # it did not finish

    second = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 60 and summary["resumed_from"] is not None and summary["resumed_from"] >= 5
