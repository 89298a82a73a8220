"""Runs a command as a child process and measures it: wall seconds and peak resident memory, of the child
alone and of it with every process it starts (pool or loader workers), sampled every 0.1 s with psutil."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mib: float       # the child process
    peak_rss_tree_mib: float  # the child and its workers together
    output: str


def run_measured(cmd: list[str], env: dict | None = None) -> Measured:
    import psutil

    started = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    process = psutil.Process(child.pid)
    peak_main = peak_tree = 0.0
    chunks: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: chunks.extend(child.stdout), daemon=True)
    reader.start()
    while child.poll() is None:
        try:
            main = process.memory_info().rss
            tree = main + sum(c.memory_info().rss for c in process.children(recursive=True))
        except psutil.Error:
            break
        peak_main, peak_tree = max(peak_main, main), max(peak_tree, tree)
        time.sleep(0.1)
    child.wait()
    reader.join()
    seconds = time.perf_counter() - started
    output = "".join(chunks)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({child.returncode}):\n{output[-4000:]}")
    return Measured(seconds, peak_main / 2**20, peak_tree / 2**20, output)
