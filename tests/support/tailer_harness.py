"""Test support for driving the Tailer directly with real files (no test doubles).

`Collector` records every batch the tailer emits (checking per-key offset order) and acknowledges
it; `running()` runs a Tailer in the current event loop; `LineWriter` is a real writer thread that
appends unique numbered lines at a given rate and applies a rotation strategy every so often;
`assert_exact_once_arrived` checks that every written line arrived exactly once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logsidecar import events
from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.options import ReadBatch, TailOptions
from logsidecar.tail.tailer import Tailer
from tests.support.helpers import wait_for_async


def async_test(function: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function in a fresh event loop (no asyncio plugin needed)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(function(*args, **kwargs))

    return wrapper


# The tailer tests' name for `helpers.wait_for_async` (they run inside the event loop).
wait_for = wait_for_async


@dataclass
class Collector:
    tailer: Tailer | None = None
    acknowledge: bool = True
    lines: list[bytes] = field(default_factory=list)
    batches: list[ReadBatch] = field(default_factory=list)
    last_offset: dict[str, int] = field(default_factory=dict)
    order_errors: list[str] = field(default_factory=list)
    durable: concurrent.futures.Future[bool] | None = None  # done once the last acknowledgement is stored

    async def emit(self, batch: ReadBatch) -> None:
        assert len(batch.lines) == len(batch.end_offsets) and batch.lines
        previous = self.last_offset.get(batch.file_key, -1)
        offsets = [previous, *batch.end_offsets]
        if any(b <= a for a, b in zip(offsets, offsets[1:], strict=False)):
            self.order_errors.append(f"{batch.file_key}: {offsets[:5]}...")
        self.last_offset[batch.file_key] = batch.end_offset
        self.lines.extend(batch.lines)
        self.batches.append(batch)
        if self.acknowledge and self.tailer is not None:
            self.durable = self.tailer.acknowledge(batch.file_key, batch.end_offset)

    def counter(self) -> Counter[bytes]:
        return Counter(self.lines)


@dataclass
class EventLog:
    seen: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def __call__(self, event: events.Event, fields: dict[str, object]) -> None:
        self.seen.append((event.value, dict(fields)))

    def named(self, name: str) -> list[dict[str, object]]:
        return [f for e, f in self.seen if e == name]


@asynccontextmanager
async def running(
    options: TailOptions, store: CheckpointStore | None = None, collector: Collector | None = None
) -> AsyncIterator[tuple[Tailer, Collector, EventLog]]:
    log = EventLog()
    unsubscribe = events.subscribe(log)
    tailer = Tailer(options, store)
    collector = collector or Collector()
    collector.tailer = tailer
    task = asyncio.create_task(tailer.run(collector.emit))
    try:
        yield tailer, collector, log
    finally:
        await tailer.stop()
        await asyncio.wait_for(task, 10)
        unsubscribe()
        assert not collector.order_errors, collector.order_errors


def numbered_line(prefix: str, seq: int, width: int = 60) -> bytes:
    return f"{prefix} {seq:09d} ".encode() + b"x" * (seq % width) + b"\n"


Rotation = Callable[[Path, int, int], int]  # (path, fd, generation) -> new fd


class LineWriter(threading.Thread):
    """Appends unique lines to `path` (O_APPEND, one write per line like Apache) at `lines_per_s`,
    calling `rotate` every `rotate_every_s`; stops after `duration_s`. `written` lists every line."""

    def __init__(
        self,
        path: Path,
        *,
        lines_per_s: int,
        duration_s: float,
        rotate: Rotation | None = None,
        rotate_every_s: float = 0.2,
        prefix: str = "L",
        open_path: Path | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.open_path = open_path or path
        self.lines_per_s = lines_per_s
        self.duration_s = duration_s
        self.rotate = rotate
        self.rotate_every_s = rotate_every_s
        self.prefix = prefix
        self.written: list[bytes] = []
        self.rotations = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error

    def _run(self) -> None:
        fd = os.open(self.open_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        start = time.monotonic()
        next_rotation = start + self.rotate_every_s
        seq = 0
        per_tick = max(self.lines_per_s // 200, 1)  # write in 5 ms ticks
        while (now := time.monotonic()) - start < self.duration_s:
            for _ in range(per_tick):
                line = numbered_line(self.prefix, seq)
                os.write(fd, line)
                self.written.append(line.rstrip(b"\n"))
                seq += 1
            if self.rotate is not None and now >= next_rotation:
                self.rotations += 1
                fd = self.rotate(self.path, fd, self.rotations)
                next_rotation = now + self.rotate_every_s
            target = start + seq / self.lines_per_s
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        os.close(fd)

    def expected(self) -> Counter[bytes]:
        return Counter(self.written)


async def run_writer(writer: LineWriter) -> None:
    """Start `writer` and wait (off the event loop) until it has written everything, without error."""
    writer.start()
    await asyncio.to_thread(writer.join)
    assert writer.error is None, writer.error


def reopen(path: Path, old_fd: int) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.close(old_fd)
    return fd


def assert_exact(collector: Collector, expected: Counter[bytes]) -> None:
    got = collector.counter()
    missing = expected - got
    extra = got - expected
    assert not missing and not extra, (
        f"lost {sum(missing.values())} (e.g. {sorted(missing)[:3]}), "
        f"duplicated/unexpected {sum(extra.values())} (e.g. {sorted(extra)[:3]})"
    )


# Once every expected line has arrived: how long duplicates arriving late get to show.
LATE_DUPLICATES_S = 0.3


async def assert_exact_once_arrived(collector: Collector, expected: Counter[bytes], timeout: float) -> None:
    """Wait (up to `timeout`) until as many lines as `expected` counts have arrived, give duplicates
    arriving late LATE_DUPLICATES_S to show, then `assert_exact`."""
    total = sum(expected.values())
    await wait_for(lambda: len(collector.lines) >= total, timeout, message=f"{total} lines")
    await asyncio.sleep(LATE_DUPLICATES_S)
    assert_exact(collector, expected)
