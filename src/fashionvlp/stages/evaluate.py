"""Evaluation stage. Built so far: cross-modal retrieval (XMR: ITR and TIR) of a saved model, under the
papers' protocol and the full-gallery protocol, each result labelled with its protocol and split."""

from __future__ import annotations

import json
from pathlib import Path

from fashionvlp.config import Params
from fashionvlp.data.catalog_io import read_catalog


def evaluation_dir(params: Params) -> Path:
    return params.derived_dir / "eval" / params.model.arch


def evaluate_xmr(params: Params, model_dir: Path, catalog: Path | None = None, out: Path | None = None,
                 tracking=None, parent_run_id: str | None = None) -> dict:
    """Writes ``<out>/xmr.json`` and returns it: {"paper": …, "full": …, "split", "model", "products"}."""
    from fashionvlp.evaluation.embed import embed_products
    from fashionvlp.evaluation.retrieval import PaperProtocol, full_gallery, paper_protocol, paper_protocol_label
    from fashionvlp.models.registry import load_pretrained
    from fashionvlp.tracking.mlflow_tracking import maybe_run

    cfg = params.evaluation
    split, allow_fallback = cfg.split, cfg.allow_fallback
    cat = read_catalog(catalog or params.catalog_dir)
    products = [p for p in cat.iter_products() if p.split == split]
    if not products:
        raise ValueError(f"split {split!r} of {cat.root} has no products")
    protocol = PaperProtocol(cfg.paper_queries, cfg.paper_negatives, cfg.paper_repeats, cfg.seed)
    paper_protocol_label([p.subcategory for p in products], protocol, allow_fallback)  # fails before embedding
    model = load_pretrained(model_dir)
    meta = json.loads((Path(model_dir) / "model.json").read_text())
    image_size, max_length = meta["model"]["image"]["image_size"], meta["model"]["text"]["max_length"]
    emb = embed_products(model, cat, products, image_size, max_length)
    result = {"task": "xmr", "split": split, "products": len(products), "model": str(model_dir),
              "arch": meta["arch"], "pretrain_steps": meta.get("steps"),
              "paper": paper_protocol(emb.image, emb.text, emb.subcategories, protocol, allow_fallback),
              "full": full_gallery(emb.image, emb.text)}
    out = Path(out or evaluation_dir(params))
    out.mkdir(parents=True, exist_ok=True)
    (out / "xmr.json").write_text(json.dumps(result, indent=2))
    with maybe_run(tracking, f"evaluate-xmr-{meta['arch']}", {"stage": "evaluate", "task": "xmr"},
                   parent_run_id) as run_id:
        if tracking is not None:
            tracking.log_params(run_id, {"split": split, "model": str(model_dir), "paper_protocol": result["paper"]["protocol"],
                                         "full_protocol": result["full"]["protocol"]})
            # MLflow names cannot hold "@": R@10 is logged as recall_at_10.
            tracking.log_metrics(run_id, {f"xmr.{proto}.{direction}.{k.replace('R@', 'recall_at_')}": v
                                          for proto in ("paper", "full")
                                          for direction in ("ITR", "TIR")
                                          for k, v in result[proto][direction].items()})
            tracking.log_artifact(run_id, out / "xmr.json", "eval")
    result["run_id"] = run_id
    return result
