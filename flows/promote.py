"""The promotion flow: the gate (challenger vs champion on the evaluation metrics, by the margins in
``registry.margins``), then, only when asked, the explicit step that points ``production`` at the champion.

``python flows/promote.py [--preset=…] [--set=…] [--production]``. The same calls back the CLI's
``fashionvlp promote`` and ``fashionvlp production set``. Each decision is recorded as an MLflow run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fashionvlp.env import quiet_offline  # noqa: E402

quiet_offline()

from prefect import flow, get_run_logger, task  # noqa: E402

from fashionvlp.config import FlowParameters, flow_options  # noqa: E402
from fashionvlp.stages import promote as promote_stage  # noqa: E402
from fashionvlp.tracking.registry import RegistryError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


class PromoteParameters(FlowParameters):
    params_file: str = str(REPO / "params.yaml")
    # After a passing gate, also move production to the champion (the explicit deployment step).
    set_production: bool = False


def _not_a_registry_error(task, task_run, state) -> bool:
    """Retry I/O trouble (a locked store, a flaky server), not a decision the registry already made."""
    return not isinstance(state.result(raise_on_failure=False), RegistryError)


@task(name="promotion-gate", retries=2, retry_delay_seconds=2, retry_condition_fn=_not_a_registry_error)
def gate(parameters: FlowParameters, parent_run_id: str | None = None) -> dict:
    return promote_stage.gate(parameters.load(), parent_run_id=parent_run_id)


@task(name="set-production", retries=2, retry_delay_seconds=2, retry_condition_fn=_not_a_registry_error)
def production(parameters: FlowParameters) -> str:
    return promote_stage.production(parameters.load())


@flow(name="promote", log_prints=True)
def promote(parameters: PromoteParameters = PromoteParameters()) -> dict:
    logger = get_run_logger()
    decision = gate(parameters)
    for line in promote_stage.describe(decision):
        logger.info("%s", line)
    decision["production"] = None
    if parameters.set_production:
        if decision["promoted"]:
            decision["production"] = production(parameters)
            logger.info("%s: production → v%s", decision["name"], decision["production"])
        else:
            logger.info("%s: production left where it was (the gate did not pass)", decision["name"])
    return decision


def main(argv: list[str]) -> int:
    promote(PromoteParameters(**flow_options(argv), set_production="--production" in argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
