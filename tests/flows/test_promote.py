"""The promotion flow on a real (temporary) Prefect API and a temporary sqlite registry."""

import sys

from tests.conftest import REPO, TINY_MODEL, bundle_with_evidence


def test_gate_flow_promotes_only_a_better_challenger_and_sets_production_on_request(
        prefect_harness, fashionvil_bundle, tmp_path):
    sys.path.insert(0, str(REPO / "flows"))
    from promote import PromoteParameters, promote

    from fashionvlp.config import load_params
    from fashionvlp.tracking.mlflow_tracking import Tracking
    from fashionvlp.tracking.registry import CHAMPION, PRODUCTION, register_bundle

    overrides = TINY_MODEL + [f"tracking.store={tmp_path / 'mlflow.db'}", f"tracking.artifact_root={tmp_path / 'a'}",
                              "registry.margins={xmr.ITR: 1.0}"]
    params = load_params(REPO / "params.yaml", overrides=overrides)
    tracking = Tracking.from_params(params)
    name = params.registry.model_name("fashionvil")
    client = tracking.client

    def register(itr_rate):
        # The other gated metrics (params.yaml's registry.margins) move with ITR.
        others = 0.05 if itr_rate < 0.2 else 0.2
        copy, metrics = bundle_with_evidence(fashionvil_bundle[1], tmp_path / f"bundle-{itr_rate}", {
            "xmr.ITR": itr_rate, "xmr.TIR": others, "classification.SCR": others + 0.4,
            "attributes.ATTR_R@90P": others})
        run_id = tracking.start_run("export")
        version = register_bundle(client, run_id, copy, name, metrics, {"git_sha": "t"})
        tracking.end_run(run_id)
        return version, metrics["xmr.ITR"]

    v1, itr1 = register(0.10)
    first = promote(PromoteParameters(overrides=overrides, set_production=True))
    assert first["promoted"] and first["reason"] == "no champion yet" and first["production"] == v1
    v2, itr2 = register(0.105)                            # not better by the 1.0 margin
    second = promote(PromoteParameters(overrides=overrides, set_production=True))
    assert not second["promoted"] and second["production"] is None
    compared = second["comparison"]["xmr.ITR"]
    assert (compared["challenger"], compared["champion"], compared["margin"], compared["passed"]) == (itr2, itr1, 1.0,
                                                                                                    False)
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v1
    assert str(client.get_model_version_by_alias(name, PRODUCTION).version) == v1
    v3, itr3 = register(0.20)
    third = promote(PromoteParameters(overrides=overrides))              # gate only: production stays
    assert third["promoted"] and third["champion"] == v3 != v2
    assert str(client.get_model_version_by_alias(name, PRODUCTION).version) == v1
    decision = client.get_run(third["run_id"])
    assert decision.data.tags["gate.promoted"] == "True" and decision.data.metrics["gate.xmr.ITR.challenger"] == itr3
