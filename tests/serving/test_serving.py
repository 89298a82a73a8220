"""Serving over real HTTP on loopback: a `fashionvlp serve` process loading models:/<name>@production from a
temporary sqlite registry, good and bad inputs, micro-batching, and the alias moving while under load."""

import base64
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from tests.serving.conftest import MODEL_NAME, catalog_image

REPO = Path(__file__).resolve().parents[2]


def post(url, path, payload, **kw):
    return httpx.post(f"{url}{path}", json=payload, timeout=60, **kw)


def test_ready_reports_provider_model_and_index(server, tiny_catalog):
    url, log, _, versions = server
    ready = httpx.get(f"{url}/readyz").json()
    assert ready["ready"] and ready["model"]["version"] == versions[0]
    assert ready["model"]["uri"] == f"models:/{MODEL_NAME}@production"
    assert ready["provider"] == "CPUExecutionProvider"  # CI has no GPU: the fallback must be said, not silent
    assert ready["requested_providers"][0] == "CUDAExecutionProvider" and ready["cpu_fallback"]
    assert "CUDA" in ready["fallback_reason"] or "driver" in ready["fallback_reason"]
    assert "CPU FALLBACK" in log.read_text()
    assert ready["index"]["products"] == 140 and ready["hot_reload"]
    assert "/" not in ready["model"]["bundle"] and "/" not in ready["index"]["catalog"]   # no host paths
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    import re

    started = next(line for line in log.read_text().splitlines() if "Uvicorn running" in line)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", started), started   # uvicorn's lines are timestamped too


def test_embeddings_search_attributes_categories(server, tiny_catalog, fashionvil_bundle):
    from fashionvlp.serving.bundle import Bundle

    url, *_ = server
    bundle = Bundle(fashionvil_bundle[1])
    texts = ["red midi dress with long sleeves", "black leather ankle boots"]
    got = post(url, "/v1/embed/text", {"texts": texts}).json()
    np.testing.assert_allclose(np.array(got["embeddings"]), bundle.embed_texts(texts), atol=1e-5)

    product_id, raw = catalog_image(tiny_catalog, 3)
    image = post(url, "/v1/embed/image", {"images": [base64.b64encode(raw).decode()]}).json()
    expected = bundle.embed_images([bundle.pixels(Image.open(io.BytesIO(raw)).convert("RGB"))])
    np.testing.assert_allclose(np.array(image["embeddings"]), expected, atol=1e-5)

    results = post(url, "/v1/search", {"text": "red dress", "k": 5}).json()["results"]
    assert len(results) == 5 and all({"product_id", "score", "title", "category"} <= set(r) for r in results)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)

    request = {"image": base64.b64encode(raw).decode(), "text": "a red cotton dress"}
    attrs = post(url, "/v1/attributes", request).json()
    thresholds = json.loads((fashionvil_bundle[1] / "attribute_thresholds.json").read_text())["thresholds"]
    assert attrs["category"]["source"] == "predicted" and attrs["predictions"]
    for p in attrs["predictions"]:
        saved = thresholds.get(p["attribute"])
        assert p["accepted"] == (saved is not None and np.isfinite(saved) and p["confidence"] >= saved)
        assert (p["attribute"] in attrs["attributes"]) == p["accepted"]
    given = post(url, "/v1/attributes", {**request, "category": "SHOES"}).json()
    labels = json.loads((fashionvil_bundle[1] / "labels.json").read_text())
    assert {p["attribute"] for p in given["predictions"]} == set(labels["attributes_by_category"]["SHOES"])

    category = post(url, "/v1/categorize", request).json()
    assert category["category"]["value"] in labels["categories"]
    assert category["subcategory"]["value"] in labels["subcategories"]


def test_bad_inputs_get_a_clear_4xx(server, tiny_catalog):
    url, *_ = server
    _, raw = catalog_image(tiny_catalog)
    good = base64.b64encode(raw).decode()
    not_image = base64.b64encode(b"this is not an image").decode()
    big = io.BytesIO()
    Image.new("RGB", (600, 600), "red").save(big, "PNG")      # 360k pixels > the 512×512 limit
    cases = [
        ("/v1/embed/image", {"images": [good, not_image]}, 422, "images[1]", "not a readable image"),
        ("/v1/embed/image", {"images": ["%%%"]}, 422, "images[0]", "not base64"),
        ("/v1/embed/image", {"images": [base64.b64encode(big.getvalue()).decode()]}, 413, "images[0]", "pixels"),
        ("/v1/embed/text", {"texts": ["ok", "   "]}, 422, "texts[1]", "empty text"),
        ("/v1/embed/text", {"texts": []}, 422, "texts", "empty list"),
        ("/v1/embed/text", {"texts": ["x"] * 9}, 413, "texts", "over the limit of 8"),
        ("/v1/embed/text", {"texts": ["x" * 501]}, 413, "texts[0]", "over the limit of 500"),
        ("/v1/search", {"text": "", "k": 3}, 422, "text", "empty text"),
        ("/v1/search", {"text": "dress", "k": 21}, 422, "k", "over the limit"),
        ("/v1/attributes", {"image": good, "text": "dress", "category": "SPACESHIPS"}, 422, "category", "unknown"),
        ("/v1/categorize", {"image": not_image, "text": "dress"}, 422, "image", "not a readable image"),
    ]
    for path, payload, status, field, words in cases:
        r = post(url, path, payload)
        assert r.status_code == status, (path, payload if len(str(payload)) < 200 else field, r.text)
        assert r.json()["detail"]["field"] == field and words in r.json()["detail"]["error"], r.text
    huge = post(url, "/v1/embed/text", {"texts": ["y" * 400_000]})
    assert huge.status_code == 413 and huge.json()["detail"]["field"] == "body"
    chunked = httpx.post(f"{url}/v1/embed/text", content=iter([b'{"texts": ["', b"z" * 400_000, b'"]}']),
                         headers={"content-type": "application/json"}, timeout=60)
    assert chunked.status_code == 413, chunked.text             # no Content-Length: counted while streaming
    assert post(url, "/v1/embed/text", {"wrong": 1}).status_code == 422
    assert httpx.get(f"{url}/readyz").json()["ready"]            # still serving after all of that


def test_concurrent_requests_are_micro_batched(server):
    url, *_ = server
    texts = [f"item number {i} in a blue denim jacket" for i in range(24)]
    results = [None] * len(texts)

    def one(i):
        results[i] = post(url, "/v1/embed/text", {"texts": [texts[i]]}).json()["embeddings"][0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    alone = post(url, "/v1/embed/text", {"texts": texts[:1]}).json()["embeddings"][0]
    np.testing.assert_allclose(results[0], alone, atol=1e-5)   # padding in a batch does not change a result
    metrics = httpx.get(f"{url}/metrics").text
    count = sum(float(line.split()[-1]) for line in metrics.splitlines()
                if line.startswith('fashionvlp_batch_size_count{graph="text"}'))
    total = sum(float(line.split()[-1]) for line in metrics.splitlines()
                if line.startswith('fashionvlp_batch_size_sum{graph="text"}'))
    assert total / count > 1.0, metrics                          # some calls carried several requests
    assert "http_requests_total" in metrics and "fashionvlp_model_info" in metrics


def test_hot_reload_when_production_moves_under_load(server):
    """Runs last in this module: moves production to version 2 while 8 clients keep sending."""
    from fashionvlp.tracking.registry import set_production

    url, log, tracking, versions = server
    seen, failures, stop = [], [], threading.Event()

    def client(i):
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                path, payload = (("/v1/search", {"text": f"client {i} dress", "k": 3}) if i % 2 else
                                 ("/v1/embed/text", {"texts": [f"client {i} shoes"]}))
                r = c.post(f"{url}{path}", json=payload)
                if r.status_code != 200:
                    failures.append((r.status_code, r.text))
                else:
                    seen.append((time.time(), r.json()["model_version"]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    moved_at = time.time()
    set_production(tracking.client, MODEL_NAME, versions[1])
    deadline = time.time() + 60
    while time.time() < deadline and not any(v == versions[1] for _, v in seen[-20:]):
        time.sleep(0.2)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    before = {v for t, v in seen if t < moved_at}
    assert before == {versions[0]} and versions[1] in {v for _, v in seen}
    assert httpx.get(f"{url}/readyz").json()["model"]["version"] == versions[1]
    assert f"moved to version {versions[1]}" in log.read_text() and "retired version" in log.read_text()
    assert 'fashionvlp_model_reloads_total{outcome="ok"} 2.0' in httpx.get(f"{url}/metrics").text


def _wait_for(url, predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready = httpx.get(f"{url}/readyz").json()
        if predicate(ready):
            return ready
        time.sleep(0.3)
    raise AssertionError(f"readyz never satisfied the condition: {ready}")


def _register_copy(tracking, bundle):
    from fashionvlp.tracking.registry import register_bundle

    run_id = tracking.start_run("export")
    version = register_bundle(tracking.client, run_id, bundle, MODEL_NAME, {"xmr.ITR": 1.0}, {})
    tracking.end_run(run_id)
    return version


def _flip_bytes_keeping_size(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


def test_a_version_that_fails_to_load_keeps_the_old_one_serving_and_is_retried(server, serving_registry):
    """After the hot-reload test: production moves to a version whose text graph was altered in the store,
    its size kept (D6: the manifest's checksums catch it); back to a good version; then forward again,
    and the failed version is tried again (D5)."""
    from fashionvlp.tracking.registry import set_production

    url, log, tracking, versions = server
    serving_before = httpx.get(f"{url}/readyz").json()["model"]["version"]
    broken = _register_copy(tracking, serving_registry[2])
    stored = Path(tracking.client.get_model_version_download_uri(MODEL_NAME, broken).removeprefix("file://"))
    _flip_bytes_keeping_size(next(stored.rglob("text.onnx")))
    set_production(tracking.client, MODEL_NAME, broken)
    ready = _wait_for(url, lambda r: r["last_reload_error"])
    assert ready["model"]["version"] == serving_before and f"version {broken}" in ready["last_reload_error"]
    assert "checksums" in ready["last_reload_error"] and ready["refused_version"] == broken
    r = post(url, "/v1/embed/text", {"texts": ["still here"]})
    assert r.status_code == 200 and r.json()["model_version"] == serving_before
    assert 'fashionvlp_model_reloads_total{outcome="failed"} 1.0' in httpx.get(f"{url}/metrics").text
    assert "reload failed, still serving" in log.read_text()
    set_production(tracking.client, MODEL_NAME, versions[0])     # and back to a good one
    ready = _wait_for(url, lambda r: r["model"]["version"] == versions[0])
    assert ready["last_reload_error"] is None and ready["refused_version"] is None
    set_production(tracking.client, MODEL_NAME, broken)          # forward again: tried again, refused again
    _wait_for(url, lambda r: r["refused_version"] == broken)
    assert 'fashionvlp_model_reloads_total{outcome="failed"} 2.0' in httpx.get(f"{url}/metrics").text
    set_production(tracking.client, MODEL_NAME, versions[0])
    _wait_for(url, lambda r: r["refused_version"] is None)


def test_a_version_that_loads_but_answers_nonsense_is_refused_by_the_smoke_test(server, serving_registry, tmp_path):
    """D6: weights set to NaN and the manifest sealed again (its checksums agree): ONNX Runtime loads it,
    the smoke test refuses it before it is swapped in, and the old version keeps serving."""
    import shutil

    import onnx
    from onnx import numpy_helper

    from fashionvlp.serving.bundle import seal
    from fashionvlp.tracking.registry import set_production

    url, log, tracking, versions = server
    bundle = tmp_path / "nan-bundle"
    shutil.copytree(serving_registry[2], bundle)
    graph = onnx.load(str(bundle / "text.onnx"))
    weights = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(weights).shape, np.nan,
                                                     numpy_helper.to_array(weights).dtype), weights.name))
    onnx.save(graph, str(bundle / "text.onnx"))
    seal(bundle)
    nonsense = _register_copy(tracking, bundle)
    set_production(tracking.client, MODEL_NAME, nonsense)
    ready = _wait_for(url, lambda r: r["refused_version"] == nonsense)
    assert ready["model"]["version"] == versions[0] and "not finite" in ready["last_reload_error"]
    assert 'fashionvlp_model_reloads_total{outcome="refused"} 1.0' in httpx.get(f"{url}/metrics").text
    assert post(url, "/v1/search", {"text": "dress", "k": 3}).json()["results"]
    set_production(tracking.client, MODEL_NAME, versions[0])
    _wait_for(url, lambda r: r["refused_version"] is None)


def test_a_corrupt_cache_entry_is_downloaded_again(server):
    """D5: a cached version (downloaded by the hot-reload test) whose file was altered in the cache is
    checked, dropped and downloaded again when the alias moves to it."""
    from fashionvlp.tracking.registry import set_production

    url, log, tracking, versions = server
    cached = log.parent / "cache" / "models" / MODEL_NAME / versions[1]
    assert (cached / ".complete").is_file()
    _flip_bytes_keeping_size(next(cached.rglob("image.onnx")))
    set_production(tracking.client, MODEL_NAME, versions[1])
    ready = _wait_for(url, lambda r: r["model"]["version"] == versions[1] or r["refused_version"])
    assert ready["model"]["version"] == versions[1], ready
    assert f"cached version {versions[1]} fails its check" in log.read_text()
    assert post(url, "/v1/embed/text", {"texts": ["back"]}).json()["model_version"] == versions[1]


def test_preprocessing_matches_training_and_runs_without_torch(fashionvil_bundle, tiny_catalog, tmp_path):
    """The serving image has no torch: the bundle, preprocessing and index load with torch unimportable,
    and the numpy preprocessing equals the training transform."""
    from fashionvlp.data.pretrain_dataset import ImageTransform
    from fashionvlp.models.image_encoders import Normalization
    from fashionvlp.serving.bundle import Bundle

    _, bundle_dir = fashionvil_bundle
    bundle = Bundle(bundle_dir)
    _, raw = catalog_image(tiny_catalog, 5)
    path = tmp_path / "x.jpg"
    path.write_bytes(raw)
    transform = ImageTransform(bundle.image_size, Normalization(tuple(bundle.mean.ravel()), tuple(bundle.std.ravel())))
    np.testing.assert_allclose(bundle.pixels(Image.open(path).convert("RGB")),
                               transform.to_tensor(transform.load(path)).numpy(), atol=1e-5)
    script = f"""
import sys
sys.modules["torch"] = None
from pathlib import Path
from fashionvlp.serving.app import create_app
from fashionvlp.serving.bundle import Bundle
from fashionvlp.serving.index import CatalogIndex
b = Bundle(Path({str(bundle_dir)!r}))
index = CatalogIndex.build(b, Path({str(tiny_catalog)!r}), ["test"], Path({str(tmp_path / 'cache')!r}))
print(len(index), index.search(b.embed_texts(["red dress"]), 2)[0][0]["product_id"])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    count, top = out.stdout.split()
    assert int(count) > 0 and top.startswith("FV")


def test_default_config_binds_loopback():
    from fashionvlp.serving.config import load_serving_config

    cfg = load_serving_config(REPO / "deploy" / "serving.yaml")
    assert cfg.host == "127.0.0.1" and cfg.model.startswith("models:/") and cfg.model.endswith("@production")
    assert cfg.root == REPO


def test_int8_encoders_are_served_only_from_a_bundle_that_has_them(fashionvil_bundle, tmp_path):
    import shutil

    import pytest

    from fashionvlp.export.quantize import quantize_bundle
    from fashionvlp.serving.bundle import Bundle, BundleError

    with pytest.raises(BundleError, match="export --int8"):
        Bundle(fashionvil_bundle[1], int8=True)
    copy = tmp_path / "bundle"
    shutil.copytree(fashionvil_bundle[1], copy)
    quantize_bundle(copy)
    fp32, int8 = Bundle(copy), Bundle(copy, int8=True)
    assert int8.files["text"] == "text.int8.onnx" and fp32.files["text"] == "text.onnx"
    texts = ["red midi dress", "black leather boots", "striped cotton shirt"]
    a, b = fp32.embed_texts(texts), int8.embed_texts(texts)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.95 and not np.array_equal(a, b)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width × height (a decompression bomb's header): Pillow reads the size before pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_hostile_inputs_get_a_4xx_in_one_shape_and_spare_other_requests(server, tiny_catalog):
    """Issue #15's D1–D4 and D7 over real HTTP: each answers a 4xx naming the field, in the one error shape,
    with a small body, and a good request sent beside a bad one is answered."""
    url, *_ = server
    bomb = base64.b64encode(_png_header(20_000, 20_000)).decode()
    _, jpeg = catalog_image(tiny_catalog)
    raw = [
        ("D1 bomb", "/v1/embed/image", {"json": {"images": [bomb]}}, 413, "images[0]"),
        ("D2 surrogate", "/v1/embed/text", {"content": b'{"texts": ["ok", "\\ud800"]}'}, 422, "texts[1]"),
        ("D3 k NaN", "/v1/search", {"content": b'{"text": "dress", "k": NaN}'}, 422, "k"),
        ("D3 surrogate for a list", "/v1/embed/text", {"content": b'{"texts": "\\ud800"}'}, 422, "texts"),
        ("D3 multipart", "/v1/embed/text", {"files": {"texts": ("a.txt", b"\xff\xfe binary")}}, 422, "body"),
        ("D3 image/jpeg body", "/v1/embed/image", {"content": jpeg, "headers": {"content-type": "image/jpeg"}},
         422, "body"),
        ("D3 not JSON", "/v1/search", {"content": b"{not json", "headers": {"content-type": "application/json"}},
         422, "body"),
        # D4: the 7.8 MB body of 3.9M wrong items, scaled to this server's 300 kB body limit.
        ("D4 many wrong items", "/v1/embed/text",
         {"content": b'{"texts": [' + b",".join([b"1"] * 140_000) + b"]}"}, 413, "texts"),
        ("unknown route", "/v1/nothing-here", {"json": {}}, 404, "path"),
    ]
    for name, path, kwargs, status, field in raw:
        kwargs.setdefault("headers", {"content-type": "application/json"} if "content" in kwargs else {})
        r = httpx.post(f"{url}{path}", timeout=120, **kwargs)
        assert r.status_code == status, (name, r.status_code, r.text[:500])
        assert set(r.json()) == {"detail"} and r.json()["detail"]["field"] == field, (name, r.text[:500])
        assert len(r.content) < 1000 and "0x" not in r.text, (name, r.text[:500])
    assert "images[0]" in httpx.post(f"{url}/v1/embed/image", json={"images": [base64.b64encode(b"junk").decode()]},
                                     timeout=60).text

    # A bad text and good ones arriving together: only the bad one's request fails.
    with httpx.Client(timeout=60) as client:
        results = {}

        def send(key, content):
            results[key] = client.post(f"{url}/v1/embed/text", content=content,
                                       headers={"content-type": "application/json"})

        threads = [threading.Thread(target=send, args=(k, c)) for k, c in
                   [("bad", b'{"texts": ["\\ud800"]}'), *[(f"good{i}", b'{"texts": ["a red dress"]}') for i in range(6)]]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results["bad"].status_code == 422
    assert all(results[f"good{i}"].status_code == 200 for i in range(6))

    schema = httpx.get(f"{url}/openapi.json").json()
    for path in ("/v1/embed/text", "/v1/embed/image", "/v1/search", "/v1/attributes", "/v1/categorize"):
        responses = schema["paths"][path]["post"]["responses"]
        assert {"404", "413", "422", "503"} <= set(responses), (path, sorted(responses))
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_a_moved_tracking_store_still_serves(fashionvil_bundle, tmp_path):
    """D8: the registry records absolute artifact paths; a store moved (or mounted elsewhere, as the
    Dockerfile's mlflow/ volume is) serves its versions, found relative to its database."""
    import shutil

    from fashionvlp.tracking.mlflow_tracking import Tracking
    from fashionvlp.tracking.registry import register_bundle, set_production
    from tests.serving.conftest import serving_process

    _, bundle = fashionvil_bundle
    store = tmp_path / "first" / "mlflow"
    store.mkdir(parents=True)
    tracking = Tracking(f"sqlite:///{store / 'mlflow.db'}", "moved", (store / "artifacts").as_uri())
    run_id = tracking.start_run("export")
    version = register_bundle(tracking.client, run_id, bundle, MODEL_NAME, {"xmr.ITR": 1.0}, {})
    tracking.end_run(run_id)
    set_production(tracking.client, MODEL_NAME, version)
    moved = tmp_path / "mounted" / "mlflow"
    moved.parent.mkdir()
    shutil.move(str(store), str(moved))
    config = {"model": f"models:/{MODEL_NAME}@production", "tracking_uri": f"sqlite:///{moved / 'mlflow.db'}",
              "cache_dir": str(tmp_path / "cache"), "index": {"catalog": None}, "reload": {"poll_seconds": 0}}
    with serving_process(config, tmp_path) as (url, log):
        assert httpx.get(f"{url}/readyz").json()["model"]["version"] == version
        r = post(url, "/v1/embed/text", {"texts": ["served from the moved store"]})
        assert r.status_code == 200 and r.json()["model_version"] == version
        assert "found under the tracking store" in log.read_text()
