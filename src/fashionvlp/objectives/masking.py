"""Token and patch masking for MLM-style and MPFC objectives.

Text: whole words, a 15% budget of the non-special tokens, then 80% ``[MASK]`` / 10% random / 10% kept.
Policies choose which units fill the budget:
- ``random``: whole words at random (BERT whole-word masking);
- ``attribute_only``: only attribute-value mentions (FashionViL's ablation row);
- ``attribute_first``: attribute mentions first (a random subset if they exceed the budget), then random
  other words up to the budget (KG-FLIP's KG-MLIM).
Patches: BEiT-style blockwise masking of about ``ratio`` of the grid.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Policy = Literal["random", "attribute_only", "attribute_first"]
IGNORE = -100


def _units(keys: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for position, key in enumerate(keys):
        if key >= 0:
            out.setdefault(key, []).append(position)
    return out


def _fill(chosen: set[int], units: list[list[int]], budget: int) -> None:
    for positions in units:
        if len(chosen) >= budget:
            return
        if len(chosen) + len(positions) <= budget and not chosen.intersection(positions):
            chosen.update(positions)


def choose_positions(word_ids: list[int], attribute_units: list[int], probability: float, policy: Policy) -> list[int]:
    """Positions to mask in one sequence; ``word_ids``/``attribute_units`` are -1 where not applicable."""
    valid = sum(1 for w in word_ids if w >= 0)
    if valid == 0:
        return []
    budget = max(1, round(probability * valid))
    words = list(_units(word_ids).values())
    attributes = list(_units(attribute_units).values())
    chosen: set[int] = set()
    if policy in ("attribute_only", "attribute_first"):
        order = torch.randperm(len(attributes)).tolist()
        _fill(chosen, [attributes[i] for i in order], budget)
    if policy in ("random", "attribute_first"):
        in_attribute = {p for unit in attributes for p in unit} if policy == "attribute_first" else set()
        order = torch.randperm(len(words)).tolist()
        _fill(chosen, [words[i] for i in order if not in_attribute.intersection(words[i])], budget)
        if not chosen:  # every word longer than the budget: mask the first token of one word
            chosen.add(words[order[0]][0])
    return sorted(chosen)


def mask_tokens(input_ids: torch.Tensor, word_ids: torch.Tensor, attribute_units: torch.Tensor, probability: float,
                policy: Policy, mask_token_id: int, vocab_size: int, special_ids: list[int]):
    """Returns (masked input ids, labels with IGNORE outside the masked positions)."""
    masked, labels = input_ids.clone(), torch.full_like(input_ids, IGNORE)
    for row in range(input_ids.shape[0]):
        positions = choose_positions(word_ids[row].tolist(), attribute_units[row].tolist(), probability, policy)
        if not positions:
            continue
        index = torch.tensor(positions, device=input_ids.device)
        labels[row, index] = input_ids[row, index]
        draw = torch.rand(len(positions))
        replace = index[draw < 0.8]
        randomise = index[(draw >= 0.8) & (draw < 0.9)]
        masked[row, replace] = mask_token_id
        if len(randomise):
            random_ids = torch.randint(0, vocab_size, (len(randomise),))
            bad = torch.isin(random_ids, torch.tensor(special_ids))
            random_ids[bad] = mask_token_id
            masked[row, randomise] = random_ids.to(input_ids.device)
    return masked, labels


def block_mask(batch: int, grid: tuple[int, int], ratio: float, min_block: int = 4, max_block: int | None = None,
               aspect: tuple[float, float] = (0.3, 1 / 0.3)) -> torch.Tensor:
    """[B, H, W] bool: BEiT's blockwise masking, blocks of ≥ ``min_block`` patches, aspect ratio in ``aspect``."""
    h, w = grid
    target = max(1, round(ratio * h * w))
    max_block = max_block or max(min_block, target)
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    out = torch.zeros(batch, h, w, dtype=torch.bool)
    for b in range(batch):
        mask = out[b]
        for _ in range(100):
            remaining = target - int(mask.sum())
            if remaining <= 0:
                break
            area = torch.empty(1).uniform_(min(min_block, remaining), max(min(max_block, remaining), min_block)).item()
            ratio_ = math.exp(torch.empty(1).uniform_(*log_aspect).item())
            bh, bw = int(round(math.sqrt(area * ratio_))), int(round(math.sqrt(area / ratio_)))
            if not (1 <= bh <= h and 1 <= bw <= w):
                continue
            top = int(torch.randint(0, h - bh + 1, (1,)))
            left = int(torch.randint(0, w - bw + 1, (1,)))
            block = mask[top:top + bh, left:left + bw]
            new = int((~block).sum())
            if 0 < new <= remaining + max(0, min_block - 1):
                block[:] = True
        if not mask.any():
            mask[int(torch.randint(0, h, (1,))), int(torch.randint(0, w, (1,)))] = True
    return out
