"""prefect.yaml against a real `prefect server` on loopback: `make deploy` registers the cron deployments,
the server schedules their runs, and `prefect worker` (the `make worker` command, run once) executes a
triggered deployment from this checkout."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, TINY_MODEL

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_make_deploy_schedules_and_a_worker_runs_a_deployment(fashionvil_bundle, tmp_path):
    from fashionvlp.config import load_params
    from fashionvlp.tracking.mlflow_tracking import Tracking
    from fashionvlp.tracking.registry import CHAMPION, PRODUCTION, register_bundle

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "prefect-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")} | {
        "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    prefect = str(Path(sys.executable).parent / "prefect")
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for(lambda: _ok(f"{api}/health"), 120, "the Prefect server")
        # The Makefile target itself, with the .venv stamp taken as up to date.
        deploy = subprocess.run(["make", "-o", ".venv/.installed", "deploy", f"FLOW_API={api}",
                                 f"PREFECT_HOME={home}"], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=300)
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        deployments = {d["name"]: d for d in httpx.post(f"{api}/deployments/filter", json={}).json()}
        assert {"nightly", "weekly", "manual"} <= set(deployments)
        assert deployments["nightly"]["entrypoint"] == "flows/retrain.py:retrain"
        assert deployments["weekly"]["entrypoint"] == "flows/backfill.py:backfill"
        crons = {n: [s["schedule"]["cron"] for s in d["schedules"]] for n, d in deployments.items()}
        assert crons["nightly"] == ["0 2 * * *"] and crons["weekly"] == ["0 5 * * 0"] and crons["manual"] == []
        assert all(d["work_pool_name"] == "fashionvlp" for d in deployments.values())
        # The server's scheduler creates the upcoming nightly runs by itself.
        scheduled = wait_for(lambda: httpx.post(f"{api}/flow_runs/filter", json={
            "deployments": {"id": {"any_": [deployments["nightly"]["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}).json(), 90, "scheduled nightly runs")
        assert all(r["expected_start_time"][11:16] == "02:00" for r in scheduled)

        # A challenger in a temporary registry; the manual (promote) deployment run by a worker.
        overrides = TINY_MODEL + [f"tracking.store={tmp_path / 'mlflow.db'}",
                                  f"tracking.artifact_root={tmp_path / 'artifacts'}"]
        tracking = Tracking.from_params(load_params(REPO / "params.yaml", overrides=overrides))
        run_id = tracking.start_run("export")
        metrics = {"xmr.ITR": 1.0, "xmr.TIR": 1.0, "classification.SCR": 1.0, "attributes.ATTR_R@90P": 1.0}
        version = register_bundle(tracking.client, run_id, fashionvil_bundle[1], "fashionvlp-fashionvil", metrics, {})
        tracking.end_run(run_id)
        run = httpx.post(f"{api}/deployments/{deployments['manual']['id']}/create_flow_run", json={
            "parameters": {"parameters": {"overrides": overrides, "set_production": True}}}).json()
        worker = subprocess.run([prefect, "worker", "start", "--pool", "fashionvlp", "--run-once"],
                                env=env | {"PREFECT_API_URL": api}, cwd=tmp_path, capture_output=True, text=True,
                                timeout=300)
        state = wait_for(lambda: _final_state(api, run["id"]), 120, "the flow run to finish")
        assert state == "COMPLETED", worker.stdout[-3000:] + worker.stderr[-3000:]
        client = tracking.client
        assert str(client.get_model_version_by_alias("fashionvlp-fashionvil", CHAMPION).version) == version
        assert str(client.get_model_version_by_alias("fashionvlp-fashionvil", PRODUCTION).version) == version
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _final_state(api: str, run_id: str) -> str | None:
    state = httpx.get(f"{api}/flow_runs/{run_id}").json()["state"]["type"]
    return state if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None
