"""How objectives share a step: FashionViL samples one per step; KG-FLIP sums them.

The sampling draw depends only on (seed, step), so a resumed run picks the same objectives.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fashionvlp.objectives.base import build_objectives


class ObjectiveSuite(nn.Module):
    """The model and its objectives as one module (what the training loop optimises and checkpoints)."""

    def __init__(self, model, weights: dict[str, float], combine: str, seed: int, context):
        super().__init__()
        self.model = model
        self.objectives = build_objectives(list(weights), model, context)
        self.weights, self.combine, self.seed = dict(weights), combine, seed
        names = list(weights)
        probs = np.array([weights[n] for n in names], dtype=float)
        self._names, self._probs = names, probs / probs.sum()

    def choose(self, step: int) -> list[str]:
        if self.combine == "sum":
            return self._names
        rng = np.random.default_rng([self.seed, step])
        return [self._names[int(rng.choice(len(self._names), p=self._probs))]]

    def forward(self, batch: dict[str, torch.Tensor], names: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logs: dict[str, torch.Tensor] = {}
        total = None
        for name in names:
            out = self.objectives[name](self.model, batch)
            loss = out[f"loss/{name}"]
            weighted = loss * (self.weights[name] if self.combine == "sum" else 1.0)
            total = weighted if total is None else total + weighted
            logs.update(out)
        return total, logs
