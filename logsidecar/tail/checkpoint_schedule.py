"""When the checkpoint store is written, apart from acknowledgements (those are committed at once by
`Tailer.acknowledge`): the identities of new files before their first bytes are read, the growing
fingerprints and paths every checkpoint_interval_s, the GC clock ("last seen") every GC_INTERVAL_S,
and the fsync that makes the last interval's commits survive a power loss.

Invariants: writes never overlap (one lock); a periodic write is skipped cheaply when not due (every
cycle asks); the flush and fsync run in a worker thread, never on the loop. Nothing fires while
nothing happens: with nothing pending or unsynced the next write is due only at the GC clock, and the
timer sleeps until then or until `note_work` (an acknowledgement) says there is something to write.
"""

from __future__ import annotations

import asyncio
import time

from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.fileset import FileSet
from logsidecar.tail.options import TailOptions
from logsidecar.tail.reader import FileReader
from logsidecar.tail.watch.base import Wakeup

GC_INTERVAL_S = 60.0


class CheckpointSchedule:
    def __init__(self, options: TailOptions, store: CheckpointStore, files: FileSet) -> None:
        self.options = options
        self.store = store
        self.files = files
        self.last_write = 0.0  # monotonic
        self._last_gc = 0.0
        self._lock = asyncio.Lock()
        self._identities_to_persist = False
        self._work = Wakeup()  # set by `note_work` while the timer is parked with nothing to write
        self._parked = False

    def track(self, reader: FileReader) -> None:
        """Refresh the store's entry of a followed file (identity, path, last seen)."""
        self.store.track(reader.file_key, reader.inode.dev, reader.inode.ino, reader.fingerprint, reader.path)

    def persist_identities_soon(self) -> None:
        """A new file's identity must be durable before its first bytes are read (Restart guarantees)."""
        self._identities_to_persist = True

    async def persist_identities(self) -> None:
        """Write now if a new identity waits (before the cycle reads)."""
        if self._identities_to_persist:
            self._identities_to_persist = False
            await self.write(force=True)

    def due_in(self, now: float) -> float:
        if not self.has_work():
            return self._last_gc + GC_INTERVAL_S - now  # only the GC clock is left to write
        return self.last_write + self.options.checkpoint_interval_s - now

    def has_work(self) -> bool:
        """Identities, acknowledged offsets or unsynced commits wait to be written."""
        return self._identities_to_persist or self.store.has_pending() or self.store.has_unsynced()

    def note_work(self) -> None:
        """Something was committed (`Tailer.acknowledge`): a parked timer must write it within the
        interval. Costs a flag test unless the timer is parked (once per quiet spell)."""
        if self._parked and self.has_work():  # (a store in memory only has nothing to write)
            self._parked = False
            self._work.set()

    async def write_periodically(self, stopping: asyncio.Event) -> None:
        """Acknowledgements keep arriving while `emit` blocks (backpressure, a sink outage): this timer
        writes them down too, so a crash then replays only the last interval, not the whole stall.
        Sleeps until the next write is due (cycles write too, and move it on); with nothing to write,
        until the GC clock or `note_work`. Cancelled by the tailer."""
        while not stopping.is_set():
            delay = self.due_in(time.monotonic())
            if delay > 0 and not self.has_work():
                self._work.clear()
                self._parked = True
                woken = await self._work.wait(delay)
                self._parked = False
                if woken:
                    continue  # work arrived: due one interval after the last write
            elif delay > 0:
                await asyncio.sleep(delay)
            await self.write()

    async def write(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_write < self.options.checkpoint_interval_s:
            return  # not due (every cycle asks): skip the lock (re-checked under it)
        async with self._lock:
            await self._write_locked(force)

    async def _write_locked(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.last_write < self.options.checkpoint_interval_s:
            return
        self.last_write = now
        keys = self.files.keys()
        for tracked in self.files.values():
            self.track(tracked.reader)  # fingerprints grow while files are small
        if now - self._last_gc >= GC_INTERVAL_S:
            self._last_gc = now
            self.store.touch(keys)  # persist "last seen" for the GC clock now and then
            self.store.collect_garbage(self.options.forget_after_s, keep=set(keys))
        # Acknowledged offsets are already written (`acknowledge`); what is left: identities and the GC
        # clock, and the fsync that makes the last interval's commits survive a power loss.
        if self.store.has_pending() or self.store.has_unsynced():
            await asyncio.get_running_loop().run_in_executor(None, self._flush_and_sync)

    def _flush_and_sync(self) -> None:
        self.store.flush()
        self.store.sync()
