"""The one place that talks to MLflow.

Only ``MlflowClient`` with explicit run ids is used: the fluent API keeps its active run per thread,
and Prefect runs tasks in worker threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

for _key, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}.items():
    os.environ.setdefault(_key, _value)

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

MAX_PARAM_LENGTH = 6000


@dataclass
class Tracking:
    tracking_uri: str
    experiment: str
    # None: the tracking server's own artifact store (mlflow-artifacts:/, e.g. S3 behind it).
    artifact_location: str | None

    def __post_init__(self) -> None:
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if self.artifact_location and self.artifact_location.startswith("file://"):
            Path(self.artifact_location.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self.client.get_experiment_by_name(self.experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(
            self.experiment, artifact_location=self.artifact_location)

    @classmethod
    def from_params(cls, params) -> "Tracking":
        return cls(params.tracking_uri, params.tracking.experiment, params.artifact_location)

    def start_run(self, name: str, tags: dict[str, str] | None = None, parent_run_id: str | None = None) -> str:
        tags = dict(tags or {})
        tags["mlflow.runName"] = name
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        return run.info.run_id

    @contextmanager
    def run(self, name: str, tags: dict[str, str] | None = None, parent_run_id: str | None = None) -> Iterator[str]:
        """A run that ends FINISHED, or FAILED when the block raises."""
        run_id = self.start_run(name, tags, parent_run_id)
        try:
            yield run_id
        except BaseException:
            self.end_run(run_id, "FAILED")
            raise
        self.end_run(run_id)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start:start + 100])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        import time
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in sorted(metrics.items())]
        for start in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[start:start + 500])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in sorted(tags.items())])

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_artifacts(self, run_id: str, directory: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(directory), artifact_path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)


def maybe_run(tracking: Tracking | None, name: str, tags: dict[str, str] | None = None,
              parent_run_id: str | None = None):
    """``tracking.run(...)``, or a context yielding None when the caller tracks nothing."""
    return tracking.run(name, tags, parent_run_id) if tracking is not None else nullcontext()
