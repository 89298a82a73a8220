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
    decision = promotion_gate(tracking.client, name, params.registry.margins, params.evaluation.seed,
                              params.evaluation.bootstrap_resamples)
    with tracking.run(f"promote-{name}", {"stage": "promote", "registered_model": name}, parent_run_id) as run_id:
        tracking.set_tags(run_id, {"gate.promoted": str(decision["promoted"]), "gate.reason": decision["reason"][:5000],
                                   "gate.challenger": decision["challenger"], "gate.champion": decision["champion"],
                                   "gate.previous_champion": str(decision["previous"]),
                                   "gate.rule": decision.get("rule", "")}
                          | {f"gate.{metric_key(m)}.verdict": "passed" if c["passed"] else "failed"
                             for m, c in decision["comparison"].items()})
        tracking.log_metrics(run_id, {f"gate.{metric_key(m)}.{field}": c[field]
                                      for m, c in decision["comparison"].items()
                                      for field in ("challenger", "champion", "difference", "ci_low", "ci_high",
                                                    "margin")})
    return {"name": name, "run_id": run_id, **decision}


def describe(decision: dict) -> list[str]:
    """The printed decision: verdict and why, then per gated metric both values, the difference and its interval."""
    lines = [f"{decision['name']}: challenger v{decision['challenger']} "
             f"{'PROMOTED' if decision['promoted'] else 'not promoted'} ({decision['reason']}); "
             f"champion is v{decision['champion']}"]
    if decision.get("rule") and decision["comparison"]:
        lines.append(f"  rule: {decision['rule']}")
    for metric, c in decision["comparison"].items():
        lines.append(f"  {metric}: challenger {c['challenger']:.2f} vs champion {c['champion']:.2f}, difference "
                     f"{c['difference']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] over {c['units']} units "
                     f"(margin {c['margin']:g}) {'passed' if c['passed'] else 'FAILED'}")
    return lines


def production(params: Params, version: str | None = None, tracking=None) -> str:
    from fashionvlp.tracking.mlflow_tracking import Tracking
    from fashionvlp.tracking.registry import set_production

    tracking = tracking or Tracking.from_params(params)
    return set_production(tracking.client, params.registry.model_name(params.model.arch), version)
