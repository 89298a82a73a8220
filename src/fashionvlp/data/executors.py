"""Where data work runs (decoding images for validation, encoding JPEGs in conversion): this process, a
local process pool, or a Dask cluster.

A Dask cluster is the option the attribute backfill already has (``backfill.address``): give its
scheduler's address (``--dask-address tcp://host:8786``) and the work is mapped over its workers through
``distributed``'s ``concurrent.futures`` executor. Workers need this package installed and, for
validation, the catalog at the same path (a shared or mounted filesystem): tasks carry paths, not images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any


class InProcess:
    """An executor's ``map`` in this process: one worker, no pickling."""

    def map(self, fn: Callable, *iterables: Iterable) -> Iterator[Any]:
        return map(fn, *iterables)


@contextmanager
def data_executor(workers: int | None = None, dask_address: str | None = None) -> Iterator[Executor | InProcess]:
    """``dask_address``: map over that Dask cluster's workers. Otherwise ``workers`` local processes (0 or
    None: every core); one worker runs in this process."""
    if dask_address:
        from distributed import Client

        with Client(dask_address, set_as_default=False) as client:
            with client.get_executor() as executor:
                yield executor
        return
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        yield InProcess()
        return
    with ProcessPoolExecutor(workers) as pool:
        yield pool


def chunked(items: list, size: int) -> list[list]:
    """Consecutive slices of ``size`` items: one task each, so a task's overhead is spread over many items."""
    return [items[start:start + size] for start in range(0, len(items), size)]
