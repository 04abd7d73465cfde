"""The watcher interface: watchers only WAKE the tailer; the tailer stats files to decide what changed.

One interface, two mechanisms behind it (`inotify.InotifyWatcher`, `polling.PollingWatcher`), chosen by
`select.select_watcher`; the tailer names neither. What the tailer asks of a watcher:
- `watch_directories(dirs)`: the directories holding the followed paths (after each discovery);
- `take_structure_changed()`, `take_events_lost()`, `take_early_opened()`: what happened since the
  last cycle (a create/move/delete; lost events to rescan after; files opened the moment they were
  created);
- `probe(paths_moved)`: for a watcher that is not told of changes, a look that says whether one
  happened (a watcher that is told says False without looking);
- `interval_s`: how long a cycle may sleep without a hint (the watcher keeps it: a safety net under
  inotify, the poll interval when polling or when inotify cannot watch a directory);
- `wait(timeout_s, hold_content_until)`, `wake()`, `close()`; `mechanism` names it in events.

Invariants: a watcher never reads file content and never decides anything; losing a hint costs at
most one interval, never data, and losing events is always reported. Wakes are coalesced: a flood of
content hints costs at most one wake-up per hold period. `wake()` (stop) is never held.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

EarlyOpened = tuple[str, int, os.stat_result]  # path, descriptor, its fstat
PathsMoved = Callable[[], Awaitable[bool]]


class Wakeup:
    """An asyncio.Event for one waiter whose timed wait ends through a timer callback instead of
    cancelling the waiter (`asyncio.timeout` / `wait_for` raise CancelledError through the coroutine
    stack: ~70 us per expiry, i.e. per read cycle of a steady writer, measured). Loop thread only."""

    __slots__ = ("_is_set", "_waiter")

    def __init__(self) -> None:
        self._is_set = False
        self._waiter: asyncio.Future[bool] | None = None

    def is_set(self) -> bool:
        return self._is_set

    def set(self) -> None:
        self._is_set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def clear(self) -> None:
        self._is_set = False

    async def wait(self, timeout_s: float) -> bool:
        """True once set (now or within `timeout_s`), False when the time passed first."""
        if self._is_set:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(max(timeout_s, 0.0), _time_is_up, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _time_is_up(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Watcher:
    """Base: wait for a hint or the interval. Subclasses say what they saw; the tailer only asks."""

    mechanism = "none"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s  # read by the tailer, kept by the watcher
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = Wakeup()
        self._urgent = False  # wake() was called (stop): never held
        self.structure_changed = True  # a create/move/delete was seen: run discovery now

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def watch_directories(self, directories: set[Path]) -> None:
        """Follow exactly these directories (recursive where the pattern needs it is the caller's
        business: it passes every directory it wants)."""

    def wake(self) -> None:
        """Wake the tailer now, whatever the hold (from the event loop's thread; used by stop)."""
        self._urgent = True
        self._wake.set()

    async def wait(self, timeout_s: float, hold_content_until: float = 0.0) -> bool:
        """Sleep until a hint arrives or `timeout_s` passes. Returns True when woken by a hint.
        A content hint (a file grew) does not end the wait before `hold_content_until` (monotonic
        clock): the caller's coalescing. Structure hints and `wake()` are never held."""
        woke = await self._wait_for_wake(timeout_s)
        if woke and not self._urgent and not self.structure_changed:
            hold = hold_content_until - time.monotonic()
            if hold > 0:
                await asyncio.sleep(hold)  # a flood of content hints meanwhile costs a flag each
        self._urgent = False
        return woke

    async def _wait_for_wake(self, timeout_s: float) -> bool:
        if not await self._wake.wait(timeout_s):
            return False
        self._wake.clear()
        return True

    async def probe(self, paths_moved: PathsMoved) -> bool:
        """Did a create, rename or delete happen that no event told of? A watcher that is told of
        every change says False without looking; one that is not looks (`paths_moved` is the
        tailer's stat of each followed path, asked last: it is the dearest look)."""
        return False

    def take_early_opened(self) -> list[EarlyOpened]:
        """Files opened the moment they were created, now the tailer's to adopt or close."""
        return []

    def take_structure_changed(self) -> bool:
        """True (once) when a create/move/delete was seen since the last call."""
        changed, self.structure_changed = self.structure_changed, False
        return changed

    def take_events_lost(self) -> int:
        """How many times events were lost since the last call (0 for a watcher that cannot lose
        any). Anything may have been created, renamed or deleted meanwhile: rescan everything."""
        return 0

    def close(self) -> None:
        pass
