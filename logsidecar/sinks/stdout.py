"""The stdout sink: records as JSON lines (machines), a coloured line each (people), or raw bodies.

Pretty lines are terminal-safe (control characters escaped, see `logsidecar.terminal`) and plain
under NO_COLOR. Raw bodies are written as they are: `raw` is for programs, not terminals.

Invariants:
- One write per batch: the batch is encoded into one buffer and written (and flushed) by a dedicated
  writer thread, so a slow reader of our stdout blocks that thread, never the event loop (signals,
  reading and parsing go on; the in-flight budget then pauses reading). Except when stdout is a pipe
  with room for the whole buffer (its reader keeps up, the usual case): then the write cannot block
  and is done on the loop, saving the two thread hand-offs per batch (a wake-up of the writer thread
  and a `call_soon_threadsafe` back), which were most of the stdout cost at low rates
  (benchmarks/tail_end_to_end.py). "Room" is the pipe's capacity (F_GETPIPE_SZ) minus what it holds
  (FIONREAD) minus two pages of slack for partly filled pipe buffers; we are the pipe's only writer
  (a second writer filling it between the check and the write would stall the loop until the reader
  reads, never lose or reorder data).
- A pipe on stdout is grown to PIPE_BYTES (F_SETPIPE_SZ; where the system allows it): at the
  default 64 KiB a reader gets at most 64 KiB per read, so a JSON batch (~1.3 MB for 1,100 combined
  lines) took ~20 write/read hand-offs, and at full throughput the writer thread spent most of the
  run blocked on the pipe while the in-flight budget stopped reading (benchmarks/footprint.py
  throughput row). The buffer is kernel memory, filled only while the reader lags.
- `send` returns only after the write and flush returned: that is delivery for stdout.
- Batches are written in the order `send` was called (an asyncio.Lock is FIFO).
- A closed stdout (EPIPE, e.g. `| head`) raises `OutputClosed`: the pipeline stops without
  acknowledging the batch, and the command exits quietly.
"""

from __future__ import annotations

import asyncio
import fcntl
import mmap
import os
import queue
import stat
import struct
import sys
import termios
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, BinaryIO

from logsidecar.record import LogRecord, encode_json_lines
from logsidecar.sinks.base import JsonLines, Sink
from logsidecar.terminal import colour_allowed, escape_controls


class StdoutFormat(StrEnum):
    JSON = "json"
    PRETTY = "pretty"
    RAW = "raw"
    AUTO = "auto"  # pretty on a terminal, json otherwise


class OutputClosed(Exception):
    """Our stdout was closed by its reader (broken pipe); nothing more can be delivered."""


def resolve_format(fmt: StdoutFormat, stream: BinaryIO) -> StdoutFormat:
    if fmt is not StdoutFormat.AUTO:
        return fmt
    try:
        return StdoutFormat.PRETTY if os.isatty(stream.fileno()) else StdoutFormat.JSON
    except (OSError, ValueError, AttributeError):
        return StdoutFormat.JSON


def encode_raw(records: Sequence[LogRecord]) -> bytes:
    if not records:
        return b""
    return ("\n".join([r.body for r in records]) + "\n").encode("utf-8", "backslashreplace")


# -- pretty -----------------------------------------------------------------------------------------

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_SEVERITY_COLOURS = (  # (lowest SeverityNumber, colour)
    (21, "\x1b[1;37;41m"),  # fatal: white on red
    (17, "\x1b[1;31m"),  # error: bold red
    (13, "\x1b[33m"),  # warn: yellow
    (9, "\x1b[32m"),  # info: green
    (5, "\x1b[36m"),  # debug: cyan
    (1, "\x1b[2;36m"),  # trace: dim cyan
)
_STATUS_COLOURS = {1: "\x1b[37m", 2: "\x1b[32m", 3: "\x1b[36m", 4: "\x1b[33m", 5: "\x1b[1;31m"}

# Attribute names the parsers use (OpenTelemetry semantic conventions; Apache-only under `apache.`).
_METHOD = "http.request.method"
_PATH = ("url.path", "url.original")
_QUERY = "url.query"
_STATUS = "http.response.status_code"
_CLIENT = ("client.address", "network.peer.address")
_SIZE = "http.response.body.size"
_DURATION_S = "http.server.request.duration"
_MODULE = ("apache.module",)
_MESSAGE = ("apache.message",)
_ERROR_CODE = ("apache.error.code",)


def _first(attributes: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def _severity_colour(number: int) -> str:
    for lowest, colour in _SEVERITY_COLOURS:
        if number >= lowest:
            return colour
    return _DIM


def _time_text(ts: datetime | None) -> str:
    if ts is None:
        return "--:--:--.---"
    return f"{ts:%H:%M:%S}.{ts.microsecond // 1000:03d}"


def format_pretty_line(record: LogRecord, *, colour: bool = True) -> str:
    """One readable line. Access: time, status, method, path?query, client, size, duration.
    Error (or anything without an HTTP status): time, level, module, message.
    Every value from the record is terminal-safe (`escape_controls`): it came from an HTTP client."""
    c = (lambda code: code) if colour else (lambda code: "")
    e = escape_controls
    attributes = record.attributes
    time_text = _time_text(record.timestamp or record.observed_timestamp)
    status = attributes.get(_STATUS)
    if status is not None:
        method = e(attributes.get(_METHOD) or "-")
        path = _first(attributes, _PATH) or "-"
        query = attributes.get(_QUERY)
        target = e(f"{path}?{query}" if query else path)
        client = e(_first(attributes, _CLIENT) or "-")
        size = attributes.get(_SIZE)
        duration = _duration_text(attributes)
        status_colour = _STATUS_COLOURS.get(int(status) // 100, "") if isinstance(status, int) else ""
        line = (
            f"{c(_DIM)}{time_text}{c(_RESET)} {c(status_colour)}{e(status):>3}{c(_RESET)} "
            f"{c(_BOLD)}{method:<7}{c(_RESET)} {target:<40} {c(_DIM)}{client:<15}{c(_RESET)} "
            f"{'-' if size is None else e(size):>8} {duration:>9}"
        )
    else:
        level = e((record.severity_text or "-").lower())
        module = _first(attributes, _MODULE)
        message = _first(attributes, _MESSAGE) or record.body
        code = _first(attributes, _ERROR_CODE)
        head = f"[{e(module)}] " if module else ""
        code_text = f"{e(code)}: " if code and not str(message).startswith(str(code)) else ""
        message = e(message)
        line = (
            f"{c(_DIM)}{time_text}{c(_RESET)} {c(_severity_colour(int(record.severity_number)))}"
            f"{level:<7}{c(_RESET)} {head}{code_text}{message}"
        )
    if attributes.get("logsidecar.parse_error"):
        line = f"{line} {c(_DIM)}(unparsed: {e(attributes['logsidecar.parse_error'])}){c(_RESET)}"
    return line.rstrip()


def _duration_text(attributes: dict[str, Any]) -> str:
    seconds = attributes.get(_DURATION_S)
    if not isinstance(seconds, int | float):
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds:.2f}s"


def encode_pretty(records: Sequence[LogRecord], *, colour: bool = True) -> bytes:
    if not records:
        return b""
    return ("\n".join([format_pretty_line(r, colour=colour) for r in records]) + "\n").encode(
        "utf-8", "backslashreplace"
    )


# -- the sink ---------------------------------------------------------------------------------------


PIPE_SLACK_BYTES = 2 * mmap.PAGESIZE  # a pipe buffer (page) may be partly filled at each end
# The capacity our stdout pipe is grown to: Linux's default /proc/sys/fs/pipe-max-size, the most an
# unprivileged process may ask for.
PIPE_BYTES = 1 << 20


def _pipe_fd(stream: BinaryIO) -> int | None:
    """The descriptor of `stream` when it is a pipe (FIFO), else None."""
    try:
        fd = stream.fileno()
        return fd if stat.S_ISFIFO(os.fstat(fd).st_mode) else None
    except (OSError, ValueError, AttributeError):
        return None


def grow_pipe(fd: int, size: int = PIPE_BYTES) -> int:
    """Grow pipe `fd` to hold `size` bytes (never shrink it); its capacity after. Where the system
    refuses (over pipe-max-size or the user's pipe quota, EPERM/EBUSY) the pipe stays as it was."""
    try:
        capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        if capacity < size:
            capacity = fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except OSError:
        try:
            return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        except OSError:
            return 0
    return capacity


def pipe_has_room(fd: int, size: int) -> bool:
    """A blocking write of `size` bytes to pipe `fd` returns at once (nothing else writes to it)."""
    try:
        capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        (queued,) = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))
    except OSError:
        return False
    return queued + size + PIPE_SLACK_BYTES <= capacity


class _WriterThread:
    """Writes buffers to a binary stream off the event loop, in order, and reports each completion.
    `write_now` writes on the caller's thread instead when that cannot block (a pipe with room)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self._pipe_fd = _pipe_fd(stream)
        if self._pipe_fd is not None:
            grow_pipe(self._pipe_fd)
        self._queue: queue.SimpleQueue[tuple[bytes, Callable[[BaseException | None], None]] | None] = (
            queue.SimpleQueue()
        )
        # Daemon: a reader that never reads again must not keep the process alive at exit.
        self._thread = threading.Thread(target=self._loop, name="logsidecar-stdout", daemon=True)
        self._thread.start()

    def submit(self, data: bytes, done: Callable[[BaseException | None], None]) -> None:
        self._queue.put((data, done))

    def write_now(self, data: bytes) -> tuple[bool, BaseException | None]:
        """(True, error or None) when `data` was written and flushed here; (False, None) when the
        write might block: then `submit` it. Only while no submitted write is pending (order)."""
        if self._pipe_fd is None or not pipe_has_room(self._pipe_fd, len(data)):
            return False, None
        try:
            self.stream.write(data)
            self.stream.flush()
        except Exception as exc:  # noqa: BLE001 - reported to the waiting send(), like the thread does
            return True, exc
        return True, None

    def close(self) -> None:
        self._queue.put(None)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            data, done = item
            try:
                self.stream.write(data)
                self.stream.flush()
            except BaseException as exc:  # noqa: BLE001 - reported to the waiting send()
                done(exc)
            else:
                done(None)


class StdoutSink(Sink):
    name = "stdout"

    def __init__(self, fmt: StdoutFormat = StdoutFormat.AUTO, stream: BinaryIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.format = resolve_format(fmt, self.stream)
        colour = colour_allowed()  # NO_COLOR
        encoders: dict[StdoutFormat, Callable[[Sequence[LogRecord]], bytes]] = {
            StdoutFormat.JSON: encode_json_lines,
            StdoutFormat.PRETTY: lambda records: encode_pretty(records, colour=colour),
            StdoutFormat.RAW: encode_raw,
        }
        self._encode = encoders[self.format]
        self.accepts_json_lines = self.format is StdoutFormat.JSON
        self._writer: _WriterThread | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def start(self) -> None:
        if self._writer is None:
            self._writer = _WriterThread(self.stream)

    async def send(self, records: Sequence[LogRecord]) -> None:
        await self._write(self._encode(records))

    async def send_json_lines(self, batch: JsonLines) -> None:
        await self._write(batch.data)

    async def _write(self, data: bytes) -> None:
        if self._closed:
            raise OutputClosed("stdout is closed")
        if not data:
            return
        if self._writer is None:
            await self.start()
        assert self._writer is not None
        async with self._lock:
            wrote, error = self._writer.write_now(data)
            if not wrote:
                loop = asyncio.get_running_loop()
                written: asyncio.Future[BaseException | None] = loop.create_future()

                def done(error: BaseException | None) -> None:
                    try:
                        loop.call_soon_threadsafe(_settle, written, error)
                    except RuntimeError:  # the loop is closed: nobody waits for this write any more
                        pass

                self._writer.submit(data, done)
                error = await written
        if error is None:
            return
        if isinstance(error, BrokenPipeError | ConnectionResetError) or (
            isinstance(error, OSError) and error.errno in (32, 104)
        ):
            self._closed = True
            raise OutputClosed("stdout was closed by its reader") from error
        raise error

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _settle(future: asyncio.Future[BaseException | None], error: BaseException | None) -> None:
    if not future.done():
        future.set_result(error)


def silence_stdout() -> None:
    """Our reader went away (OutputClosed): point fd 1 at /dev/null, so that the interpreter's final
    flush stays quiet instead of failing again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
