"""Reading one file: large chunk reads at explicit offsets, and framing the bytes into lines.

`LineFramer` is pure (bytes in, lines out) so it can be tested against a model; `FileReader` owns an
open descriptor and the offsets of one content generation (one `file_key`).

Invariants:
- Offsets are raw byte offsets into the file. `read_offset` is the end of the last emitted line (the
  start of the pending partial line); `scan_offset` is the next byte to read. A line's end offset is
  just past its newline, so acknowledging it resumes with the next line.
- Bytes are bytes: no decoding here (the parser decides about UTF-8).
- A last line without newline waits; `flush_partial` emits it (the tailer calls it after
  `partial_line_flush_s`), and the rest of that line, when it comes, is emitted as a new line.
- A line longer than `max_line_bytes` is cut at `max_line_bytes`, flagged (ReadBatch.truncated) and
  counted; the rest of it is skipped up to its newline, and its end offset is past that newline.
  So memory per file is bounded by `max_line_bytes` + one chunk, whatever the input.
- Runs of NUL bytes (holes left by a writer without O_APPEND after a truncation, pre-allocation) are
  removed and counted; a line that consisted only of NULs is not emitted.
- Reads use `os.pread` (no shared file position). On local filesystems they run inline: a page-cache
  read of 256 KiB costs ~75 us, while a hop to a worker thread costs far more than the read itself
  (benchmarks/tail_read.py on the 2-core CI box: inline 3361 MiB/s, pread in a thread 641 MiB/s,
  aiofiles 481 MiB/s at 256 KiB chunks; 2532 / 33 / 39 MiB/s at 16 KiB). On network filesystems
  (polling mode), where one stat or read can block for minutes on a dead server, every call of the
  reader (fstat, fingerprint and chunk reads, however small) goes through `netfs.FsAccess`: aiofiles
  on worker threads with a stall deadline, so a hung mount never blocks the event loop.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from itertools import accumulate

from logsidecar.tail.identity import FileId, Inode, read_fingerprint
from logsidecar.tail.netfs import FsAccess
from logsidecar.tail.options import ReadBatch, TailOptions

NUL = b"\x00"
NEWLINE = b"\n"
NUL_RUN = re.compile(rb"\x00+")


@dataclass(slots=True)
class Framed:
    """Lines framed from one or more chunks (same shape as ReadBatch, without file naming)."""

    lines: list[bytes] = field(default_factory=list)
    end_offsets: list[int] = field(default_factory=list)
    truncated: set[int] = field(default_factory=set)
    nul_runs: int = 0
    nul_bytes: int = 0


class LineFramer:
    """Turns a byte stream (fed in order, with its file offsets) into complete lines."""

    __slots__ = ("max_line_bytes", "_buf", "_buf_had_nul", "_skipping", "_flushed", "_in_nul_run", "consumed")

    def __init__(self, max_line_bytes: int, start_offset: int = 0) -> None:
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()  # the pending partial line, NULs removed, at most max_line_bytes
        self._buf_had_nul = False
        self._skipping = False  # inside an overlong line: bytes are dropped up to the newline
        self._flushed = False  # the pending line was already emitted by flush_partial
        self._in_nul_run = False  # the previous chunk ended inside a NUL run
        self.consumed = start_offset  # offset where the pending partial line starts

    @property
    def has_partial(self) -> bool:
        return bool(self._buf) and not self._flushed

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def feed(self, chunk: bytes, chunk_offset: int, out: Framed) -> None:
        """Frame `chunk`, which starts at file offset `chunk_offset`, appending lines to `out`."""
        if not chunk:
            return
        has_nul = NUL in chunk
        if has_nul:
            self._count_nul_runs(chunk, out)
        else:
            self._in_nul_run = False
        parts = chunk.split(NEWLINE)
        last = parts.pop()
        position = chunk_offset
        first = 0
        if parts and (self._buf or self._buf_had_nul or self._skipping or self._flushed):
            # the first part completes the pending line; after it the framer state is clean
            position += len(parts[0]) + 1
            self._finish_line(parts[0], position, out)
            first = 1
        rest = parts[first:] if first else parts
        if not rest:
            pass
        elif not has_nul and (
            len(chunk) <= self.max_line_bytes or max(map(len, rest)) <= self.max_line_bytes
        ):
            # Fast path: plain lines (one C-level split, offsets by accumulate).
            ends = list(accumulate((len(p) + 1 for p in rest), initial=position))
            del ends[0]
            out.lines.extend(rest)
            out.end_offsets.extend(ends)
            self.consumed = ends[-1]
        else:
            for part in rest:
                position += len(part) + 1
                self._finish_line(part, position, out)
        self._append_partial(last)

    def flush_partial(self, out: Framed, end_offset: int) -> bool:
        """Emit the pending partial line (it waited long enough). Returns True if a line was emitted."""
        if not self._buf or self._flushed:
            return False
        line = bytes(self._buf)
        if self._skipping:
            out.truncated.add(len(out.lines))
        out.lines.append(line)
        out.end_offsets.append(end_offset)
        self._flushed = self._skipping  # an overlong line's rest is still skipped up to its newline
        if not self._skipping:
            self._buf.clear()
            self._buf_had_nul = False
        self.consumed = end_offset
        return True

    def reset(self, offset: int) -> None:
        """Forget any pending bytes and continue at `offset` (after a truncation)."""
        self._buf.clear()
        self._buf_had_nul = self._skipping = self._flushed = self._in_nul_run = False
        self.consumed = offset

    # -- internals -----------------------------------------------------------------------------
    def _finish_line(self, part: bytes, end_offset: int, out: Framed) -> None:
        had_nul = self._buf_had_nul
        if NUL in part:
            part = part.replace(NUL, b"")
            had_nul = True
        flushed = self._flushed
        truncated = self._skipping
        if self._buf or self._skipping:
            if not self._skipping:
                self._buf += part
            line = bytes(self._buf)
            self._buf.clear()
        else:
            line = part
        if len(line) > self.max_line_bytes:
            line = line[: self.max_line_bytes]
            truncated = True
        self._skipping = self._flushed = self._buf_had_nul = False
        self.consumed = end_offset
        if flushed or (had_nul and not line):
            return  # already emitted by flush_partial, or a line that was only NULs
        if truncated:
            out.truncated.add(len(out.lines))
        out.lines.append(line)
        out.end_offsets.append(end_offset)

    def _append_partial(self, last: bytes) -> None:
        if not last or self._skipping:
            return
        if NUL in last:
            last = last.replace(NUL, b"")
            self._buf_had_nul = True
        room = self.max_line_bytes - len(self._buf)
        if len(last) > room:
            self._buf += last[:room]
            self._skipping = True
        else:
            self._buf += last

    def _count_nul_runs(self, chunk: bytes, out: Framed) -> None:
        runs = len(NUL_RUN.findall(chunk))
        if self._in_nul_run and chunk.startswith(NUL):
            runs -= 1  # the run started in the previous chunk and was counted there
        self._in_nul_run = chunk.endswith(NUL)
        out.nul_runs += runs
        out.nul_bytes += chunk.count(NUL)


@dataclass(slots=True)
class ReaderCounters:
    lines_read: int = 0
    bytes_read: int = 0
    truncated_lines: int = 0
    nul_runs: int = 0
    nul_bytes: int = 0
    partial_flushes: int = 0


class FileReader:
    """One open file (one content generation, one `file_key`): reads chunks, frames lines."""

    def __init__(
        self,
        *,
        fd: int,
        path: str,
        file_key: str,
        inode: Inode,
        fingerprint: bytes,
        offset: int,
        max_line_bytes: int,
        fingerprint_bytes: int,
        fs: FsAccess | None = None,
    ) -> None:
        self.fd = fd
        self.path = path
        self.file_key = file_key
        self.inode = inode
        self.fingerprint = fingerprint
        self.fingerprint_bytes = fingerprint_bytes
        self.scan_offset = offset
        self.framer = LineFramer(max_line_bytes, offset)
        self.size = 0
        self.fs = fs  # None: direct calls (local filesystem); else guarded calls (network mount)
        self.counters = ReaderCounters()
        self.partial_since: float | None = None  # monotonic time the pending partial line was last extended

    @property
    def file_id(self) -> FileId:
        return FileId(self.inode.dev, self.inode.ino, self.fingerprint)

    @property
    def read_offset(self) -> int:
        return self.framer.consumed

    @property
    def at_eof(self) -> bool:
        return self.scan_offset >= self.size

    def stat_size(self) -> int:
        """fstat the open descriptor; returns (and remembers) the current size."""
        self.size = os.fstat(self.fd).st_size
        return self.size

    async def fstat(self) -> os.stat_result:
        """fstat the open descriptor (through the stall guard on a network mount: may raise Stalled)."""
        if self.fs is None:
            return os.fstat(self.fd)
        return await self.fs.fstat(self.fd, self.path)

    async def _pread(self, size: int, offset: int) -> bytes:
        if self.fs is None:
            return os.pread(self.fd, size, offset)
        return await self.fs.pread(self.fd, size, offset, self.path)

    async def fingerprint_changed(self) -> bool:
        """True when the file's first bytes no longer extend our fingerprint (content replaced).
        Grows the fingerprint while the file is shorter than fingerprint_bytes."""
        if len(self.fingerprint) >= self.fingerprint_bytes:
            head = await self._pread(len(self.fingerprint), 0)
            return head != self.fingerprint
        head = await self._pread(self.fingerprint_bytes, 0)
        if not head.startswith(self.fingerprint):
            return True
        self.fingerprint = head
        return False

    async def read_once(self, max_bytes: int, out: Framed) -> int:
        """Read up to `max_bytes` at scan_offset, framing lines into `out`. Returns bytes read (0: EOF)."""
        want = min(max_bytes, max(self.size - self.scan_offset, 0)) or max_bytes
        if self.fs is None:
            chunk = os.pread(self.fd, want, self.scan_offset)
        else:
            chunk = await self.fs.pread(self.fd, want, self.scan_offset, self.path)
        if not chunk:
            return 0
        before_lines = len(out.lines)
        before_truncated = len(out.truncated)
        before_nul = out.nul_runs
        self.framer.feed(chunk, self.scan_offset, out)
        self.scan_offset += len(chunk)
        if self.scan_offset > self.size:
            self.size = self.scan_offset
        counters = self.counters
        counters.bytes_read += len(chunk)
        counters.lines_read += len(out.lines) - before_lines
        counters.truncated_lines += len(out.truncated) - before_truncated
        counters.nul_runs += out.nul_runs - before_nul
        return len(chunk)

    def flush_partial(self, out: Framed) -> bool:
        if self.framer.flush_partial(out, self.scan_offset):
            self.counters.partial_flushes += 1
            self.counters.lines_read += 1
            self.partial_since = None
            return True
        return False

    def hand_over(self) -> int:
        """Give up the descriptor without closing it: the caller owns it now (copytruncate: the
        truncated file goes on as a new content generation, read by another reader). This reader
        reads nothing more through it, and closing it no longer closes the descriptor."""
        fd, self.fd = self.fd, -1
        return fd

    def continue_in(self, fd: int, path: str, st: os.stat_result) -> None:
        """Our content goes on in another file, already open as `fd` (copytruncate's copy, which
        starts with our bytes and holds at least our offset): read it from where we are, under the
        same key. Call after `hand_over`: the descriptor we had is someone else's."""
        assert self.fd < 0, "continue_in after hand_over: the old descriptor is owned elsewhere"
        self.fd = fd
        self.path = path
        self.inode = Inode.of(st)
        self.size = st.st_size

    def batch(self, framed: Framed) -> ReadBatch:
        return ReadBatch(self.file_key, self.path, framed.lines, framed.end_offsets, framed.truncated)

    def close(self) -> None:
        if self.fd >= 0:
            if self.fs is not None:
                self.fs.close_file(self.fd, self.path)  # never waits for a network mount's server
            else:
                try:
                    os.close(self.fd)
                except OSError:
                    pass
            self.fd = -1


class ReaderFactory:
    """Readers as the options say (line and fingerprint sizes), their calls through the stall guard
    when the file is on a guarded (network) mount."""

    def __init__(self, options: TailOptions, fs: FsAccess) -> None:
        self.options = options
        self.fs = fs

    def make(
        self, fd: int, path: str, st: os.stat_result, key: str, fingerprint: bytes, offset: int
    ) -> FileReader:
        reader = FileReader(
            fd=fd,
            path=path,
            file_key=key,
            inode=Inode.of(st),
            fingerprint=fingerprint,
            offset=offset,
            max_line_bytes=self.options.max_line_bytes,
            fingerprint_bytes=self.options.fingerprint_bytes,
            fs=self.fs if self.fs.guarded_mount(path) is not None else None,
        )
        reader.size = st.st_size
        return reader

    def new(self, fd: int, path: str, st: os.stat_result) -> FileReader:
        """A reader for a file not followed yet (no key, offset 0), with its fingerprint read now."""
        try:
            fingerprint = read_fingerprint(fd, self.options.fingerprint_bytes)
        except OSError:
            fingerprint = b""
        return self.make(fd, path, st, "", fingerprint, 0)
