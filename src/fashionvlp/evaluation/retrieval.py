"""Cross-modal retrieval protocols (SPEC §5). Every result carries its protocol label.

- ``paper``: Kaleido-BERT/FashionViL: per direction 1000 random queries; each query's gallery is its one
  positive + 100 negatives drawn from the *same subcategory*; 5 repeats, averaged.
- ``full``: every test item is a query against the whole test gallery.
The two give very different numbers; they are never mixed under one name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fashionvlp.evaluation.metrics import recall_at_k

KS = (1, 5, 10)


class ProtocolError(ValueError):
    """The data cannot meet a protocol (e.g. a subcategory with fewer than 1 + negatives items)."""


@dataclass(frozen=True)
class PaperProtocol:
    queries: int = 1000
    negatives: int = 100
    repeats: int = 5
    seed: int = 0

    @property
    def label(self) -> str:
        return f"paper: {self.queries} queries/direction, 1 positive + {self.negatives} same-subcategory negatives, " \
               f"{self.repeats} repeats averaged"


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return a @ b.T


def paper_protocol_label(subcategories: Sequence[str], protocol: PaperProtocol, allow_fallback: bool) -> str:
    """The protocol's label, after checking every subcategory has 1 + negatives products.

    A smaller subcategory is a ``ProtocolError``, or, with ``allow_fallback``, its galleries use every other
    product of the subcategory and the label says so.
    """
    sizes: dict[str, int] = defaultdict(int)
    for s in subcategories:
        sizes[s] += 1
    small = {s: n for s, n in sorted(sizes.items()) if n < protocol.negatives + 1}
    if not small:
        return protocol.label
    listed = ", ".join(f"{s} ({n})" for s, n in small.items())
    if not allow_fallback:
        raise ProtocolError(f"the paper protocol needs ≥ {protocol.negatives + 1} products per subcategory; "
                            f"too small: {listed}. Evaluate a bigger split, or allow the fallback (smaller "
                            "galleries for those subcategories, labelled as such).")
    return protocol.label + f"; FALLBACK: smaller galleries for {listed}"


def paper_protocol(image: np.ndarray, text: np.ndarray, subcategories: Sequence[str],
                   protocol: PaperProtocol = PaperProtocol(), allow_fallback: bool = False) -> dict:
    """Row i of ``image`` and ``text`` is one product. Returns {"ITR": {R@k}, "TIR": {R@k}, "protocol": label}."""
    label = paper_protocol_label(subcategories, protocol, allow_fallback)
    subcategories = np.asarray(subcategories)
    members = {s: np.flatnonzero(subcategories == s) for s in np.unique(subcategories)}
    n = len(subcategories)
    rng = np.random.default_rng(protocol.seed)
    results: dict[str, list[dict[int, float]]] = {"ITR": [], "TIR": []}
    for _ in range(protocol.repeats):
        for direction, (queries_emb, gallery_emb) in {"ITR": (image, text), "TIR": (text, image)}.items():
            query_ids = rng.choice(n, size=min(protocol.queries, n), replace=False)
            scores = []
            for q in query_ids:
                pool = members[subcategories[q]]
                pool = pool[pool != q]
                negatives = rng.choice(pool, size=min(protocol.negatives, len(pool)), replace=False)
                gallery = np.concatenate([[q], negatives])
                scores.append(_cosine(queries_emb[q:q + 1], gallery_emb[gallery])[0])
            width = max(len(s) for s in scores)
            padded = np.full((len(scores), width), -np.inf)
            for row, s in enumerate(scores):
                padded[row, :len(s)] = s
            relevant = np.zeros_like(padded, dtype=bool)
            relevant[:, 0] = True
            results[direction].append(recall_at_k(padded, relevant, KS))
    out = {d: {f"R@{k}": float(np.mean([r[k] for r in runs])) for k in KS} for d, runs in results.items()}
    return {**out, "protocol": label}


def full_gallery(image: np.ndarray, text: np.ndarray) -> dict:
    """Every product queries the whole gallery of the other modality; its own row is the one positive."""
    scores = _cosine(image, text)
    relevant = np.eye(len(image), dtype=bool)
    return {"ITR": {f"R@{k}": v for k, v in recall_at_k(scores, relevant, KS).items()},
            "TIR": {f"R@{k}": v for k, v in recall_at_k(scores.T, relevant, KS).items()},
            "protocol": f"full gallery: {len(image)} queries/direction against all {len(image)} items"}


def format_xmr(result: dict, indent: str = "  ") -> list[str]:
    """Printable lines of an XMR result: each protocol's label, then its R@K per direction."""
    lines = []
    for proto in ("paper", "full"):
        lines.append(f"{indent}[{result[proto]['protocol']}]")
        for direction in ("ITR", "TIR"):
            lines.append(f"{indent}  {direction}: " + "  ".join(f"{k} {v:.2f}" for k, v in result[proto][direction].items()))
    return lines
