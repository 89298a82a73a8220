"""Progress of a long loop: a tqdm bar on a terminal; elsewhere (a log file, CI, a flow's worker) one short
line every ``every_s`` seconds and at the end, since a bar's carriage-return updates filled `make run`'s log
with thousands of lines."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import IO, Iterator

LINE_EVERY_S = 30.0


class LineProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``close`` as a line now and then:
    "pretrain: 120 / 400 (30%), 2.9/s, loss/itc=3.100"."""

    def __init__(self, total: int, what: str, stream: IO[str], every_s: float, initial: int = 0):
        self.total, self.what, self.stream, self.every_s = total, what, stream, every_s
        self.done = self.initial = initial
        self.postfix = ""
        self.started = self.last = time.perf_counter()
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every_s:
            self.last = now
            self._line(now)

    def set_postfix(self, values: dict) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _line(self, now: float) -> None:
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        rate = (self.done - self.initial) / max(now - self.started, 1e-9)
        tail = f", {self.postfix}" if self.postfix else ""
        print(f"{self.what}: {self.done:,} / {self.total:,}{share}, {rate:,.1f}/s{tail}", file=self.stream, flush=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(time.perf_counter())


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, values: dict) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, what: str, *, initial: int = 0, disable: bool = False, stream: IO[str] | None = None,
                 every_s: float = LINE_EVERY_S):
    """A tqdm bar where ``stream`` (stderr) is a terminal, else a ``LineProgress``; nothing if ``disable``."""
    if disable:
        return _Silent()
    stream = stream or sys.stderr
    if stream.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=what, file=stream, dynamic_ncols=True)
    return LineProgress(total, what, stream, every_s, initial)


@contextlib.contextmanager
def progress(total: int, what: str, **options) -> Iterator:
    """``progress_bar`` closed at the end of the block."""
    bar = progress_bar(total, what, **options)
    try:
        yield bar
    finally:
        bar.close()
