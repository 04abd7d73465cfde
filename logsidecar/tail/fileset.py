"""The files a tailer follows: one `TrackedFile` per content generation (`file_key`), its state and
offsets, and lookups by identity.

A file is ACTIVE while it is found at a matched path, ROTATED once it is not (renamed away, deleted or
replaced; or the copy of a copytruncate): then it is only drained, and released by `retention`.

Invariants: keys are the readers' `file_key`s; iteration is in the order files were added (the read
order among files of one state); `committed_offset` only grows (`Tailer.acknowledge`).

`stats` reports each file's size as it is now, not as the reader last saw it: while delivery is
blocked the tailer reads nothing (the file is the buffer), and the lag (bytes_behind, /healthz, the
FallingBehind alert) must grow with what is written meanwhile, not jump when reading resumes. On a
local filesystem that is an fstat of the open descriptor, at once. On a guarded network mount an
fstat can hang on a dead server, so there it is never made by `stats` itself: `stats` starts one
through the stall guard in the background (one per file at a time; the guard keeps one call per
path) and reports the size known so far, which that fstat raises for the next scrape.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from logsidecar.tail.identity import Inode
from logsidecar.tail.reader import FileReader


class FileState(StrEnum):
    ACTIVE = "active"  # found at a matched path
    ROTATED = "rotated"  # no longer at any matched path: drained to EOF, then released


@dataclass(slots=True)
class TrackedFile:
    reader: FileReader
    state: FileState = FileState.ACTIVE
    committed_offset: int = 0
    last_growth: float = field(default_factory=time.monotonic)
    rotated_at: float | None = None
    deleted: bool = False
    emitted_offset: int = 0  # end offset of the last line handed to emit


class FileSet:
    """file_key -> TrackedFile, plus the inodes we decided not to follow (said once)."""

    def __init__(self) -> None:
        self._files: dict[str, TrackedFile] = {}
        self.skipped: set[Inode] = set()  # ignore_older, or copies of followed files: said once
        self._refreshing: dict[str, asyncio.Task[None]] = {}  # guarded fstats started by `stats`

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, key: str) -> bool:
        return key in self._files

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def get(self, key: str) -> TrackedFile | None:
        return self._files.get(key)

    def keys(self) -> list[str]:
        return list(self._files)

    def values(self) -> list[TrackedFile]:
        return list(self._files.values())

    def items(self) -> list[tuple[str, TrackedFile]]:
        return list(self._files.items())

    def add(self, tracked: TrackedFile) -> None:
        self._files[tracked.reader.file_key] = tracked

    def pop(self, key: str) -> TrackedFile | None:
        return self._files.pop(key, None)

    def inodes(self) -> set[Inode]:
        return {t.reader.inode for t in self._files.values()}

    def rotated(self) -> list[tuple[str, TrackedFile]]:
        return [(k, t) for k, t in self._files.items() if t.state is FileState.ROTATED]

    def stats(self) -> list[dict[str, object]]:
        """Per file: path, file_key, read_offset, committed_offset, size, bytes_behind (size minus
        committed offset), unread_bytes (size minus read offset), state, lines_read, bytes_read,
        truncated_lines, nul_runs, partial_flushes."""
        files: list[dict[str, object]] = []
        for key, tracked in self._files.items():
            reader = tracked.reader
            c = reader.counters
            size = self._size_now(key, tracked)
            files.append(
                {
                    "path": reader.path,
                    "file_key": key,
                    "read_offset": reader.read_offset,
                    "committed_offset": tracked.committed_offset,
                    "size": size,
                    "bytes_behind": max(size - tracked.committed_offset, 0),
                    "unread_bytes": max(size - reader.scan_offset, 0),
                    "state": tracked.state.value,
                    "lines_read": c.lines_read,
                    "bytes_read": c.bytes_read,
                    "truncated_lines": c.truncated_lines,
                    "nul_runs": c.nul_runs,
                    "partial_flushes": c.partial_flushes,
                }
            )
        return files

    def _size_now(self, key: str, tracked: TrackedFile) -> int:
        """The file's size now (see the module docstring). A file closed by the descriptor budget
        has the size last seen (reopened, it is fstatted again)."""
        reader = tracked.reader
        if reader.fd < 0:
            return reader.size
        if reader.fs is None:
            try:
                return os.fstat(reader.fd).st_size  # no path lookup; ~1 us
            except OSError:
                return reader.size
        if key not in self._refreshing:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return reader.size  # not on the event loop: nothing to run the guarded fstat
            self._refreshing[key] = loop.create_task(self._refresh_size(key, tracked))
        return reader.size

    async def _refresh_size(self, key: str, tracked: TrackedFile) -> None:
        reader = tracked.reader
        fd = reader.fd
        try:
            st = await reader.fstat()  # through the stall guard: Stalled (an OSError) on a dead server
        except OSError:
            return  # said by the guard (or by the cycle, which meets the same error)
        finally:
            self._refreshing.pop(key, None)
        if self._files.get(key) is tracked and reader.fd == fd and st.st_size > reader.size:
            reader.size = st.st_size  # only grows: a shrink is the cycle's to handle (copytruncate)
