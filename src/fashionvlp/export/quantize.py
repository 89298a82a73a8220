"""Dynamic int8 quantisation of a bundle's encoder graphs (ONNX Runtime), and its accuracy cost: XMR
under the papers' protocol with embeddings computed by ONNX Runtime from the fp32 and the int8 graphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fashionvlp.export.onnx_export import session

QUANTIZED = ("image", "text")


def quantize_bundle(bundle: Path) -> dict[str, str]:
    """Writes ``<graph>.int8.onnx`` beside each encoder graph (weights int8, activations quantised at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = {}
    for name in QUANTIZED:
        target = bundle / f"{name}.int8.onnx"
        quantize_dynamic(bundle / f"{name}.onnx", target, weight_type=QuantType.QInt8)
        out[name] = target.name
    return out


def bundle_embeddings(bundle: Path, catalog, products, suffix: str = "", batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(image, text) embeddings of ``products`` computed by ONNX Runtime from the bundle's graphs alone."""
    from transformers import AutoTokenizer

    from fashionvlp.data.pretrain_dataset import ImageTransform
    from fashionvlp.models.image_encoders import Normalization

    prep = json.loads((bundle / "preprocessing.json").read_text())
    transform = ImageTransform(prep["image_size"], Normalization(tuple(prep["mean"]), tuple(prep["std"])))
    tokenizer = AutoTokenizer.from_pretrained(str(bundle / "tokenizer"))
    image, text = session(bundle / f"image{suffix}.onnx"), session(bundle / f"text{suffix}.onnx")
    images, texts = [], []
    for start in range(0, len(products), batch_size):
        chunk = products[start:start + batch_size]
        pixels = np.stack([transform.to_tensor(transform.load(catalog.root / p.images[0].path)).numpy() for p in chunk])
        enc = tokenizer([p.text for p in chunk], padding=True, truncation=True, max_length=prep["max_length"],
                        return_tensors="np")
        images.append(image.run(["image_embedding"], {"pixels": pixels})[0])
        texts.append(text.run(["text_embedding"], {"input_ids": enc["input_ids"].astype(np.int64),
                                                   "attention_mask": enc["attention_mask"].astype(np.int64)})[0])
    return np.concatenate(images), np.concatenate(texts)


def int8_accuracy_cost(bundle: Path, catalog, products, protocol, allow_fallback: bool) -> dict:
    """XMR (papers' protocol) from fp32 and int8 ONNX Runtime embeddings, and the R@1 points int8 loses."""
    from fashionvlp.evaluation.retrieval import paper_protocol

    subcategories = [p.subcategory for p in products]
    results = {}
    for label, suffix in (("fp32", ""), ("int8", ".int8")):
        image, text = bundle_embeddings(bundle, catalog, products, suffix)
        results[label] = paper_protocol(image, text, subcategories, protocol, allow_fallback)
    results["R@1_lost"] = {d: results["fp32"][d]["R@1"] - results["int8"][d]["R@1"] for d in ("ITR", "TIR")}
    results["size_mb"] = {f"{name}.{label}": round(sum(f.stat().st_size for f in bundle.glob(f"{name}{suffix}.onnx*"))
                                                 / 1e6, 2)
                          for name in QUANTIZED for label, suffix in (("fp32", ""), ("int8", ".int8"))}
    return results
