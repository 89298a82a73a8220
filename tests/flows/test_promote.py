"""The promotion flow on a real (temporary) Prefect API and a temporary sqlite registry."""

import sys

from tests.conftest import REPO, TINY_MODEL


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

    def register(itr):
        run_id = tracking.start_run("export")
        version = register_bundle(client, run_id, fashionvil_bundle[1], name, {"xmr.ITR": itr, "xmr.TIR": 5.0, "classification.SCR": 50.0, "attributes.ATTR_R@90P": 5.0},
                                  {"git_sha": "t"})
        tracking.end_run(run_id)
        return version

    v1 = register(10.0)
    first = promote(PromoteParameters(overrides=overrides, set_production=True))
    assert first["promoted"] and first["reason"] == "no champion yet" and first["production"] == v1
    v2 = register(10.5)                                   # better, but not by the 1.0 margin
    second = promote(PromoteParameters(overrides=overrides, set_production=True))
    assert not second["promoted"] and second["production"] is None
    assert second["comparison"]["xmr.ITR"] == {"challenger": 10.5, "champion": 10.0, "margin": 1.0, "passed": False}
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v1
    assert str(client.get_model_version_by_alias(name, PRODUCTION).version) == v1
    v3 = register(12.0)
    third = promote(PromoteParameters(overrides=overrides))              # gate only: production stays
    assert third["promoted"] and third["champion"] == v3 != v2
    assert str(client.get_model_version_by_alias(name, PRODUCTION).version) == v1
    decision = client.get_run(third["run_id"])
    assert decision.data.tags["gate.promoted"] == "True" and decision.data.metrics["gate.xmr.ITR.challenger"] == 12.0
