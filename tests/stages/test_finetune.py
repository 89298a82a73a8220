"""Fine-tuning from a saved model, one test per task: its metrics, heads, serving files and MLflow
names; and the bad inputs (other architecture, task the architecture lacks, missing split or product)."""

import json
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from fashionvlp.errors import ModelInputError
from fashionvlp.stages.evaluate import evaluate
from fashionvlp.stages.finetune import finetune
from fashionvlp.stages.pretrain import pretrain
from fashionvlp.tracking.mlflow_tracking import Tracking
from tests.conftest import KGFLIP, tiny_params


@pytest.fixture(scope="module")
def pretrained(tiny_catalog, tiny_patch_labels, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pre")
    return pretrain(tiny_params(tmp, "pretrain.steps=2"), tiny_catalog, tiny_patch_labels).model_dir


@pytest.fixture(scope="module")
def pretrained_kgflip(tiny_catalog, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pre-kg")
    return pretrain(tiny_params(tmp, *KGFLIP, "pretrain.steps=2"), tiny_catalog).model_dir


# task → a metric name the MLflow run must have (stable names compare runs side by side)
LOGGED = {"xmr": "xmr.full.ITR.recall_at_10", "classification": "classification.SCR.macro_f1",
          "tgir": "tgir.mean.recall_at_50", "ocir": "ocir.balanced.recall_at_30",
          "attributes": "attributes.average.recall_at_90P", "captioning": "captioning.BLEU-4"}


def _check(result, params, task, pretrained):
    metrics = json.loads((result.model_dir.parent / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["losses"] and metrics["headline"]
    assert json.loads((result.model_dir / "model.json").read_text())["finetuned_from"] == str(pretrained)
    logged = MlflowClient(params.tracking_uri).get_run(result.run_id).data.metrics
    assert LOGGED[task] in logged, sorted(logged)
    return metrics


@pytest.mark.parametrize("task", ["xmr", "classification", "tgir", "ocir", "attributes"])
def test_finetune_then_evaluate_fashionvil(tiny_catalog, pretrained, tmp_path, task):
    params = tiny_params(tmp_path, "evaluation.allow_fallback=true")
    result = finetune(params, task, pretrained, tiny_catalog, tracking=Tracking.from_params(params))
    metrics = _check(result, params, task, pretrained)
    if task == "xmr":
        assert "FALLBACK" in metrics["paper"]["protocol"]
        assert (result.model_dir.parent / "plots" / "xmr_recall_at_k.csv").read_text().startswith("k,ITR,TIR")
    elif task == "classification":
        assert set(metrics["CR"]) == {"accuracy", "macro_f1", "classes", "chance_accuracy"}
        assert metrics["SCR"]["classes"] == 14
    elif task == "tgir":
        assert set(metrics["groups"]) <= {"dress", "shirt", "toptee"} and 0 <= metrics["mean"]["R@50"] <= 100
        assert all(g["gallery"] > 0 for g in metrics["groups"].values())
    elif task == "ocir":
        assert set(metrics["balanced"]) == {"R@10", "R@30", "R@50"}
        assert metrics["balanced"]["R@10"] <= metrics["balanced"]["R@30"] <= metrics["balanced"]["R@50"]
    else:
        thresholds = json.loads((result.model_dir / "attribute_thresholds.json").read_text())
        assert thresholds["min_precision"] == 0.9 and set(thresholds["thresholds"]) == set(metrics["attributes"])
        assert "color" in metrics["attributes"]
    # The saved heads evaluate again to the same numbers (what `fashionvlp evaluate` does).
    again = evaluate(params, task, result.model_dir, tiny_catalog, out=tmp_path / "again")
    assert again["headline"] == pytest.approx(metrics["headline"])


@pytest.mark.parametrize("task", ["captioning", "attributes"])
def test_finetune_kgflip(tiny_catalog, pretrained_kgflip, tmp_path, task):
    params = tiny_params(tmp_path, *KGFLIP)
    result = finetune(params, task, pretrained_kgflip, tiny_catalog, tracking=Tracking.from_params(params))
    metrics = _check(result, params, task, pretrained_kgflip)
    if task == "captioning":
        assert 0 <= metrics["BLEU-4"] <= 100 and len(metrics["examples"]) == 5


def test_ocir_reports_polyvores_released_fitb_and_compatibility_where_the_catalog_keeps_them(
        catalog_copy, pretrained, tmp_path):
    # Questions and outfits in Polyvore's released form, made from the test split's outfits: each FITB question
    # blanks an outfit's last item among 4 candidates; each real outfit is paired with one of items from others.
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from fashionvlp.data.catalog_io import COMPATIBILITY_SCHEMA, FITB_SCHEMA, OPTIONAL_TABLE_FILES, read_catalog
    from fashionvlp.evaluation.outcomes import outcomes_path, read_outcomes

    catalog = read_catalog(catalog_copy)
    outfits = [o for o in catalog.iter_outfits() if o.split == "test"]
    others = [o.product_ids[-1] for o in outfits]
    fitb = [{"question_id": f"q{k}", "product_ids": list(o.product_ids[:-1]), "split": "test", "answer": k % 4,
             "candidates": [others[(k + j - k % 4) % len(others)] if j != k % 4 else o.product_ids[-1]
                            for j in range(4)]} for k, o in enumerate(outfits)]
    compat = [{"outfit_id": f"c{k}", "product_ids": list(o.product_ids), "compatible": True, "split": "test"}
              for k, o in enumerate(outfits)]
    compat += [{"outfit_id": f"n{k}", "product_ids": [outfits[(k + j) % len(outfits)].product_ids[0] for j in range(3)],
                "compatible": False, "split": "test"} for k in range(len(outfits))]
    pq.write_table(pa.Table.from_pylist(fitb, schema=FITB_SCHEMA), catalog_copy / OPTIONAL_TABLE_FILES["fitb"])
    pq.write_table(pa.Table.from_pylist(compat, schema=COMPATIBILITY_SCHEMA),
                   catalog_copy / OPTIONAL_TABLE_FILES["compatibility"])
    params = tiny_params(tmp_path)
    result = finetune(params, "ocir", pretrained, catalog_copy)
    metrics = json.loads((result.model_dir.parent / "metrics.json").read_text())
    assert metrics["polyvore"]["fitb"]["questions"] == len(outfits) and metrics["polyvore"]["fitb"]["chance"] == 25.0
    assert metrics["polyvore"]["compatibility"]["outfits"] == 2 * len(outfits)
    assert set(metrics["headline"]) == {"OCIR", "FITB", "COMPAT_AUC"}
    assert metrics["intervals"]["FITB"]["ci_low"] <= metrics["headline"]["FITB"] <= metrics["intervals"]["FITB"]["ci_high"]
    # the AUC kept per outfit is sklearn's on the same scores
    outcomes, _ = read_outcomes(outcomes_path(result.model_dir.parent, "ocir"))
    auc = outcomes["COMPAT_AUC"]
    assert metrics["headline"]["COMPAT_AUC"] == pytest.approx(100 * roc_auc_score(auc.labels, auc.scores))
    assert sorted(np.unique(auc.labels)) == [0, 1]


def test_rerank_with_itm_reports_its_cost(tiny_catalog, pretrained, tmp_path):
    params = tiny_params(tmp_path, "evaluation.allow_fallback=true", "evaluation.rerank_k=3",
                         "evaluation.paper_queries=10")
    result = evaluate(params, "xmr", pretrained, tiny_catalog, out=tmp_path)
    rerank = result["rerank"]
    assert rerank["cost"]["fused_passes_per_query"] == 3 and {"seconds", "ms_per_query"} <= set(rerank["cost"])
    # Re-ranking the top 3 only moves items inside it: R@K for K ≥ 3 is unchanged.
    for direction in ("ITR", "TIR"):
        assert rerank["itc+itm"][direction]["R@5"] == rerank["itc"][direction]["R@5"]


def test_bad_inputs(tiny_catalog, pretrained, tmp_path):
    with pytest.raises(ModelInputError, match="holds a fashionvil model, but kgflip was asked for"):
        finetune(tiny_params(tmp_path, *KGFLIP), "classification", pretrained, tiny_catalog)
    with pytest.raises(ModelInputError, match="unknown task 'segmentation'"):
        finetune(tiny_params(tmp_path), "segmentation", pretrained, tiny_catalog)
    with pytest.raises(ModelInputError, match="task 'captioning' needs decode, which the fashionvil"):
        finetune(tiny_params(tmp_path), "captioning", pretrained, tiny_catalog)
    with pytest.raises(ModelInputError, match="finetune.tgir.same_subcategory: tgir trains on its own rows"):
        finetune(tiny_params(tmp_path, "finetune.tgir.same_subcategory=4"), "tgir", pretrained, tiny_catalog)
    with pytest.raises(ModelInputError, match="finetune.ocir.views: ocir trains on its own rows"):
        finetune(tiny_params(tmp_path, "finetune.ocir.views=main"), "ocir", pretrained, tiny_catalog)
    with pytest.raises(ModelInputError, match="has no ocir heads .* fashionvlp finetune --task ocir"):
        evaluate(tiny_params(tmp_path), "ocir", pretrained, tiny_catalog)
    no_heads = tmp_path / "no-heads"
    shutil.copytree(pretrained, no_heads)
    (no_heads / "objectives.safetensors").unlink()
    with pytest.raises(ModelInputError, match="needs an ITM head"):
        evaluate(tiny_params(tmp_path, "evaluation.allow_fallback=true", "evaluation.rerank_k=3"), "xmr", no_heads,
                 tiny_catalog)

    # A task whose split has no rows, and a row naming a product the catalog lacks.
    catalog = tmp_path / "catalog"
    shutil.copytree(tiny_catalog, catalog)
    triplets = pq.read_table(catalog / "triplets.parquet")
    pq.write_table(triplets.filter(pc.not_equal(triplets["split"], "train")), catalog / "triplets.parquet")
    with pytest.raises(ModelInputError, match=r"split 'train' has no FashionIQ triplets in .*triplets.parquet"):
        finetune(tiny_params(tmp_path), "tgir", pretrained, catalog)
    outfits = pq.read_table(catalog / "outfits.parquet")
    rows = outfits.to_pylist()
    bad = next(r for r in rows if r["split"] == "train")
    bad["product_ids"][1] = "NO-SUCH-PRODUCT"
    pq.write_table(pa.Table.from_pylist(rows, schema=outfits.schema), catalog / "outfits.parquet")
    with pytest.raises(ModelInputError, match=rf"outfit '{bad['outfit_id']}': field 'product_ids\[1\]': "
                                              "product 'NO-SUCH-PRODUCT' is not in the catalog"):
        finetune(tiny_params(tmp_path), "ocir", pretrained, catalog)


def test_a_finished_fine_tuning_is_reused_only_with_the_same_config_and_start(tiny_catalog, pretrained, tmp_path):
    out = tmp_path / "ocir"
    params = tiny_params(tmp_path)
    first = finetune(params, "ocir", pretrained, tiny_catalog, out, reuse_finished=True)
    stamp = (out / "history.jsonl").stat().st_mtime_ns
    again = finetune(params, "ocir", pretrained, tiny_catalog, out, reuse_finished=True)
    assert again.metrics == json.loads((out / "metrics.json").read_text()) == first.metrics
    assert again.run_id is None and (out / "history.jsonl").stat().st_mtime_ns == stamp   # not trained again
    # Another config, or no reuse asked for: it trains (and writes its history) again.
    other = finetune(tiny_params(tmp_path, "finetune.ocir.steps=2"), "ocir", pretrained, tiny_catalog, out,
                     reuse_finished=True)
    assert other.metrics["steps"] == 2 and (out / "history.jsonl").stat().st_mtime_ns != stamp
