"""`EngineLogSource`: a container's stdout/stderr through the engine's log API, as the pipeline's source
(`logsidecar docker attach --engine-logs`), for servers that log to stdout (the official httpd image).

The Docker SDK's public API: `container.logs(stream=True, follow=True, timestamps=True, since=...)`.
Every line comes prefixed with the engine's timestamp of it (RFC 3339, nanoseconds, UTC): that prefix
is removed from the record's body and is the position. It is also the record's `timestamp` when the line
has no time of its own (a LogFormat without %t, a line that is not Apache's), flagged
`logsidecar.timestamp_source: engine` (stamp.py). What the sinks acknowledged is saved in the
state directory (`engine-logs/<container id>.json`, 0600): the timestamp of the last delivered line and
how many delivered lines carry exactly that timestamp. A restart asks the engine for the lines since
that timestamp and skips the ones already delivered, so a line is neither repeated nor lost when
several share one timestamp.

What this cannot guarantee (said in `docker attach --help` and the README):
- the engine keeps what its log driver keeps: with json-file's rotation (`max-size`/`max-file`) lines
  written and rotated away while nothing was reading are gone; a driver the engine cannot read back
  (syslog, fluentd ... without dual logging) gives nothing at all;
- `since` is the engine's clock: lines are found by their timestamps, so a container whose host clock
  steps back may be re-read or skip lines;
- stdout and stderr come interleaved in the engine's order; which stream a line came from is not kept;
- lines are the engine's: a line over 16 KiB is split by the engine into several.
The stream ends when the container stops (like `docker logs -f`): the run then ends, exit 0.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import threading
import time
from calendar import timegm
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logsidecar import events
from logsidecar.events import CheckpointError, FileError
from logsidecar.tail.options import ReadBatch, TailOptions
from logsidecar.tail.reader import Framed, LineFramer
from logsidecar.tail.stdin import STDIN_PATH, stream_stats

Emit = Callable[[ReadBatch], Awaitable[None]]

# How often the delivered position is written at most (and once more at the stop).
SAVE_INTERVAL_S = 1.0
# Chunks from the engine waiting for the pipeline: the stream thread blocks beyond (backpressure).
QUEUE_CHUNKS = 64
# Put on the queue when the stream thread reconnected (see `run`).
RECONNECTED = object()
# A reconnection after the engine closed the stream while the container still runs.
RECONNECT_DELAY_S = 0.5


def parse_engine_timestamp(stamp: bytes) -> int:
    """Nanoseconds since the epoch of the engine's RFC 3339 UTC timestamp (trailing zeros of the
    fraction trimmed: `2026-12-05T13:00:00.1234Z`). Raises ValueError for anything else."""
    text = stamp.decode("ascii")
    if not text.endswith("Z") or len(text) < 20 or text[10] != "T":
        raise ValueError(f"not an engine timestamp: {text!r}")
    whole, _, fraction = text[:-1].partition(".")
    seconds = timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    if fraction and not (fraction.isdigit() and len(fraction) <= 9):
        raise ValueError(f"not an engine timestamp: {text!r}")
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


@dataclass(frozen=True, slots=True)
class Position:
    """The last line (delivered, or read) by its engine timestamp, and how many lines up to it carry
    exactly that timestamp."""

    timestamp_ns: int = 0
    same: int = 0

    def after(self, timestamp_ns: int, same: int) -> bool:
        """Whether the line with this timestamp (the `same`-th with it) comes after the position."""
        return (timestamp_ns, same) > (self.timestamp_ns, self.same)


def load_position(path: Path | None) -> Position:
    if path is None:
        return Position()
    try:
        saved = json.loads(path.read_text())
        return Position(int(saved["timestamp_ns"]), int(saved["same"]))
    except FileNotFoundError:
        return Position()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        events.emit(
            CheckpointError(
                state_dir=str(path.parent),
                error=f"unreadable engine-log position {path.name} ({exc}); following from the "
                "container's first line",
            )
        )
        return Position()


def save_position(path: Path, position: Position, container: str) -> None:
    """Atomically (a temporary file, then rename), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    payload = {
        "container": container,
        "timestamp_ns": position.timestamp_ns,
        "same": position.same,
        "time": _rfc3339(position.timestamp_ns),
    }
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def position_file(state_dir: Path | None, container_id: str) -> Path | None:
    return None if state_dir is None else state_dir / "engine-logs" / f"{container_id}.json"


class EngineLogSource:
    """Follows `container` (a docker SDK Container) until it stops; implements the pipeline's `Source`.
    `state_dir` None: the position is kept in memory only (a restart follows from the first line)."""

    def __init__(self, container: Any, options: TailOptions, state_dir: Path | None) -> None:
        self.container = container
        self.options = options
        self.position_path = position_file(state_dir, container.id)
        self.delivered = load_position(self.position_path)
        self.read = self.delivered  # the last line handed to the pipeline (a reconnection resumes there)
        self.framer = LineFramer(options.max_line_bytes)
        self.read_offset = 0
        self.committed_offset = 0
        self.lines_read = 0
        self.ended = False
        # (end offset of a batch, the position of its last line), until acknowledged
        self._in_flight: collections.deque[tuple[int, Position]] = collections.deque()
        self._saved_at = 0.0
        self._saved = self.delivered
        self._stopping = threading.Event()
        self._stream: Any = None
        self._walk = Position()  # the last line of the current connection's stream, read or skipped
        # The resume point is in the key: `log.record.uid` (the key's hash and the line's offset in this
        # run's stream) stays unique across runs, and a replay from the same point gives the same uids.
        self.file_key = f"engine-logs:{container.id}@{self.delivered.timestamp_ns}.{self.delivered.same}"

    def input_patterns(self) -> tuple[str, ...]:
        return (STDIN_PATH,)

    # -- reading -------------------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | object | None] = asyncio.Queue(QUEUE_CHUNKS)
        reader = threading.Thread(
            target=self._pump, args=(loop, chunks), name="logsidecar-engine-logs", daemon=True
        )
        reader.start()
        while True:
            chunk = await chunks.get()
            if chunk is None:
                break
            framed = Framed()
            if chunk is RECONNECTED:
                # The engine sends again from `since`: a line cut by the reconnection ends here, and
                # the lines already read are recognised by counting from the new stream's start.
                self.framer.flush_partial(framed, self.read_offset)
                self.framer = LineFramer(self.options.max_line_bytes, self.read_offset)
                await self._emit(emit, framed)
                self._walk = Position()
                continue
            assert isinstance(chunk, bytes)
            self.framer.feed(chunk, self.read_offset, framed)
            self.read_offset += len(chunk)
            await self._emit(emit, framed)
        framed = Framed()
        if self.framer.flush_partial(framed, self.read_offset):
            await self._emit(emit, framed)
        self.ended = True

    def _pump(self, loop: asyncio.AbstractEventLoop, chunks: asyncio.Queue[bytes | object | None]) -> None:
        """The stream thread: the SDK's generator blocks. Reconnects while the container runs (the
        engine, or a client timeout, may end a quiet stream)."""

        def put(item: bytes | object | None) -> None:
            asyncio.run_coroutine_threadsafe(chunks.put(item), loop).result()

        try:
            while not self._stopping.is_set():
                # `since` is inclusive and a float of seconds: one second early, the rest is skipped.
                since = max(self.read.timestamp_ns / 1e9 - 1, 1.0) if self.read.timestamp_ns else None
                self._stream = self.container.logs(
                    stream=True, follow=True, timestamps=True, stdout=True, stderr=True, since=since
                )
                for chunk in self._stream:
                    if self._stopping.is_set():
                        break
                    put(chunk)
                if self._stopping.is_set() or not self._still_running():
                    break
                time.sleep(RECONNECT_DELAY_S)
                put(RECONNECTED)
        except Exception as exc:  # noqa: BLE001 - the engine went away: say it, end the run
            events.emit(
                FileError(
                    path=f"engine logs of {self.container.name}",
                    kind="engine_logs",
                    error=f"reading them from the engine failed: {exc}",
                )
            )
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                put(None)

    def _still_running(self) -> bool:
        try:
            self.container.reload()
        except Exception:  # noqa: BLE001 - gone or unreachable: the stream is over either way
            return False
        return bool(self.container.attrs.get("State", {}).get("Running"))

    async def _emit(self, emit: Emit, framed: Framed) -> None:
        lines: list[bytes] = []
        ends: list[int] = []
        positions: list[Position] = []
        truncated: set[int] = set()
        for index, line in enumerate(framed.lines):
            stamp, _, body = line.partition(b" ")
            try:
                timestamp_ns = parse_engine_timestamp(stamp)
            except ValueError:  # the rest of a line cut at --max-line-bytes: no timestamp of its own
                timestamp_ns, body = self._walk.timestamp_ns, line
            same = self._walk.same + 1 if timestamp_ns == self._walk.timestamp_ns else 1
            self._walk = Position(timestamp_ns, same)
            if not self.read.after(timestamp_ns, same):
                continue  # delivered before the restart, or read before a reconnection
            self.read = self._walk
            if index in framed.truncated:
                truncated.add(len(lines))
            lines.append(body)
            ends.append(framed.end_offsets[index])
            positions.append(self._walk)
        step = self.options.max_batch_lines
        for start in range(0, len(lines), step):
            stop = min(start + step, len(lines))
            batch = ReadBatch(
                self.file_key,
                STDIN_PATH,
                lines[start:stop],
                ends[start:stop],
                {i - start for i in truncated if start <= i < stop},
                [position.timestamp_ns for position in positions[start:stop]],
            )
            self.lines_read += len(batch.lines)
            self._in_flight.append((batch.end_offset, positions[stop - 1]))
            await emit(batch)

    # -- the pipeline's side -------------------------------------------------------------------------
    def acknowledge(self, file_key: str, offset: int) -> None:
        self.committed_offset = max(self.committed_offset, offset)
        while self._in_flight and self._in_flight[0][0] <= offset:
            self.delivered = self._in_flight.popleft()[1]
        if time.monotonic() - self._saved_at >= SAVE_INTERVAL_S:
            self._save()

    def _save(self) -> None:
        self._saved_at = time.monotonic()
        if self.position_path is None or self.delivered == self._saved:
            return
        try:
            save_position(self.position_path, self.delivered, self.container.name)
            self._saved = self.delivered
        except OSError as exc:
            events.emit(
                CheckpointError(
                    state_dir=str(self.position_path.parent), error=f"{self.position_path.name}: {exc}"
                )
            )

    async def drain(self, timeout_s: float) -> bool:
        """A followed stream has no end to read to: stop reading."""
        self._close_stream()
        return True

    async def stop(self) -> list[dict[str, Any]]:
        self._close_stream()
        self._save()
        if self.committed_offset >= self.read_offset or self.ended and not self._in_flight:
            return []
        return [
            {
                "path": f"engine logs of {self.container.name}",
                "file_key": self.file_key,
                "from_offset": None,
                "from_time": _rfc3339(self.delivered.timestamp_ns),
                "undelivered_bytes": self.read_offset - self.committed_offset,
                "undelivered_lines": None,
                "unread_bytes": 0,
                "unread_lines": 0,
            }
        ]

    def _close_stream(self) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):  # already closed by the engine
                stream.close()

    def waiting_patterns(self) -> dict[str, str]:
        return {}

    def stats(self) -> dict[str, object]:
        return stream_stats(self, ended=self.ended, watcher="engine-logs")


def _rfc3339(timestamp_ns: int) -> str:
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
