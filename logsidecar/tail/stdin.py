"""`StdinSource`: standard input as the pipeline's source (`logsidecar tail -`).

For servers that log to their stdout (`docker logs -f web 2>&1 | logsidecar tail -`). Lines are framed
as the tailer frames a file (`LineFramer`: `max_line_bytes`, NUL runs, a last line without its newline
emitted after `partial_line_flush_s`, or at EOF), under the path `-`.

No checkpoint: a pipe cannot be re-read, so nothing is written to the state directory and a restart
starts from whatever the writer sends next. What was read but not delivered when the process stops is
lost (said in the last log line, like the tailer's leftovers). EOF ends `run`: the pipeline delivers
what is in flight and the command exits 0.

A pipe, a socket or a terminal is read through the event loop (`connect_read_pipe`); a regular file
redirected in (`< access.log`) never blocks, so it is read directly.
"""

from __future__ import annotations

import asyncio
import collections
import os
import stat
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from logsidecar.tail.options import ReadBatch, TailOptions
from logsidecar.tail.reader import Framed, LineFramer

#: The path and input pattern that name standard input (records' log.file.path, metrics' input).
STDIN_PATH = "-"
STDIN_KEY = "stdin"

Emit = Callable[[ReadBatch], Awaitable[None]]


class StdinSource:
    """Reads fd `fd` (0) to EOF; implements the pipeline's `Source`."""

    def __init__(self, options: TailOptions, fd: int = 0) -> None:
        self.options = options
        self.fd = fd
        self.framer = LineFramer(options.max_line_bytes)
        self.read_offset = 0
        self.committed_offset = 0  # what the sinks acknowledged: bytes_behind for health and metrics
        self.lines_read = 0
        self.lines_acknowledged = 0
        self._in_flight: collections.deque[tuple[int, int]] = collections.deque()  # (end offset, lines)
        self.eof = False
        # One key per run: `log.record.uid` (the key's hash and the line's offset) must not repeat
        # across runs, and a pipe's offsets start at 0 every time.
        self.file_key = f"{STDIN_KEY}:{time.time_ns()}"
        self._stopping = asyncio.Event()

    def input_patterns(self) -> tuple[str, ...]:
        return (STDIN_PATH,)

    async def run(self, emit: Emit) -> None:
        """Read until EOF or `stop()`/`drain()`; awaits `emit(batch)` for each batch of lines."""
        read = await self._reader()
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                timeout = self.options.partial_line_flush_s if self.framer.has_partial else None
                chunk_task = asyncio.ensure_future(read())
                done, _ = await asyncio.wait(
                    {chunk_task, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if chunk_task not in done:
                    chunk_task.cancel()
                    if stopping in done:
                        break
                    await self._flush_partial(emit)  # the writer paused mid-line long enough
                    continue
                chunk = chunk_task.result()
                if not chunk:
                    self.eof = True
                    break
                framed = Framed()
                self.framer.feed(chunk, self.read_offset, framed)
                self.read_offset += len(chunk)
                await self._emit(emit, framed)
            await self._flush_partial(emit)
        finally:
            stopping.cancel()

    async def _reader(self) -> Callable[[], Awaitable[bytes]]:
        chunk_bytes = self.options.read_chunk_bytes
        if stat.S_ISREG(os.fstat(self.fd).st_mode):

            async def read_file() -> bytes:
                await asyncio.sleep(0)  # a large file must not starve the sinks' tasks
                return os.read(self.fd, chunk_bytes)

            return read_file
        reader = asyncio.StreamReader(limit=chunk_bytes)
        pipe = os.fdopen(self.fd, "rb", buffering=0, closefd=False)
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)

        async def read_pipe() -> bytes:
            return await reader.read(chunk_bytes)

        return read_pipe

    async def _flush_partial(self, emit: Emit) -> None:
        framed = Framed()
        if self.framer.flush_partial(framed, self.read_offset):
            await self._emit(emit, framed)

    async def _emit(self, emit: Emit, framed: Framed) -> None:
        step = self.options.max_batch_lines
        for start in range(0, len(framed.lines), step):
            stop = start + step
            truncated = {i - start for i in framed.truncated if start <= i < stop}
            batch = ReadBatch(
                self.file_key, STDIN_PATH, framed.lines[start:stop], framed.end_offsets[start:stop], truncated
            )
            self.lines_read += len(batch.lines)
            self._in_flight.append((batch.end_offset, len(batch.lines)))
            await emit(batch)

    def acknowledge(self, file_key: str, offset: int) -> None:
        """Nothing is written (no checkpoint for a pipe); the offset only measures what is behind."""
        self.committed_offset = max(self.committed_offset, offset)
        while self._in_flight and self._in_flight[0][0] <= offset:
            self.lines_acknowledged += self._in_flight.popleft()[1]

    async def drain(self, timeout_s: float) -> bool:
        """Stop reading: a pipe has no end to read to until its writer closes it."""
        self._stopping.set()
        return True

    async def stop(self) -> list[dict[str, Any]]:
        self._stopping.set()
        if self.committed_offset >= self.read_offset:
            return []
        return [
            {
                "path": STDIN_PATH,
                "file_key": self.file_key,
                "from_offset": None,  # no checkpoint: a restart cannot read these lines again
                "undelivered_bytes": self.read_offset - self.committed_offset,
                "undelivered_lines": self.lines_read - self.lines_acknowledged,
                "unread_bytes": 0,
                "unread_lines": 0,
            }
        ]

    def waiting_patterns(self) -> dict[str, str]:
        return {}

    def stats(self) -> dict[str, object]:
        """The tailer's shape (`Tailer.stats`), with standard input as its one file."""
        return stream_stats(self, ended=self.eof, watcher="stdin")


class _StreamPosition(Protocol):
    file_key: str
    read_offset: int
    committed_offset: int
    lines_read: int


def stream_stats(stream: _StreamPosition, *, ended: bool, watcher: str) -> dict[str, object]:
    """`Tailer.stats`'s shape for a source that is one stream (standard input, a container's engine
    logs): its one "file" is `-`, held as "deleted" once ended until what was read is delivered."""
    return {
        "files": [
            {
                "path": STDIN_PATH,
                "file_key": stream.file_key,
                "read_offset": stream.read_offset,
                "committed_offset": stream.committed_offset,
                "size": stream.read_offset,
                "bytes_behind": stream.read_offset - stream.committed_offset,
                "state": "deleted" if ended else "active",
                "lines_read": stream.lines_read,
            }
        ],
        "counters": {"lines_read": stream.lines_read, "bytes_read": stream.read_offset},
        "watcher": watcher,
    }
