"""Environment defaults, set before mlflow/prefect/transformers/torch import: quiet and offline (no
telemetry, no hub downloads) and numerically reproducible (MKL)."""

import os

QUIET_OFFLINE = {"MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                 "DO_NOT_TRACK": "true", "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1",
                 "TRANSFORMERS_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false",
                 "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                 # A flow's temporary Prefect API migrates a fresh database first: on a busy 2-core machine
                 # that takes longer than Prefect's default 20 s wait.
                 "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                 # MKL (torch's BLAS here) otherwise picks kernels and thread use by the machine's load and
                 # memory alignment: two `make run`s, one on a busy machine, parted at pre-training step ~30.
                 # Conditional numerical reproducibility and no dynamic threading take the load out of
                 # MKL's choices (two runs still parted later; see README "Reproducible runs"). Read when
                 # MKL loads: set before torch is imported.
                 "MKL_CBWR": "AUTO", "MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE",
                 # What torch's deterministic mode (fix_threads) needs from cuBLAS on a GPU.
                 "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def quiet_offline() -> None:
    for key, value in QUIET_OFFLINE.items():
        os.environ.setdefault(key, value)


def fix_threads(threads: int) -> dict[str, int]:
    """Sets torch's intra-op threads and the BLAS/OpenMP pools to ``threads``, and returns what was set.

    A float reduction split over another number of threads adds in another order, so the same run gives
    other bits (and an undertrained model other metrics) on a machine or in a process pool with another
    core count. Each stage therefore runs with the thread count its config names, wherever it runs.

    It also switches on torch's deterministic algorithms. Without them an accumulating ``index_put_``
    (the backward of advanced indexing) on a large float tensor with more than one thread adds with
    atomics in whatever order the threads arrive, so repeated indices sum in a timing-dependent order.
    ``warn_only``: an op without a deterministic kernel warns instead of stopping a run.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count() or 1}
