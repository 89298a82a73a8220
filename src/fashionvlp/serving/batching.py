"""Micro-batching: items from concurrent requests are queued and merged into one ONNX Runtime call of at
most ``max_batch_size`` items, waiting at most ``max_wait_ms`` after the first item for others to join.

One batch runs at a time per batcher, off the event loop (ONNX Runtime releases the GIL and already uses
every core inside a call). When a batch of several items fails, each item is run again on its own, so one
request's bad item fails that request only, never the others merged with it; the batcher goes on.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from typing import Any, Callable


class MicroBatcher:
    def __init__(self, name: str, run_batch: Callable[[list[Any]], list[Any]], max_batch_size: int,
                 max_wait_ms: float, executor: Executor | None = None,
                 observe: Callable[[str, int, float], None] | None = None):
        self.name, self.run_batch = name, run_batch
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000.0
        self.executor, self.observe = executor, observe
        self.queue: asyncio.Queue = asyncio.Queue()
        self.worker: asyncio.Task | None = None
        self.busy = False

    def start(self) -> None:
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{self.name}")

    async def submit(self, item: Any) -> Any:
        self.start()
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((item, future, time.perf_counter()))
        return await future

    async def submit_many(self, items: list[Any]) -> list[Any]:
        return list(await asyncio.gather(*(self.submit(item) for item in items)))

    @property
    def pending(self) -> int:
        return self.queue.qsize()

    async def _collect(self) -> list[tuple]:
        batch = [await self.queue.get()]
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch_size:
            try:
                batch.append(self.queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [entry for entry in batch if not entry[1].done()]  # a client that went away
            if not live:
                continue
            started = time.perf_counter()
            if self.observe:
                self.observe(self.name, len(live), started - min(e[2] for e in live))
            self.busy = True
            try:
                await self._run(loop, live)
            finally:
                self.busy = False

    async def _run(self, loop, live: list[tuple]) -> None:
        try:
            results = await loop.run_in_executor(self.executor, self.run_batch, [e[0] for e in live])
        except Exception as exc:  # noqa: BLE001 — handed to the requests whose item fails
            if len(live) > 1:
                for entry in live:
                    await self._run(loop, [entry])
                return
            for _, future, _ in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future, _), result in zip(live, results):
            if not future.done():
                future.set_result(result)

    async def drain(self, timeout: float) -> None:
        """Waits until nothing is queued or running (or ``timeout``), then stops the worker."""
        deadline = time.perf_counter() + timeout
        while (self.queue.qsize() or self.busy) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        await self.stop()

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            try:
                await self.worker
            except asyncio.CancelledError:
                pass
            self.worker = None


class Unbatched:
    """The same interface without batching: each item is its own ONNX Runtime call, run concurrently."""

    def __init__(self, name: str, run_batch: Callable[[list[Any]], list[Any]], executor: Executor | None = None,
                 observe: Callable[[str, int, float], None] | None = None):
        self.name, self.run_batch, self.executor, self.observe = name, run_batch, executor, observe
        self.pending = 0

    def start(self) -> None:
        pass

    async def submit(self, item: Any) -> Any:
        if self.observe:
            self.observe(self.name, 1, 0.0)
        return (await asyncio.get_running_loop().run_in_executor(self.executor, self.run_batch, [item]))[0]

    async def submit_many(self, items: list[Any]) -> list[Any]:
        return list(await asyncio.gather(*(self.submit(item) for item in items)))

    async def drain(self, timeout: float) -> None:
        pass

    async def stop(self) -> None:
        pass
