"""Exporting a graph with dynamic batch and sequence axes, and checking it against PyTorch in ONNX Runtime.

The parity check runs two batches of different sizes and text lengths, so a graph that froze an axis
fails it, and reports the largest absolute difference per output.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from fashionvlp.errors import ParityError  # noqa: F401 (raised here, importable from here)

# input name → {axis: dimension name}
DYNAMIC_AXES = {"pixels": {0: "batch"}, "input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}


def export_graph(graph: torch.nn.Module, example: dict[str, torch.Tensor], path: Path) -> Path:
    dims = {"batch": torch.export.Dim("batch"), "seq": torch.export.Dim("seq")}
    dynamic = {name: {axis: dims[dim] for axis, dim in DYNAMIC_AXES[name].items()} for name in graph.input_names}
    graph.eval()
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # per-initializer INFO lines
    with warnings.catch_warnings(), torch.no_grad():
        # The exporter warns that axes sharing one constraint keep a single name, which is what we want.
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(graph, tuple(example[name] for name in graph.input_names), str(path),
                          input_names=list(graph.input_names), output_names=list(graph.output_names),
                          dynamic_shapes=dynamic, verbose=False)
    return path


def session(path: Path, providers: list[str] | None = None):
    from fashionvlp.serving.bundle import open_session

    return open_session(path, providers)


@torch.no_grad()
def parity(graph: torch.nn.Module, path: Path, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Largest |PyTorch − ONNX Runtime| per output over ``batches``."""
    graph.eval()
    runtime = session(path)
    worst: dict[str, float] = {name: 0.0 for name in graph.output_names}
    for batch in batches:
        expected = graph(*(batch[name] for name in graph.input_names))
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = runtime.run(list(graph.output_names), {name: batch[name].numpy() for name in graph.input_names})
        for name, e, g in zip(graph.output_names, expected, got):
            if tuple(e.shape) != g.shape:
                raise ParityError(f"{path.name}: output {name} has shape {g.shape} in ONNX Runtime, "
                                  f"{tuple(e.shape)} in PyTorch")
            worst[name] = max(worst[name], float(np.abs(e.float().numpy() - g).max()))
    return worst
