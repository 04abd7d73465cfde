"""How long a rotated file is held: until it is drained, within the max_rotated_files_held bound.

A rotated file is released only when it is at EOF and has not grown for ROTATED_IDLE_RELEASE_S (the
writer may still append to it, e.g. Apache children finishing requests after a graceful restart).
Never on a timer while bytes remain, except when more than max_rotated_files_held are held: then
idle-at-EOF ones go first (oldest rotation first), and only if that is not enough the oldest is let go
with its unread bytes counted in `bytes_abandoned` (and said in `file_drained`).

A released file that was deleted can never be seen again: its checkpoint entry is forgotten, once
everything emitted from it is acknowledged (`settled`), to keep the store small under fast rotation.
"""

from __future__ import annotations

import time

from logsidecar import events
from logsidecar.events import Event, FileRotated
from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.counters import TailCounters
from logsidecar.tail.fileset import FileSet, FileState, TrackedFile
from logsidecar.tail.netfs import Stalled
from logsidecar.tail.options import TailOptions
from logsidecar.tail.reader import FileReader

ROTATED_IDLE_RELEASE_S = 5.0  # a drained rotated file is kept this long after its last growth


class Retention:
    def __init__(
        self, options: TailOptions, files: FileSet, store: CheckpointStore, counters: TailCounters
    ) -> None:
        self.options = options
        self.files = files
        self.store = store
        self.counters = counters
        # released deleted files: their checkpoint entry goes once everything emitted is acknowledged
        self._forget_when_acknowledged: dict[str, int] = {}

    def mark_rotated(self, key: str, tracked: TrackedFile, is_rotation: bool = True) -> None:
        """From now on the file is only drained (a rotation, or the copy of a copytruncate)."""
        tracked.state = FileState.ROTATED
        tracked.rotated_at = time.monotonic()
        tracked.last_growth = time.monotonic()
        if is_rotation:
            self.counters.rotations += 1
            events.emit(
                FileRotated(path=tracked.reader.path, file_key=key, offset=tracked.reader.scan_offset)
            )

    def settled(self, key: str, offset: int) -> None:
        """Everything of `key` up to `offset` is acknowledged: a released deleted file is forgotten."""
        last = self._forget_when_acknowledged.get(key)
        if last is not None and offset >= last:
            del self._forget_when_acknowledged[key]
            self.store.forget(key)

    async def retire_drained_readers(self) -> None:
        """Step 8: release rotated files read to their end (a fresh fstat says so) and idle for
        ROTATED_IDLE_RELEASE_S, then hold the max_rotated_files_held bound."""
        now = time.monotonic()
        for key, tracked in self.files.rotated():
            if tracked.reader.fd < 0:
                self.release(key, tracked, abandoned=0)
            elif now - tracked.last_growth >= ROTATED_IDLE_RELEASE_S and await self.drained(tracked.reader):
                self.release(key, tracked, abandoned=0)
        await self.hold_rotated_bound(may_abandon=True)

    async def hold_rotated_bound(self, may_abandon: bool) -> None:
        """Over max_rotated_files_held: release drained files first (oldest rotation first); only if
        that is not enough, and only when `may_abandon`, the oldest with bytes left (counted)."""
        rotated = self.files.rotated()
        excess = len(rotated) - self.options.max_rotated_files_held
        if excess <= 0:
            return
        rotated.sort(key=lambda kt: kt[1].rotated_at or 0.0)
        for key, tracked in list(rotated):
            if excess <= 0:
                return
            if await self.drained(tracked.reader):
                self.release(key, tracked, abandoned=0)
                rotated.remove((key, tracked))
                excess -= 1
        if not may_abandon:
            return
        for key, tracked in rotated[:excess]:
            reader = tracked.reader
            try:
                size = (await reader.fstat()).st_size
            except OSError:
                size = reader.size
            self.release(key, tracked, abandoned=max(size - reader.read_offset, 0))

    @staticmethod
    async def drained(reader: FileReader) -> bool:
        """Read to the very end (fresh fstat, not the size seen earlier this cycle), nothing pending."""
        if reader.framer.has_partial:
            return False
        try:
            return (await reader.fstat()).st_size <= reader.scan_offset
        except Stalled:
            return False  # unknown until its mount answers: kept
        except OSError:
            return True  # the descriptor is unusable: there is nothing more to read through it

    def release(self, key: str, tracked: TrackedFile, abandoned: int) -> None:
        reader = tracked.reader
        reader.close()
        self.files.pop(key)
        self.counters.files_drained += 1
        self.counters.bytes_abandoned += abandoned
        events.emit(
            Event.FILE_DRAINED,
            path=reader.path,
            file_key=key,
            offset=reader.scan_offset,
            abandoned_bytes=abandoned,
            deleted=tracked.deleted,
        )
        if tracked.deleted and not abandoned:
            # A deleted file can never be seen again: keep the store small under fast rotation.
            if tracked.committed_offset >= tracked.emitted_offset:
                self.store.forget(key)
            else:
                self._forget_when_acknowledged[key] = tracked.emitted_offset
