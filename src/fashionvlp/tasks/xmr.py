"""XMR: image→text (ITR) and text→image (TIR) retrieval on the unimodal embeddings, fine-tuned with ITC.

Evaluated under the papers' protocol and the full-gallery protocol (labelled), with a recall@K curve
for the plots. Optional BLIP-style re-ranking: the top-k of each paper-protocol query (first repeat)
are re-scored with the model's ITM head, and the extra cost is reported.
"""

from __future__ import annotations

import csv
import time

import numpy as np
import torch
from torch import nn

from fashionvlp.evaluation import oracle
from fashionvlp.evaluation.embed import embed_products, product_batches
from fashionvlp.evaluation.outcomes import MeanOutcome
from fashionvlp.evaluation.retrieval import (PaperProtocol, ScoreRows, cosine_scores, full_gallery_hits,
                                            full_gallery_label, paper_galleries, paper_hits, summarize_hits)
from fashionvlp.errors import ModelInputError
from fashionvlp.tasks.base import DownstreamTask, TaskEvaluation, register_task

CURVE_KS = (1, 2, 3, 5, 10, 20, 50, 100)


def _protocol(ev: TaskEvaluation) -> PaperProtocol:
    cfg = ev.params.evaluation
    return PaperProtocol(cfg.paper_queries, cfg.paper_negatives, cfg.paper_repeats, cfg.seed)


def evaluate(ev: TaskEvaluation) -> dict:
    cfg = ev.params.evaluation
    products = ev.products()
    protocol = _protocol(ev)
    galleries = paper_galleries([p.subcategory for p in products], protocol, cfg.allow_fallback)  # before embedding
    emb = embed_products(ev.model, ev.catalog, products, ev.image_size, ev.max_length)
    scores = cosine_scores(emb.image, emb.text)
    paper, full = paper_hits(scores, galleries), full_gallery_hits(scores)
    result = {"products": len(products), "paper": summarize_hits(paper, galleries.label),
              "full": summarize_hits(full, full_gallery_label(len(products))),
              "outcomes": _outcomes(products, galleries, paper)}
    oracle_scores = None
    if oracle.has_visible_labels(ev.catalog.schema, products):
        oracle_scores = oracle.retrieval_scores(ev.catalog.schema, products)
        oracle_paper = paper_hits(oracle_scores, galleries, ties="expected")
        result["ceiling"] = {"paper": summarize_hits(oracle_paper, galleries.label),
                             "full": summarize_hits(full_gallery_hits(oracle_scores, "expected"),
                                                    full_gallery_label(len(products))),
                             "protocol": oracle.PROTOCOL, "outcomes": _outcomes(products, galleries, oracle_paper)}
    _write_curve(ev, scores, oracle_scores)
    if cfg.rerank_k > 0:
        result["rerank"] = rerank_with_itm(ev, products, emb.image, emb.text, protocol, cfg.rerank_k)
    return result


def _outcomes(products, galleries, hits: dict[str, np.ndarray]) -> dict[str, MeanOutcome]:
    """Each query product is one unit; its rows (one per repeat that drew it) score mean R@1/5/10."""
    ids = np.array([p.product_id for p in products])
    return {d: MeanOutcome.rows(ids[galleries.queries[d]], hits[d].mean(axis=1) * 100) for d in ("ITR", "TIR")}


def _recall_curve(scores: ScoreRows, ties: str = "pessimistic") -> dict[str, dict[int, float]]:
    hits = full_gallery_hits(scores, ties, CURVE_KS)
    return {d: {k: float(h[:, i].mean() * 100) for i, k in enumerate(CURVE_KS)} for d, h in hits.items()}


def _write_curve(ev: TaskEvaluation, scores: ScoreRows, oracle_scores: ScoreRows | None) -> None:
    """Full-gallery recall@K for K in CURVE_KS (DVC plot ``plots/xmr_recall_at_k.csv``), with a random
    ranking's (``chance``) and the attribute oracle's (``<direction> ceiling``, ties at random)."""
    n = scores.shape[0]
    columns = {**_recall_curve(scores), "chance": {k: 100.0 * min(k, n) / n for k in CURVE_KS}}
    if oracle_scores is not None:
        ceiling = _recall_curve(oracle_scores, ties="expected")
        columns["ITR ceiling"], columns["TIR ceiling"] = ceiling["ITR"], ceiling["TIR"]
    path = ev.out / "plots" / "xmr_recall_at_k.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["k", *columns])
        writer.writerows([k, *[round(c[k], 4) for c in columns.values()]] for k in CURVE_KS)


@torch.no_grad()
def _itm_scores(model, head, pixels: torch.Tensor, enc) -> np.ndarray:
    pooled = model.fuse(enc.input_ids, enc.attention_mask, model.encode_image(pixels)).pooled
    return torch.softmax(head(pooled), -1)[:, 1].float().numpy()


def itm_head(model_dir, hidden_size: int) -> nn.Linear:
    """The ITM (or KG-ITM) head saved with a model's pre-training objectives."""
    from safetensors.torch import load_file

    weights = model_dir / "objectives.safetensors"
    state = load_file(str(weights)) if weights.is_file() else {}
    name = next((n for n in ("itm", "kg_itm") if f"{n}.head.weight" in state), None)
    if name is None:
        raise ModelInputError(f"ITM re-ranking needs an ITM head, and {model_dir} has none: evaluate a model saved "
                              "with its pre-training objectives (itm or kg_itm), or set evaluation.rerank_k=0")
    head = nn.Linear(hidden_size, 2)
    head.load_state_dict({"weight": state[f"{name}.head.weight"], "bias": state[f"{name}.head.bias"]})
    return head.eval()


def rerank_with_itm(ev: TaskEvaluation, products, image: np.ndarray, text: np.ndarray, protocol: PaperProtocol,
                    k: int) -> dict:
    """Paper protocol, first repeat, both directions: ITC ranks the gallery, ITM re-orders its top ``k``."""
    head = itm_head(ev.model_dir, ev.model.hidden_size)
    ev.model.eval()
    single = PaperProtocol(protocol.queries, protocol.negatives, 1, protocol.seed)
    galleries = paper_galleries([p.subcategory for p in products], single, ev.params.evaluation.allow_fallback)
    pixels_cache: dict[int, torch.Tensor] = {}

    def pixels_of(indices):
        missing = [i for i in dict.fromkeys(indices) if i not in pixels_cache]
        rows = [row for _, pix, _ in product_batches(ev.model, ev.catalog, [products[i] for i in missing],
                                                      ev.image_size, ev.max_length, with_text=False) for row in pix]
        pixels_cache.update(zip(missing, rows))
        return torch.stack([pixels_cache[i] for i in indices])

    scores = cosine_scores(image, text)
    before, after, fused, started = {}, {}, 0, time.perf_counter()
    for direction, matrix in (("ITR", scores), ("TIR", scores.T)):
        ranks_itc, ranks_itm = [], []
        for q, row in zip(galleries.queries[direction], galleries.galleries[direction]):
            # The positive goes last, so a stable sort ranks every tie above it (ties count against it).
            gallery = np.append(row[1:][row[1:] >= 0], q)
            positive = len(gallery) - 1
            order = np.argsort(-matrix.rows(np.array([q]))[0, gallery], kind="stable")
            top = order[:k]
            pairs = [(q, gallery[j]) if direction == "ITR" else (gallery[j], q) for j in top]  # (image, text)
            enc = ev.model.tokenizer([products[t].text for _, t in pairs], padding=True, truncation=True,
                                     max_length=ev.max_length, return_tensors="pt")
            itm = _itm_scores(ev.model, head, pixels_of([i for i, _ in pairs]), enc)
            fused += len(pairs)
            reordered = np.concatenate([top[np.argsort(-itm, kind="stable")], order[k:]])
            ranks_itc.append(int(np.flatnonzero(order == positive)[0]))
            ranks_itm.append(int(np.flatnonzero(reordered == positive)[0]))
        before[direction] = {f"R@{kk}": float(np.mean(np.array(ranks_itc) < kk) * 100) for kk in (1, 5, 10)}
        after[direction] = {f"R@{kk}": float(np.mean(np.array(ranks_itm) < kk) * 100) for kk in (1, 5, 10)}
    seconds = time.perf_counter() - started
    queries = len(galleries.queries["ITR"]) + len(galleries.queries["TIR"])
    return {"protocol": single.label + f"; ITM re-ranks the ITC top {k}", "k": k, "itc": before, "itc+itm": after,
            "cost": {"fused_passes": fused, "fused_passes_per_query": fused / queries, "seconds": round(seconds, 2),
                     "ms_per_query": round(seconds / queries * 1000, 2)}}


def headline(metrics: dict) -> dict[str, float]:
    """The ablation's ITR and TIR columns: mean of R@1/5/10 under the papers' protocol."""
    return {d: float(np.mean(list(metrics["paper"][d].values()))) for d in ("ITR", "TIR")}


register_task(DownstreamTask(
    name="xmr", description="image↔text retrieval (ITR, TIR), R@1/5/10, paper and full-gallery protocols",
    objectives={"itc": 1.0}, evaluate=evaluate, headline=headline))
