"""When the checkpoint store is written, apart from acknowledgements (those are committed at once by
`Tailer.acknowledge`): the identities of new files before their first bytes are read, the growing
fingerprints and paths every checkpoint_interval_s, the GC clock ("last seen") every GC_INTERVAL_S,
and the fsync that makes the last interval's commits survive a power loss.

Invariants: writes never overlap (one lock); a periodic write is skipped cheaply when not due (every
cycle asks); the flush and fsync run in a worker thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import time

from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.fileset import FileSet
from logsidecar.tail.options import TailOptions
from logsidecar.tail.reader import FileReader

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
        return self.last_write + self.options.checkpoint_interval_s - now

    async def write_periodically(self, stopping: asyncio.Event) -> None:
        """Acknowledgements keep arriving while `emit` blocks (backpressure, a sink outage): this timer
        writes them down too, so a crash then replays only the last interval, not the whole stall.
        Sleeps until the next write is due (cycles write too, and move it on); cancelled by the tailer."""
        interval = self.options.checkpoint_interval_s
        while not stopping.is_set():
            await asyncio.sleep(max(self.last_write + interval - time.monotonic(), 0.0))
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
