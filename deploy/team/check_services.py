"""Checks the team services of compose.yaml without Docker: the same server commands on a real PostgreSQL.

    python deploy/team/check_services.py        (make team-check; needs PostgreSQL 15 binaries and root)

Starts PostgreSQL in a temporary directory, creates the `mlflow` and `prefect` databases as
postgres-init.sql does, runs `mlflow server` on the first (artifacts served from a local directory: the
S3/MinIO store of compose.yaml is not exercised here) and `prefect server start` on the second, then, as
a project would: logs a run, registers a model version with an alias, and runs a Prefect flow against
them. Prints what it checked; exits non-zero on the first failure. Everything is stopped and removed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url}: not up after {timeout}s:\n{log.read_text()[-3000:]}")


def main() -> int:
    if not (PG / "initdb").exists():
        raise SystemExit(f"PostgreSQL binaries not found in {PG}")
    tmp = Path(tempfile.mkdtemp(prefix="fashionvlp-team-"))
    shutil.chown(tmp, "postgres")
    os.chmod(tmp, 0o777)
    pg_port, mlflow_port, prefect_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen] = []
    as_pg = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run(as_pg + [str(PG / "initdb"), "-D", str(tmp / "data"), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True)
        subprocess.run(as_pg + [str(PG / "pg_ctl"), "-D", str(tmp / "data"), "-l", str(tmp / "pg.log"), "-o",
                                f"-p {pg_port} -k {tmp} -c listen_addresses=127.0.0.1", "-w", "start"],
                       check=True, capture_output=True)
        for db in ("mlflow", "prefect"):
            subprocess.run(as_pg + [str(PG / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), db], check=True)
        print(f"postgres 15 on 127.0.0.1:{pg_port}: databases mlflow, prefect")

        bin_dir = Path(sys.executable).parent
        mlflow_log = tmp / "mlflow.log"
        procs.append(subprocess.Popen(
            [str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
             "--backend-store-uri", f"postgresql://postgres@127.0.0.1:{pg_port}/mlflow",
             "--artifacts-destination", (tmp / "artifacts").as_uri(), "--serve-artifacts"],
            stdout=mlflow_log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}))
        prefect_log = tmp / "prefect.log"
        (tmp / "prefect-home").mkdir()
        prefect_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")} | {
            "PREFECT_HOME": str(tmp / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{pg_port}/prefect"}
        procs.append(subprocess.Popen(
            [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
            stdout=prefect_log.open("w"), stderr=subprocess.STDOUT, env=prefect_env))
        wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120, procs[0], mlflow_log)
        print(f"mlflow server on 127.0.0.1:{mlflow_port} (backend postgresql, artifacts served)")
        wait_http(f"http://127.0.0.1:{prefect_port}/api/health", 120, procs[1], prefect_log)
        print(f"prefect server on 127.0.0.1:{prefect_port} (database postgresql+asyncpg)")

        # As the project uses them: a tracked run with an artifact, a registered version with an alias.
        from fashionvlp.tracking.mlflow_tracking import Tracking

        tracking = Tracking(f"http://127.0.0.1:{mlflow_port}", "team-check", None)
        with tracking.run("team-check", {"stage": "check"}) as run_id:
            tracking.log_metrics(run_id, {"check.value": 1.0})
            note = tmp / "note.txt"
            note.write_text("artifact through the tracking server")
            tracking.log_artifact(run_id, note, "check")
        client = tracking.client
        assert [a.path for a in client.list_artifacts(run_id, "check")] == ["check/note.txt"]
        client.create_registered_model("team-check-model")
        version = client.create_model_version("team-check-model", f"runs:/{run_id}/check", run_id=run_id)
        client.set_registered_model_alias("team-check-model", "champion", version.version)
        assert client.get_model_version_by_alias("team-check-model", "champion").version == version.version
        print(f"mlflow: run {run_id} with a metric and an artifact; team-check-model v{version.version} @champion")

        script = ("from prefect import flow, task\n@task\ndef double(x): return 2 * x\n"
                  "@flow(name='team-check')\ndef check(): return double(21)\nprint(check())\n")
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             env=prefect_env | {"PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api"})
        assert out.returncode == 0 and out.stdout.strip().endswith("42"), out.stderr[-2000:]
        import httpx

        runs = httpx.post(f"http://127.0.0.1:{prefect_port}/api/flow_runs/filter", json={}).json()
        assert any(r["state_type"] == "COMPLETED" for r in runs)
        print(f"prefect: flow run recorded in postgres ({len(runs)} run, state COMPLETED)")
        print("team services: OK")
        return 0
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(as_pg + [str(PG / "pg_ctl"), "-D", str(tmp / "data"), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
