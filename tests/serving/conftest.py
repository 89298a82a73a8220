"""A real serving process on loopback, loading a bundle from a temporary sqlite registry."""

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from fashionvlp.tracking.mlflow_tracking import Tracking
from fashionvlp.tracking.registry import register_bundle, set_production

MODEL_NAME = "fashionvlp-serving-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving_process(config: dict, workdir: Path, timeout: float = 120):
    """``fashionvlp serve`` in a subprocess with ``config``; yields (base URL, log path)."""
    port = free_port()
    path = workdir / f"serving-{port}.yaml"
    path.write_text(yaml.safe_dump({**config, "port": port}))
    log = workdir / f"serving-{port}.log"
    exe = Path(sys.executable).parent / "fashionvlp"
    with log.open("w") as out:
        proc = subprocess.Popen([str(exe), "serve", "--config", str(path)], stdout=out, stderr=subprocess.STDOUT,
                                cwd=workdir, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited ({proc.returncode}):\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise AssertionError(f"server not ready after {timeout}s:\n{log.read_text()}")
            time.sleep(0.3)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def serving_registry(fashionvil_bundle, tmp_path_factory):
    """Two registered versions of the tiny bundle; production → version 1."""
    _, bundle = fashionvil_bundle
    tmp = tmp_path_factory.mktemp("serving-registry")
    tracking = Tracking(f"sqlite:///{tmp / 'mlflow.db'}", "serving-test", (tmp / "artifacts").as_uri())
    versions = []
    for itr in (10.0, 11.0):
        run_id = tracking.start_run("export")
        versions.append(register_bundle(tracking.client, run_id, bundle, MODEL_NAME, {"xmr.ITR": itr},
                                        {"git_sha": "test"}))
        tracking.end_run(run_id)
    set_production(tracking.client, MODEL_NAME, versions[0])
    return tracking, versions, bundle


@pytest.fixture(scope="session")
def server(serving_registry, tiny_catalog, tmp_path_factory):
    """One server for the session: production alias, hot reload every 0.5 s, search over the tiny catalog."""
    tracking, versions, _ = serving_registry
    work = tmp_path_factory.mktemp("serving")
    config = {"model": f"models:/{MODEL_NAME}@production", "tracking_uri": tracking.tracking_uri,
              "cache_dir": str(work / "cache"), "index": {"catalog": str(tiny_catalog)},
              "batching": {"enabled": True, "max_batch_size": 16, "max_wait_ms": 20},
              "limits": {"max_body_bytes": 300_000, "max_items": 8, "max_text_chars": 500,
                         "max_image_pixels": 512 * 512, "max_k": 20},
              "reload": {"poll_seconds": 0.5, "drain_seconds": 10}}
    with serving_process(config, work) as (url, log):
        yield url, log, tracking, versions


def catalog_image(catalog: Path, index: int = 0) -> tuple[str, bytes]:
    from fashionvlp.data.catalog_io import read_catalog

    product = list(read_catalog(catalog).iter_products())[index]
    return product.product_id, (catalog / product.images[0].path).read_bytes()


def body(**fields) -> str:
    return json.dumps(fields)
