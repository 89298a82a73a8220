"""Promotion stage: the gate (challenger vs champion by ``registry.margins``), recorded as an MLflow run,
and the explicit step that points ``production`` at the champion. The CLI, the promote flow and the
retrain flow call these."""

from __future__ import annotations

from fashionvlp.config import Params


def gate(params: Params, tracking=None, parent_run_id: str | None = None) -> dict:
    from fashionvlp.tracking.mlflow_tracking import Tracking
    from fashionvlp.tracking.registry import metric_key, promotion_gate

    tracking = tracking or Tracking.from_params(params)
    name = params.registry.model_name(params.model.arch)
    decision = promotion_gate(tracking.client, name, params.registry.margins)
    with tracking.run(f"promote-{name}", {"stage": "promote", "registered_model": name}, parent_run_id) as run_id:
        tracking.set_tags(run_id, {"gate.promoted": str(decision["promoted"]), "gate.reason": decision["reason"],
                                   "gate.challenger": decision["challenger"], "gate.champion": decision["champion"],
                                   "gate.previous_champion": str(decision["previous"])})
        tracking.log_metrics(run_id, {f"gate.{metric_key(m)}.{side}": c[side] for m, c in decision["comparison"].items()
                                      for side in ("challenger", "champion") if c[side] != float("-inf")})
    return {"name": name, "run_id": run_id, **decision}


def production(params: Params, version: str | None = None, tracking=None) -> str:
    from fashionvlp.tracking.mlflow_tracking import Tracking
    from fashionvlp.tracking.registry import set_production

    tracking = tracking or Tracking.from_params(params)
    return set_production(tracking.client, params.registry.model_name(params.model.arch), version)
