"""Serving throughput and latency, with and without micro-batching, under concurrent clients.

    python bench/serving_throughput.py --bundle derived/export/fashionvil [--clients 32] [--seconds 20]

For each mode a real `fashionvlp serve` process is started on loopback with the bundle (no search index),
and `--clients` concurrent clients (asyncio + httpx, one request in flight each) send one-item requests to
`/v1/embed/text` (and `/v1/embed/image` with --endpoint image) for `--seconds` after a warm-up. Reports
requests/s, p50/p99 latency and errors; prints a table and writes bench/results/serving.json.

The clients run on the same machine as the server and take CPU from it: on a 2-core box the figures are a
lower bound on what the server alone would do.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODES = {"micro-batching": ["batching.enabled=true"], "unbatched": ["batching.enabled=false"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, overrides: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [str(Path(sys.executable).parent / "fashionvlp"), "serve", "--model", str(bundle), "--port", str(port),
           "--set", "index.catalog=null", "--set", "reload.poll_seconds=0"] + [a for o in overrides for a in ("--set", o)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server not ready:\n{log.read_text()}")


async def load(url: str, path: str, payloads: list[dict], clients: int, seconds: float, warmup: float) -> dict:
    import httpx

    latencies, errors, statuses = [], 0, {}
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        n = i
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                r = await http.post(f"{url}{path}", json=payloads[n % len(payloads)])
                ok = r.status_code == 200
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            except httpx.HTTPError:
                ok = False
            t1 = time.perf_counter()
            n += clients
            if t0 >= measure_from:
                if ok:
                    latencies.append(t1 - t0)
                else:
                    errors += 1

    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    lat = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors, "statuses": statuses, "seconds": seconds,
            "throughput_rps": len(latencies) / seconds,
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None}


def payloads(kind: str, catalog: Path) -> list[dict]:
    from fashionvlp.data.catalog_io import read_catalog

    products = [p for p in read_catalog(catalog).iter_products() if p.split == "test"][:256]
    if kind == "text":
        return [{"texts": [p.text]} for p in products]
    return [{"images": [base64.b64encode((catalog / p.images[0].path).read_bytes()).decode()]} for p in products]


def batch_sizes(url: str, graph: str) -> float | None:
    import httpx

    text = httpx.get(f"{url}/metrics").text
    value = {k: float(line.split()[-1]) for line in text.splitlines() for k in ("sum", "count")
             if line.startswith(f'fashionvlp_batch_size_{k}{{graph="{graph}"}}')}
    return value["sum"] / value["count"] if value.get("count") else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--catalog", type=Path, default=REPO / "data")
    ap.add_argument("--endpoint", choices=["text", "image"], default="text")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=5)
    ap.add_argument("--int8", action="store_true", help="serve the int8 encoder graphs")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving.json")
    args = ap.parse_args()

    bodies = payloads(args.endpoint, args.catalog)
    path = f"/v1/embed/{args.endpoint}"
    results = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for mode, overrides in MODES.items():
        overrides = overrides + [f"batching.max_batch_size={args.max_batch_size}",
                                 f"batching.max_wait_ms={args.max_wait_ms}", f"int8={str(args.int8).lower()}"]
        proc, url = start_server(args.bundle, overrides, args.out.parent / f"serving-{mode}.log")
        try:
            results[mode] = asyncio.run(load(url, path, bodies, args.clients, args.seconds, args.warmup))
            results[mode]["mean_batch_size"] = batch_sizes(url, args.endpoint)
            results[mode]["provider"] = __import__("httpx").get(f"{url}/readyz").json()["provider"]
        finally:
            proc.terminate()
            proc.wait(30)
    speedup = results["micro-batching"]["throughput_rps"] / max(results["unbatched"]["throughput_rps"], 1e-9)
    report = {"bundle": str(args.bundle), "endpoint": path, "int8": args.int8, "clients": args.clients, "seconds": args.seconds,
              "batching": {"max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms},
              "results": results, "speedup": speedup,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"serving {path} ({'int8' if args.int8 else 'fp32'} encoders), {args.clients} concurrent clients, "
          f"{args.seconds:.0f} s per mode, bundle {args.bundle}")
    print(f"{'mode':<16}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'mean batch':>12}  provider")
    for mode, r in results.items():
        print(f"{mode:<16}{r['throughput_rps']:>9.1f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8}"
              f"{(r['mean_batch_size'] or 0):>12.1f}  {r['provider']}")
    print(f"micro-batching throughput: {speedup:.2f}× unbatched (goal ≥ 3×, 0 errors) → {args.out}")


if __name__ == "__main__":
    main()
