"""Steps 5-6 of the poll cycle, and the partial-line flush: read followed files in budgeted chunks and
hand out batches of complete lines.

`read_changed_files` fstats every followed file and reads those that grew, at most a per-file byte
budget per cycle (fairness: one busy file cannot starve 199 quiet ones), rotated files first (they pin
descriptors and disk space; read exactly like active ones, to their very end). Each batch is awaited
through `emit` (backpressure: while emit is blocked nothing more is read; the file is the buffer). A
file shorter than our offset, or whose first bytes changed, goes to `copytruncate`. A last line without
newline is emitted after partial_line_flush_s (`flush_partial_lines`), only at the end of the file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from logsidecar import events
from logsidecar.events import Event, PartialLineFlushed
from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.copytruncate import CopyTruncate
from logsidecar.tail.counters import TailCounters
from logsidecar.tail.fd_budget import FdBudget
from logsidecar.tail.fileset import FileSet, FileState, TrackedFile
from logsidecar.tail.netfs import Stalled
from logsidecar.tail.options import ReadBatch, TailOptions
from logsidecar.tail.reader import FileReader, Framed
from logsidecar.tail.reports import PathReports
from logsidecar.tail.retention import ROTATED_IDLE_RELEASE_S

READ_BUDGET_CHUNKS = 4  # per file per cycle, in read_chunk_bytes

Emit = Callable[[ReadBatch], Awaitable[None]]


class BatchReader:
    def __init__(
        self,
        options: TailOptions,
        files: FileSet,
        store: CheckpointStore,
        counters: TailCounters,
        reports: PathReports,
        copytruncate: CopyTruncate,
        stopping: asyncio.Event,
        fd_budget: FdBudget | None = None,
    ) -> None:
        self.options = options
        self.files = files
        self.store = store
        self.counters = counters
        self.reports = reports
        self.copytruncate = copytruncate
        self._stopping = stopping
        self.fd_budget = fd_budget

    async def read_changed_files(self, emit: Emit) -> bool:
        """Steps 5-6. Returns True when some file still has unread bytes after its budget (or a
        changed file closed by the descriptor budget still waits for a slot: `fd_budget`)."""
        more = False
        if self.fd_budget is not None:
            more = await self.fd_budget.reopen_changed()
        budget = self.options.read_chunk_bytes * READ_BUDGET_CHUNKS
        # rotated files first: they pin descriptors and disk space (step 6)
        order = sorted(self.files.items(), key=lambda item: item[1].state is not FileState.ROTATED)
        for key, tracked in order:
            if self._stopping.is_set():
                return False
            if self.files.get(key) is not tracked or tracked.reader.fd < 0:
                continue
            more |= await self._read_file(key, tracked, budget, emit)
        if self.fd_budget is not None:
            self.fd_budget.park_over_budget()
        return more

    async def _read_file(self, key: str, tracked: TrackedFile, budget: int, emit: Emit) -> bool:
        reader = tracked.reader
        try:
            st = await reader.fstat()
        except Stalled:
            return False  # said by the stall guard; the file is read again once its mount answers
        except OSError as error:
            self.reports.error(reader.path, error)
            return False
        tracked.deleted = st.st_nlink == 0
        size = st.st_size
        if size == reader.scan_offset and size == reader.size:
            return False
        if tracked.state is FileState.ACTIVE and (
            size < reader.scan_offset or await self._content_replaced(reader)
        ):
            leftover = self.copytruncate.handle_truncation(key, tracked)  # step 7
            if leftover.lines:
                await self.emit_framed(reader, leftover, emit)
            return True
        if reader.scan_offset == 0 and self.copytruncate.is_copy_of_followed(reader):
            # It started empty (so it looked new) and is now filling up as a copy of a followed file.
            reader.close()
            self.files.pop(key)
            self.store.forget(key)
            return False
        if tracked.state is FileState.ROTATED:
            if size < reader.scan_offset:
                reader.size = size  # a rotated file shrank: nothing more to read from it
                return False
            if len(reader.fingerprint) < self.options.fingerprint_bytes:
                # only grows the fingerprint (it is what a restart matches)
                await self._content_replaced(reader)
        reader.size = size
        read = 0
        while read < budget and reader.scan_offset < reader.size and not self._stopping.is_set():
            framed = Framed()
            got = await self._read_chunk(reader, framed)
            if got == 0:
                break
            read += got
            tracked.last_growth = time.monotonic()
            await self.emit_framed(reader, framed, emit)
            if reader.fd < 0:
                break
        return reader.scan_offset < reader.size

    async def _read_chunk(self, reader: FileReader, framed: Framed) -> int:
        try:
            got = await reader.read_once(self.options.read_chunk_bytes, framed)
        except Stalled:
            return 0  # said by the stall guard
        except OSError as error:
            self.reports.error(reader.path, error)
            return 0
        self.counters.bytes_read += got
        if reader.framer.has_partial:
            if reader.partial_since is None or got:
                reader.partial_since = time.monotonic()
        else:
            reader.partial_since = None
        return got

    async def emit_framed(self, reader: FileReader, framed: Framed, emit: Emit) -> None:
        if framed.nul_runs:
            events.emit(
                Event.NUL_RUN_SKIPPED,
                path=reader.path,
                file_key=reader.file_key,
                runs=framed.nul_runs,
                bytes=framed.nul_bytes,
            )
            self.counters.nul_runs += framed.nul_runs
        if not framed.lines:
            return
        tracked = self.files.get(reader.file_key)
        if tracked is not None and tracked.reader is reader:
            tracked.emitted_offset = framed.end_offsets[-1]
        self.counters.lines_read += len(framed.lines)
        for index in sorted(framed.truncated):
            self.counters.truncated_lines += 1
            events.emit(
                Event.LINE_TRUNCATED,
                path=reader.path,
                file_key=reader.file_key,
                offset=framed.end_offsets[index],
                max_line_bytes=self.options.max_line_bytes,
            )
        step = self.options.max_batch_lines
        total = len(framed.lines)
        for start in range(0, total, step):
            stop = min(start + step, total)
            if start == 0 and stop == total:
                batch = reader.batch(framed)
            else:
                truncated = {i - start for i in framed.truncated if start <= i < stop}
                batch = ReadBatch(
                    reader.file_key,
                    reader.path,
                    framed.lines[start:stop],
                    framed.end_offsets[start:stop],
                    truncated,
                )
            await emit(batch)

    @staticmethod
    async def _content_replaced(reader: FileReader) -> bool:
        try:
            return await reader.fingerprint_changed()
        except OSError:
            return False

    async def flush_partial_lines(self, emit: Emit, stopping: bool = False) -> None:
        """A last line without newline goes out after partial_line_flush_s, or at once when `stopping`."""
        now = time.monotonic()
        for tracked in self.files.values():
            reader = tracked.reader
            if reader.partial_since is None or not reader.framer.has_partial:
                continue
            rotated_idle = (
                tracked.state is FileState.ROTATED
                and reader.at_eof
                and (now - tracked.last_growth >= ROTATED_IDLE_RELEASE_S)
            )
            # Only the end of the file is a partial line: a line cut by a chunk boundary whose rest is
            # known to be in the file (emit blocked past the delay) waits for its next read.
            timed_out = reader.at_eof and now - reader.partial_since >= self.options.partial_line_flush_s
            if stopping or timed_out or rotated_idle:
                framed = Framed()
                if reader.flush_partial(framed):
                    events.emit(
                        PartialLineFlushed(
                            path=reader.path,
                            file_key=reader.file_key,
                            offset=reader.scan_offset,
                            reason="stopping" if stopping else None,
                        )
                    )
                    await self.emit_framed(reader, framed, emit)
