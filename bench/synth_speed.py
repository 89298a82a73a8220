"""Prints how fast the synthetic catalog renders: products/s on 1 process and on all cores."""

import os
import sys
import tempfile
import time
from pathlib import Path

from fashionvlp.config import SynthConfig
from fashionvlp.data.synth.generate import synthesize

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
for workers in sorted({1, os.cpu_count() or 1}):
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synthesize(SynthConfig(num_products=n, workers=workers), Path(tmp) / "catalog")
        dt = time.perf_counter() - start
    print(f"synth: {n} products, 128 px, {workers} process(es): {dt:.1f} s ({n / dt:.0f} products/s)")
