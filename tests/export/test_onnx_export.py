"""ONNX export of both architectures: every graph loads in ONNX Runtime, matches PyTorch within the
tolerance at other batch sizes and text lengths, and a failed parity check writes nothing."""

import json

import numpy as np
import pytest

from fashionvlp.export.onnx_export import ParityError, session
from fashionvlp.stages.export import export

def test_export_bundle_parity_and_dynamic_axes(fine_tuned, tiny_catalog):
    params, sources, tmp = fine_tuned
    result = export(params, sources, tiny_catalog, out=tmp / "bundle")
    bundle = result.out
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["graphs"]) == {"image", "text", "attributes", "categories"}
    for name in ("tokenizer", "preprocessing.json", "labels.json", "attribute_thresholds.json", "parity.json"):
        assert (bundle / name).exists(), name
    assert all(d <= 1e-4 for outputs in result.parity.values() for d in outputs.values())
    labels = json.loads((bundle / "labels.json").read_text())
    assert manifest["graphs"]["attributes"]["outputs"] == [f"attribute_{a}" for a in labels["attributes"]]

    # Other batch sizes and lengths than the export example.
    image = session(bundle / "image.onnx")
    emb, patches = image.run(None, {"pixels": np.random.rand(4, 3, 64, 64).astype(np.float32)})
    assert emb.shape[0] == 4 and patches.shape[:2] == (4, 64)
    text = session(bundle / "text.onnx")
    ids = np.full((1, 17), 5, dtype=np.int64)
    ids[0, 0] = 2
    assert text.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0].shape[0] == 1
    cats = session(bundle / "categories.onnx").run(None, {"pixels": np.random.rand(2, 3, 64, 64).astype(np.float32),
                                                         "input_ids": ids.repeat(2, 0),
                                                         "attention_mask": np.ones((2, 17), dtype=np.int64)})
    assert cats[0].shape == (2, len(labels["categories"])) and cats[1].shape == (2, len(labels["subcategories"]))


def test_parity_failure_keeps_the_previous_bundle(fine_tuned, tiny_catalog):
    params, sources, tmp = fine_tuned
    out = tmp / "kept"
    export(params, sources, tiny_catalog, out=out)
    before = (out / "manifest.json").read_text()
    with pytest.raises(ParityError, match="differs from PyTorch by more than 1e-12"):
        export(params, sources, tiny_catalog, out=out, tolerance=1e-12)
    assert (out / "manifest.json").read_text() == before
    assert not list(out.parent.glob(".kept.staging-*"))


def test_int8_quantisation_and_its_measured_cost(fine_tuned, tiny_catalog):
    params, sources, tmp = fine_tuned
    if params.model.arch != "fashionvil":
        pytest.skip("one architecture is enough for the quantisation path")
    result = export(params, sources, tiny_catalog, out=tmp / "int8", int8=True)
    q = json.loads((result.out / "quantization.json").read_text())
    assert q == result.quantization and q["files"] == {"image": "image.int8.onnx", "text": "text.int8.onnx"}
    assert "FALLBACK" in q["fp32"]["protocol"] and set(q["R@1_lost"]) == {"ITR", "TIR"}
    assert q["size_mb"]["text.int8"] < q["size_mb"]["text.fp32"]
    # fp32 through ONNX Runtime gives the PyTorch evaluation's numbers (embeddings equal within ~1e-6;
    # a near-tie may still flip one of the ~50 queries, 2 points).
    from fashionvlp.stages.evaluate import evaluate

    torch_xmr = evaluate(params, "xmr", sources["retrieval"], tiny_catalog, out=tmp / "eval")
    for direction in ("ITR", "TIR"):
        assert q["fp32"][direction] == pytest.approx(torch_xmr["paper"][direction], abs=2.1)
