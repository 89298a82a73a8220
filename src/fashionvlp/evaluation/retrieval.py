"""Cross-modal retrieval protocols (SPEC §5). Every result carries its protocol label.

- ``paper``: Kaleido-BERT/FashionViL: per direction 1000 random queries; each query's gallery is its one
  positive + 100 negatives drawn from the *same subcategory*; 5 repeats, averaged.
- ``full``: every test item is a query against the whole test gallery.
The two give very different numbers; they are never mixed under one name.

Scores are read a block of query rows at a time (``ScoreRows``), never as a whole [N, N] matrix, so a
FashionGen-size gallery (32k items: a 4 GB matrix) is evaluated in bounded memory
(``bench/scale.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fashionvlp.errors import ProtocolError  # noqa: F401 (raised here, importable from here)
from fashionvlp.evaluation.metrics import hits_at_k

KS = (1, 5, 10)
BLOCK_ROWS = 1024  # query rows scored at once: a block is BLOCK_ROWS × gallery float64s


class ScoreRows(Protocol):
    """An [N, M] score matrix (query i against gallery item j), read a block of rows at a time."""

    shape: tuple[int, int]

    def rows(self, index: np.ndarray) -> np.ndarray: ...  # [len(index), M]

    @property
    def T(self) -> "ScoreRows": ...


class DenseScores:
    """A matrix already in memory."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = np.asarray(matrix)
        self.shape = self.matrix.shape

    def rows(self, index: np.ndarray) -> np.ndarray:
        return self.matrix[index]

    @property
    def T(self) -> "DenseScores":
        return DenseScores(self.matrix.T)


class CosineScores:
    """Cosine of query embedding i with gallery embedding j, computed per block of queries."""

    def __init__(self, queries: np.ndarray, gallery: np.ndarray, normalised: bool = False):
        self.queries = queries if normalised else _unit(queries)
        self.gallery = gallery if normalised else _unit(gallery)
        self.shape = (len(queries), len(gallery))

    def rows(self, index: np.ndarray) -> np.ndarray:
        return self.queries[index] @ self.gallery.T

    @property
    def T(self) -> "CosineScores":
        return CosineScores(self.gallery, self.queries, normalised=True)


def score_rows(scores: "ScoreRows | np.ndarray") -> ScoreRows:
    return DenseScores(scores) if isinstance(scores, np.ndarray) else scores


def _blocks(n: int):
    size = BLOCK_ROWS
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))


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


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _unit(a) @ _unit(b).T


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


def cosine_scores(image: np.ndarray, text: np.ndarray) -> CosineScores:
    """[N, N]: cosine of image i with text j (row i of each is one product), read by blocks of rows."""
    return CosineScores(image, text)


@dataclass(frozen=True)
class PaperGalleries:
    """The papers' protocol's draws, independent of any model: per repeat and direction, the query rows and
    each one's gallery (column 0 the positive, then same-subcategory negatives; -1 pads a fallback)."""

    queries: dict[str, np.ndarray]     # direction → [repeats × queries]
    galleries: dict[str, np.ndarray]   # direction → [repeats × queries, 1 + negatives]
    label: str


def paper_galleries(subcategories: Sequence[str], protocol: PaperProtocol = PaperProtocol(),
                    allow_fallback: bool = False) -> PaperGalleries:
    label = paper_protocol_label(subcategories, protocol, allow_fallback)
    subcategories = np.asarray(subcategories)
    n = len(subcategories)
    members = {s: np.flatnonzero(subcategories == s) for s in np.unique(subcategories)}
    rng = np.random.default_rng(protocol.seed)
    queries: dict[str, list] = {"ITR": [], "TIR": []}
    galleries: dict[str, list] = {"ITR": [], "TIR": []}
    for _ in range(protocol.repeats):
        for direction in ("ITR", "TIR"):
            query_ids = rng.choice(n, size=min(protocol.queries, n), replace=False)
            gallery = np.full((len(query_ids), 1 + protocol.negatives), -1)
            gallery[:, 0] = query_ids
            for sub, pool in members.items():
                rows = np.flatnonzero(subcategories[query_ids] == sub)
                if not len(rows):
                    continue
                # Random keys per (query, pool member), the query's own key +inf: the smallest keys are a
                # uniform draw without replacement from the rest of its subcategory.
                keys = rng.random((len(rows), len(pool)))
                keys[pool[None, :] == query_ids[rows][:, None]] = np.inf
                take = min(protocol.negatives, len(pool) - 1)
                gallery[rows, 1:1 + take] = pool[np.argsort(keys, axis=1, kind="stable")[:, :take]]
            queries[direction].append(query_ids)
            galleries[direction].append(gallery)
    return PaperGalleries({d: np.concatenate(q) for d, q in queries.items()},
                          {d: np.concatenate(g) for d, g in galleries.items()}, label)


def paper_hits(scores: ScoreRows | np.ndarray, galleries: PaperGalleries, ties: str = "pessimistic",
               ks: Sequence[int] = KS) -> dict[str, np.ndarray]:
    """direction → [rows, len(ks)] hits, from ``scores[i, j]`` = image i vs text j (TIR reads it transposed)."""
    scores, out = score_rows(scores), {}
    for direction, matrix in (("ITR", scores), ("TIR", scores.T)):
        q, gallery = galleries.queries[direction], galleries.galleries[direction]
        hits = []
        for block in _blocks(len(q)):
            rows = matrix.rows(q[block])
            gathered = np.where(gallery[block] >= 0,
                                np.take_along_axis(rows, np.maximum(gallery[block], 0), axis=1), -np.inf)
            relevant = np.zeros_like(gathered, dtype=bool)
            relevant[:, 0] = True
            hits.append(hits_at_k(gathered, relevant, ks, ties))
        out[direction] = np.concatenate(hits) if hits else np.zeros((0, len(ks)))
    return out


def summarize_hits(hits: dict[str, np.ndarray], label: str, ks: Sequence[int] = KS) -> dict:
    """{"ITR": {R@k}, "TIR": {R@k}, "protocol": label}: recall in percent over every row."""
    return {**{d: {f"R@{k}": float(h[:, i].mean() * 100) for i, k in enumerate(ks)} for d, h in hits.items()},
            "protocol": label}


def paper_protocol(image: np.ndarray, text: np.ndarray, subcategories: Sequence[str],
                   protocol: PaperProtocol = PaperProtocol(), allow_fallback: bool = False) -> dict:
    """Row i of ``image`` and ``text`` is one product. Returns {"ITR": {R@k}, "TIR": {R@k}, "protocol": label};
    the R@K of every row of the 5 repeats pooled (equal to averaging the repeats, whose sizes are equal)."""
    galleries = paper_galleries(subcategories, protocol, allow_fallback)
    return summarize_hits(paper_hits(CosineScores(image, text), galleries), galleries.label)


def full_gallery_hits(scores: ScoreRows | np.ndarray, ties: str = "pessimistic",
                      ks: Sequence[int] = KS) -> dict[str, np.ndarray]:
    """direction → [N, len(ks)] hits; query i's one positive is gallery item i."""
    scores, out = score_rows(scores), {}
    for direction, matrix in (("ITR", scores), ("TIR", scores.T)):
        n, hits = matrix.shape[1], []
        for block in _blocks(matrix.shape[0]):
            relevant = np.zeros((len(block), n), dtype=bool)
            relevant[np.arange(len(block)), block] = True
            hits.append(hits_at_k(matrix.rows(block), relevant, ks, ties))
        out[direction] = np.concatenate(hits) if hits else np.zeros((0, len(ks)))
    return out


def full_gallery_label(n: int) -> str:
    return f"full gallery: {n} queries/direction against all {n} items"


def full_gallery(image: np.ndarray, text: np.ndarray) -> dict:
    """Every product queries the whole gallery of the other modality; its own row is the one positive."""
    return summarize_hits(full_gallery_hits(CosineScores(image, text)), full_gallery_label(len(image)))


def format_xmr(result: dict, indent: str = "  ") -> list[str]:
    """Printable lines of an XMR result: each protocol's label, then its R@K per direction."""
    lines = []
    for proto in ("paper", "full"):
        lines.append(f"{indent}[{result[proto]['protocol']}]")
        for direction in ("ITR", "TIR"):
            lines.append(f"{indent}  {direction}: " + "  ".join(f"{k} {v:.2f}" for k, v in result[proto][direction].items()))
    return lines
