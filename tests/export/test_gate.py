"""The promotion gate decides on evidence: a paired bootstrap of the per-unit difference between the
challenger's and the champion's saved evaluation outcomes (real sqlite registry, real bundles)."""

from mlflow.tracking import MlflowClient

from fashionvlp.tracking.mlflow_tracking import Tracking
from fashionvlp.tracking.registry import CHAMPION, promotion_gate, register_bundle
from tests.conftest import bundle_with_evidence

MARGINS = {"xmr.ITR": 0.0, "classification.SCR": 0.0}


def test_identical_refused_better_promoted_mixed_and_other_split_refused_naming_why(fashionvil_bundle, tmp_path):
    _, bundle = fashionvil_bundle
    tracking = Tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", "gate-test", f"file://{tmp_path / 'artifacts'}")
    client, name = tracking.client, "fashionvlp-gate"

    def register(label, rates, split="test"):
        copy, metrics = bundle_with_evidence(bundle, tmp_path / label, rates, split)
        run_id = tracking.start_run(f"export-{label}")
        version = register_bundle(client, run_id, copy, name, metrics, {"git_sha": label})
        tracking.end_run(run_id)
        return version

    def champion():
        return str(MlflowClient(tracking.tracking_uri).get_model_version_by_alias(name, CHAMPION).version)

    v1 = register("base", {"xmr.ITR": 0.30, "classification.SCR": 0.60})
    assert promotion_gate(client, name, MARGINS)["reason"] == "no champion yet"

    register("same", {"xmr.ITR": 0.30, "classification.SCR": 0.60})
    same = promotion_gate(client, name, MARGINS)
    assert not same["promoted"] and champion() == v1
    assert same["comparison"]["xmr.ITR"]["difference"] == 0.0 and "is not above the margin" in same["reason"]

    v3 = register("better", {"xmr.ITR": 0.45, "classification.SCR": 0.75})
    better = promotion_gate(client, name, MARGINS)
    assert better["promoted"] and champion() == v3, better["reason"]
    itr = better["comparison"]["xmr.ITR"]
    assert itr["difference"] > 0 and itr["ci_low"] > 0 and itr["challenger"] - itr["champion"] == itr["difference"]
    assert itr["units"] == 400 and itr["passed"]

    register("mixed", {"xmr.ITR": 0.60, "classification.SCR": 0.65})
    mixed = promotion_gate(client, name, MARGINS)
    assert not mixed["promoted"] and champion() == v3
    assert mixed["comparison"]["xmr.ITR"]["passed"] and not mixed["comparison"]["classification.SCR"]["passed"]
    assert "classification.SCR" in mixed["reason"] and "xmr.ITR" not in mixed["reason"]

    register("other-split", {"xmr.ITR": 0.90, "classification.SCR": 0.95}, split="val")
    other = promotion_gate(client, name, MARGINS)
    assert not other["promoted"] and champion() == v3
    assert "evaluated differently (split: 'val' vs 'test')" in other["reason"]


def test_a_margin_must_be_cleared_by_the_difference(fashionvil_bundle, tmp_path):
    _, bundle = fashionvil_bundle
    tracking = Tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", "gate-margin", f"file://{tmp_path / 'artifacts'}")
    client, name = tracking.client, "fashionvlp-margin"
    for label, rate in (("a", 0.30), ("b", 0.36)):
        copy, metrics = bundle_with_evidence(bundle, tmp_path / label, {"xmr.ITR": rate})
        run_id = tracking.start_run(label)
        register_bundle(client, run_id, copy, name, metrics, {})
        tracking.end_run(run_id)
        decision = promotion_gate(client, name, {"xmr.ITR": 10.0})
    assert not decision["promoted"] and "is not above the margin 10.0" in decision["reason"]
    assert 0 < decision["comparison"]["xmr.ITR"]["ci_low"]          # significant, but by less than the margin
