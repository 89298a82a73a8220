"""Quiet and offline: no telemetry, no hub downloads. Set before mlflow/prefect/transformers import."""

import os

QUIET_OFFLINE = {"MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                 "DO_NOT_TRACK": "true", "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1",
                 "TRANSFORMERS_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false"}


def quiet_offline() -> None:
    for key, value in QUIET_OFFLINE.items():
        os.environ.setdefault(key, value)


def share_cpu_threads(processes: int) -> None:
    """In one of ``processes`` worker processes: take an equal share of the CPU cores for torch."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(processes, 1)))
