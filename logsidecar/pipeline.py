"""The pipeline: tailer → per-file parser → every sink → acknowledgements → checkpoints.

One asyncio task reads (the tailer's `run`); each batch it emits is parsed right there (one parser
per file), stamped, and put on the lane of every sink. A lane (`_Lane`) is a queue and 1..n workers
that send to one sink, merging consecutive batches when the sink asks for bigger ones (the OTLP sink
does: `batch_timeout_s`, `max_batch_records`). When every sink has settled a batch (delivered, or
rejected for good: `BatchRejected`, reported with the files and offsets of the rejected lines), it is
acknowledged to the tailer in file order
(`acks.AckTracker`), and only acknowledged offsets ever reach a checkpoint.

Invariants:
- Bounded memory: at most `max_in_flight_batches` batches and (beyond the first) `max_in_flight_lines`
  lines are parsed and not yet settled. When the budget is spent, `emit` does not return, so the
  tailer stops reading: the log files are the buffer, nothing is dropped.
- A batch is acknowledged only after every sink settled it, and per file in the order read; a batch
  that failed or was abandoned at shutdown is never acknowledged (it is read again after a restart).
- A lane sends its next batch only once the acknowledgements its last one released are durable
  (the tailer commits them at once, `Tailer.acknowledge`): a kill -9 replays at most the batches in
  flight, sent and not yet acknowledged. It checks before the send, not after the settle, so the
  usual case (the commit ended long before the next batch) costs no wake-up.
- Per-record work is a handful of dict stores: no per-record awaits, queue operations or hashing;
  per batch: one queue put per sink, no task creation.
- Shutdown (`request_stop`, e.g. on SIGTERM) within `drain_timeout_s`, which covers reading, delivery
  and the final commit: the source reads every followed file to its end (`Source.drain`; batches are
  still taken), what was sent settles, the tailer commits the acknowledged offsets. Reading and
  delivery end COMMIT_RESERVE_S before the deadline, so the commit fits in it too. What is left then
  is abandoned (never acknowledged), and the last event, STOPPED, names it per file: where a restart
  resumes, bytes and lines read but not delivered, bytes and lines not read. Closing the sinks
  afterwards takes at most SINK_CLOSE_GRACE_S. A reload (`request_stop(drain=False)`) does not read
  ahead: in-flight batches settle and the next pipeline resumes from the acknowledged offsets.

Stamped on every record (see `stamp.py`): `position`, `log.file.path`, `log.file.name`, `log.record.uid`
(stable and unique per line: BLAKE2b of the file identity plus the line's end offset, so a backend can
drop the duplicates of a replay after a crash), `logsidecar.truncated` and the shared `resource`.

Encoded batches instead of records: when the only sink takes them pre-encoded (`accepts_json_lines`:
stdout in JSON; `accepts_otlp_records`: OTLP), a batch travels as its encoding (`JsonLines`,
`OtlpLogRecords`), and a file whose parser can write that encoding directly (access logs,
`parse/direct.py`) is parsed straight into it, byte-for-byte what parsing, stamping and encoding
would give: no LogRecord is built for the common line. Several sinks (stdout and OTLP, or derived
metrics) take records, built once and shared.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fnmatch
import gc
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any, Protocol

from logsidecar import events
from logsidecar.acks import AckTicket, AckTracker
from logsidecar.events import Event
from logsidecar.fastpath import JSON_LINES, OTLP_RECORDS, writer_for
from logsidecar.parse import build_parser
from logsidecar.parse.base import Parser
from logsidecar.record import INVALID_UTF8, PARSE_ERROR, LogRecord, decode_text, encode_json_lines, utcnow
from logsidecar.sinks.base import BatchRejected, JsonLines, OtlpLogRecords, Payload, RejectedRange, Sink
from logsidecar.sinks.otlp_encode import encode_otlp_records
from logsidecar.stamp import BatchStamp, uid_prefix
from logsidecar.tail.options import ReadBatch


class Source(Protocol):
    """What the pipeline needs from the tailer (`logsidecar.tail.tailer.Tailer` is one)."""

    async def run(self, emit: Callable[[ReadBatch], Awaitable[None]]) -> None: ...

    def acknowledge(self, file_key: str, offset: int) -> concurrent.futures.Future[Any] | None:
        """Records up to `offset` are delivered. May return a future done once that is durable."""

    async def drain(self, timeout_s: float) -> bool:
        """Read everything there is, then end `run`; False when `timeout_s` ran out first."""
        ...

    async def stop(self) -> list[dict[str, Any]] | None:
        """Stop reading and commit; may return what is left unacknowledged, per file (see Tailer)."""
        ...

    def stats(self) -> dict[str, Any]: ...


class PipelineObserver(Protocol):
    """Optional per-batch observations (`telemetry.Metrics` is one). Called once per batch, never
    per record; `parsed + unparsed == lines`, `bytes` are the line bytes read."""

    def observe_batch(
        self, path: str, fmt: str, lines: int, bytes: int, parsed: int, unparsed: int
    ) -> None: ...  # noqa: A002

    def observe_delivery(self, sink: str, records: int, latency_s: float) -> None: ...


@dataclass(frozen=True, slots=True)
class FormatRule:
    """`--format GLOB=SPEC`: files whose path or name matches `pattern` are parsed with `spec`.
    `pattern` None matches every file (a plain `--format SPEC`)."""

    pattern: str | None
    spec: str

    def matches(self, path: str) -> bool:
        if self.pattern is None:
            return True
        return fnmatch.fnmatchcase(path, self.pattern) or fnmatch.fnmatchcase(
            os.path.basename(path), self.pattern
        )


def parse_format_rule(text: str) -> FormatRule:
    """`GLOB=SPEC` or a plain `SPEC`. A spec may itself contain `=` (inside a LogFormat), so the text is
    a rule only when what precedes the first `=` looks like a glob: no `:` and no `%`."""
    head, sep, tail = text.partition("=")
    if sep and head.strip() and ":" not in head and "%" not in head:
        return FormatRule(head.strip(), tail.strip())
    return FormatRule(None, text.strip())


def validate_format_rules(rules: Sequence[FormatRule], *, timezone: tzinfo = UTC) -> None:
    """Build each spec once so a bad directive fails at start-up (raises parse.FormatError)."""
    for rule in rules:
        build_parser(rule.spec, timezone=timezone)


class _FileState:
    """What the pipeline keeps per file identity: its parser (they may be stateful) and uid prefix.
    `parser` is None when it could not be built (`parser_error` says why): lines then go out raw."""

    __slots__ = ("parser", "parser_error", "uid_prefix")

    def __init__(self, parser: Parser | None, uid_prefix: str, parser_error: str = "") -> None:
        self.parser = parser
        self.parser_error = parser_error
        self.uid_prefix = uid_prefix


class ParserSelector:
    """One parser per file identity, chosen by the first matching rule (default: `default_spec`).
    Remembers at most `max_files` files, least recently used first out: rotated files come and go."""

    def __init__(
        self,
        rules: Sequence[FormatRule] = (),
        *,
        default_spec: str = "auto",
        timezone: tzinfo = UTC,
        max_files: int = 1024,
    ) -> None:
        self.rules = tuple(rules)
        self.default_spec = default_spec
        self.timezone = timezone
        self.max_files = max_files
        self._files: OrderedDict[str, _FileState] = OrderedDict()

    def spec_for(self, path: str) -> str:
        for rule in self.rules:
            if rule.matches(path):
                return rule.spec
        return self.default_spec

    def state_for(self, file_key: str, path: str) -> _FileState:
        state = self._files.get(file_key)
        if state is not None:
            self._files.move_to_end(file_key)
            return state
        spec = self.spec_for(path)
        try:
            state = _FileState(build_parser(spec, timezone=self.timezone, path=path), uid_prefix(file_key))
        except Exception as exc:  # noqa: BLE001 - specs were validated at start-up; never lose lines
            state = _FileState(None, uid_prefix(file_key), f"cannot build parser {spec!r}: {exc!r}")
        self._files[file_key] = state
        if len(self._files) > self.max_files:
            self._files.popitem(last=False)
        return state


class _InFlight:
    """One batch between `emit` and its acknowledgement: settled once every sink settled it.
    Its payload is its records or (a pipeline whose only sink takes them so) their encoding, one
    per line; `path`, `start_offset` and `end_offsets` locate the lines (to report rejected ones)."""

    __slots__ = ("ticket", "payload", "count", "unsettled_sinks", "path", "start_offset", "end_offsets")

    def __init__(self, ticket: AckTicket, payload: Payload, sinks: int, batch: ReadBatch) -> None:
        self.ticket = ticket
        self.payload = payload
        self.count = _count(payload)
        self.unsettled_sinks = sinks
        self.path = batch.path
        self.end_offsets = batch.end_offsets
        # Where the first line begins: its end, less the line and (unless cut) its newline.
        newline = 0 if 0 in batch.truncated else 1
        self.start_offset = max(batch.end_offsets[0] - len(batch.lines[0]) - newline, 0)

    def line_start(self, index: int) -> int:
        return self.start_offset if index == 0 else self.end_offsets[index - 1]


class _Lane:
    """The way to one sink: a queue of in-flight batches and `concurrency` workers sending them.

    A sink may ask (attributes, all optional) to receive bigger batches than the tailer reads:
    `batch_timeout_s` (how long a first batch may wait for more) and `max_batch_records` (stop
    merging at this many records); and for concurrent sends: `max_concurrent_sends` (default 1,
    which also keeps batches in order, as stdout needs). The queue needs no bound of its own: the
    pipeline's in-flight budget bounds every lane."""

    def __init__(self, pipeline: Pipeline, sink: Sink) -> None:
        self.pipeline = pipeline
        self.sink = sink
        self.linger_s = float(getattr(sink, "batch_timeout_s", 0.0) or 0.0)
        self.max_records = int(getattr(sink, "max_batch_records", 0) or 0)
        self.concurrency = max(1, int(getattr(sink, "max_concurrent_sends", 1) or 1))
        self.queue: asyncio.Queue[_InFlight] = asyncio.Queue()

    async def work(self) -> None:
        carried: _InFlight | None = None
        committing: concurrent.futures.Future[Any] | None = None
        while True:
            group, carried = await self._next_group(carried)
            try:
                if committing is not None and not committing.done():
                    # Send nothing before the acknowledgements of the last send are in storage: what
                    # a kill -9 replays is then at most what is in flight. (Usually done by now.)
                    await asyncio.wrap_future(committing)
                committing = None
                await self.pipeline._send(self.sink, group)
                for item in group:
                    if (durable := self.pipeline._settle(item)) is not None:
                        committing = durable
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - a sink (or the ack path) failing for good stops the pipeline
                self.pipeline._fail(exc)
                return

    async def _next_group(self, carried: _InFlight | None) -> tuple[list[_InFlight], _InFlight | None]:
        """The next batches to send as one, and a batch taken that would have made the group bigger
        than `max_records` (it starts this worker's next group: a request is never split into a
        full one and a runt)."""
        first = carried if carried is not None else await self.queue.get()
        group = [first]
        if self.linger_s <= 0:
            return group, None
        count = first.count
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger_s
        while not self.max_records or count < self.max_records:
            if self.queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0 or self.pipeline._stop_requested.is_set():
                    break  # (when stopping, nothing waits for a fuller batch)
                try:
                    # Queue.get is cancellation-safe: a timed-out get leaves the item queued.
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                item = self.queue.get_nowait()
            if self.max_records and count + item.count > self.max_records:
                return group, item
            group.append(item)
            count += item.count
        return group, None


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    resource: Mapping[str, Any]
    max_in_flight_batches: int = 8
    max_in_flight_lines: int = 6144
    # On stop: reading every file to its end, delivering and committing, at most this long. Below
    # Docker's 10 s stop timeout, with room for SINK_CLOSE_GRACE_S.
    drain_timeout_s: float = 8.0
    # Tune the cyclic GC for this process when `run` starts (see `tune_gc`).
    tune_gc: bool = True


class Pipeline:
    def __init__(
        self,
        source: Source,
        sinks: Sequence[Sink],
        parsers: ParserSelector,
        options: PipelineOptions,
        observer: PipelineObserver | None = None,
    ) -> None:
        if not sinks:
            raise ValueError("a pipeline needs at least one sink")
        self.source = source
        self.sinks = tuple(sinks)
        self.parsers = parsers
        self.options = options
        self.observer = observer
        # One dict shared by every record: sinks must treat it as read-only.
        self._resource: dict[str, Any] = dict(options.resource)
        # Batches travel encoded, never as records, when the only sink takes them so.
        only = self.sinks[0] if len(self.sinks) == 1 else None
        self._encoding = (
            _JSON_LINES if only is not None and only.accepts_json_lines
            else _OTLP_RECORDS if only is not None and only.accepts_otlp_records
            else None
        )  # fmt: skip
        self._acks = AckTracker()
        self._emitted_at: dict[AckTicket, float] = {}  # in-flight batches, oldest first
        self._lanes = [_Lane(self, sink) for sink in self.sinks]
        self._workers: list[asyncio.Task[None]] = []
        self._in_flight_batches = 0
        self._in_flight_lines = 0
        self._space = asyncio.Event()  # set whenever the in-flight budget shrinks
        self._idle = asyncio.Event()  # set while nothing is in flight
        self._idle.set()
        self._stop_requested = asyncio.Event()
        self._drain_on_stop = False
        self._closing = False
        self._drained = asyncio.Event()  # set when shutdown no longer waits for in-flight batches
        self._fatal: BaseException | None = None
        # counters
        self.lines_in = 0
        self.batches_in = 0
        self.acknowledgements = 0
        self.sent: dict[str, int] = {sink.name: 0 for sink in self.sinks}
        self.rejected: dict[str, int] = {sink.name: 0 for sink in self.sinks}
        self.abandoned_batches = 0
        self.left: list[dict[str, Any]] = []  # after a stop: what was not delivered, per file
        self.deadline: float | None = None  # after a stop: its --drain-timeout, as time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the source ends, `request_stop` is called, or a sink fails for good (re-raised)."""
        if self.options.tune_gc:
            tune_gc()
        for sink in self.sinks:
            await sink.start()
        self._workers = [
            asyncio.create_task(lane.work(), name=f"logsidecar-{lane.sink.name}-{index}")
            for lane in self._lanes
            for index in range(lane.concurrency)
        ]
        events.emit(Event.STARTED, sinks=[s.name for s in self.sinks])
        source_task = asyncio.create_task(self.source.run(self.emit), name="logsidecar-source")
        stop_task = asyncio.create_task(self._stop_requested.wait(), name="logsidecar-stop")
        try:
            # A lane worker only ends by failing: that stops the pipeline as well.
            await asyncio.wait({source_task, stop_task, *self._workers}, return_when=asyncio.FIRST_COMPLETED)
            for worker in self._workers:
                if worker.done() and not worker.cancelled() and worker.exception() is not None:
                    self._fail(worker.exception())  # type: ignore[arg-type]
        finally:
            stop_task.cancel()
            await self._shutdown(source_task)
        if self._fatal is not None:
            raise self._fatal
        if source_task.done() and not source_task.cancelled() and source_task.exception() is not None:
            raise source_task.exception()  # type: ignore[misc]

    def request_stop(self, *, drain: bool = True) -> None:
        """Begin a graceful shutdown; safe to call from a signal handler and more than once. `drain`:
        read every followed file to its end first (SIGTERM); a reload passes False (its successor
        resumes from the acknowledged offsets). Any request with drain=True makes the stop drain."""
        self._drain_on_stop |= drain
        self._stop_requested.set()

    async def _shutdown(self, source_task: asyncio.Task[None]) -> None:
        timeout = self.options.drain_timeout_s
        deadline = self.deadline = time.monotonic() + timeout
        deliver_by = deadline - min(COMMIT_RESERVE_S, timeout / 2)
        drain = self._drain_on_stop and self._fatal is None and not source_task.done()
        events.emit(
            Event.STOPPING,
            in_flight_batches=self._in_flight_batches,
            drain=drain,
            drain_timeout_s=timeout,
        )
        # 1. Read every followed file to its end; batches are still taken and sent meanwhile.
        read_all = not drain or await self.source.drain(deliver_by - time.monotonic())
        self._closing = True
        # 2. Let what was sent settle, so its acknowledgements reach the final checkpoint.
        if self._fatal is None:
            try:
                await asyncio.wait_for(self._idle.wait(), max(deliver_by - time.monotonic(), 0.0))
            except TimeoutError:
                pass
        delivered = self._idle.is_set()
        # 3. Abandon what did not settle: never acknowledged, so it is read again after a restart.
        # (A batch the tailer is still offering goes back unaccepted: `emit` returns.)
        self._drained.set()
        self._space.set()
        self.abandoned_batches = self._in_flight_batches
        for worker in self._workers:
            worker.cancel()
        if self._workers:
            await asyncio.wait(self._workers)
        # 4. The tailer commits the acknowledged offsets and says what is left after them; its run() ends.
        self.left = list(await self.source.stop() or [])
        if not source_task.done():
            try:
                await asyncio.wait_for(asyncio.shield(source_task), max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                source_task.cancel()
        if not source_task.done():
            await asyncio.wait({source_task})
        # 5. Close the sinks (a collector that is down must not hold the exit).
        close_by = max(deadline, time.monotonic()) + SINK_CLOSE_GRACE_S
        for sink in self.sinks:
            try:
                await asyncio.wait_for(sink.close(), max(close_by - time.monotonic(), 0.0))
            except TimeoutError:
                pass
            except Exception as exc:  # noqa: BLE001 - a failing close must not hide the checkpoints
                events.emit(Event.STOPPING, sink=sink.name, reason=f"close failed: {exc!r}")
        # The last line of our own log: what this stop could not deliver, and where it starts.
        complete = read_all and delivered and not self.left
        stopped: dict[str, Any] = {**self.stats(), "drained": complete}
        if self.left:
            stopped["lines_left"] = _lines_left(self.left)
            stopped["left"] = self.left
            if drain:
                stopped["level"] = "warning"
                stopped["reason"] = (
                    f"--drain-timeout ({timeout:g}s) passed before every line was read and delivered"
                    if not (read_all and delivered)
                    else "lines written after the files were read to their end"
                )
        events.emit(Event.STOPPED, **stopped)

    # -- reading side: called by the tailer -----------------------------------------------------------

    async def emit(self, batch: ReadBatch) -> None:
        """Accept one batch from the tailer. Returns once the batch is in flight; waits (backpressure)
        while the in-flight budget is spent. After shutdown began, batches are not taken (they stay
        unacknowledged and are read again after a restart)."""
        if self._closing:
            await self._drained.wait()
            return
        count = len(batch.lines)
        if not count:
            return
        await self._reserve(count)
        if self._closing:
            self._release(count)
            await self._drained.wait()
            return
        try:
            records = self._parse(batch)
        except BaseException:
            self._release(count)
            raise
        self.lines_in += count
        self.batches_in += 1
        ticket = self._acks.register(batch.file_key, batch.end_offsets[-1])
        self._emitted_at[ticket] = time.monotonic()
        item = _InFlight(ticket, records, len(self._lanes), batch)
        for lane in self._lanes:
            lane.queue.put_nowait(item)

    def _parse(self, batch: ReadBatch) -> Payload:
        state = self.parsers.state_for(batch.file_key, batch.path)
        stamp = BatchStamp(
            batch.file_key, batch.path, state.uid_prefix, batch.end_offsets, batch.truncated, self._resource
        )
        encoding = self._encoding
        direct = writer_for(state.parser, encoding) if encoding is not None else None
        if direct is not None:
            try:
                encoded, unparsed = direct(batch.lines, stamp)
            except Exception:  # noqa: BLE001 - a parser bug must not lose lines: take the record path
                pass
            else:
                self._observe(batch, state, len(batch.lines), unparsed)
                return self._payload(encoded, len(batch.lines))
        try:
            if state.parser is None:
                raise RuntimeError(state.parser_error)
            records = state.parser.parse(batch.lines)
            if len(records) != len(batch.lines):
                raise RuntimeError(f"parser returned {len(records)} records for {len(batch.lines)} lines")
        except Exception as exc:  # noqa: BLE001 - a parser bug must not lose lines: forward them raw
            reason = state.parser_error if state.parser is None else f"parser failed: {exc!r}"
            records = _raw_records(batch.lines, reason=reason)
        stamp.apply(records)
        if self.observer is not None:
            self._observe(batch, state, len(records), sum(1 for r in records if PARSE_ERROR in r.attributes))
        if encoding is None or any(r.resource is not self._resource for r in records):
            return records  # (a record with a resource of its own travels as a record)
        encode = encode_json_lines if encoding == _JSON_LINES else encode_otlp_records
        try:
            return self._payload(encode(records), len(records))
        except Exception as exc:  # noqa: BLE001 - odd content an encoder refuses: forward the lines raw
            records = _raw_records(batch.lines, reason=f"cannot encode the parsed record: {exc!r}")
            stamp.apply(records)
            return self._payload(encode(records), len(records))

    def _payload(self, encoded: Any, count: int) -> Payload:
        if self._encoding == _JSON_LINES:
            return JsonLines(encoded, count)
        return OtlpLogRecords(encoded, self._resource)

    def _observe(self, batch: ReadBatch, state: _FileState, lines: int, unparsed: int) -> None:
        if self.observer is None:
            return
        fmt = state.parser.format_name if state.parser is not None else "raw"
        self.observer.observe_batch(
            batch.path, fmt, lines, sum(map(len, batch.lines)), lines - unparsed, unparsed
        )

    # -- budget ---------------------------------------------------------------------------------------

    async def _reserve(self, lines: int) -> None:
        options = self.options
        # A batch larger than the whole budget still goes through, alone. At a stop's deadline the
        # wait ends (`_drained`): the caller then gives the batch back.
        while (
            self._in_flight_batches
            and not self._drained.is_set()
            and (
                self._in_flight_batches >= options.max_in_flight_batches
                or self._in_flight_lines + lines > options.max_in_flight_lines
            )
        ):
            self._space.clear()
            await self._space.wait()
        self._in_flight_batches += 1
        self._in_flight_lines += lines
        self._idle.clear()

    def _release(self, lines: int) -> None:
        self._in_flight_batches -= 1
        self._in_flight_lines -= lines
        self._space.set()
        if not self._in_flight_batches:
            self._idle.set()

    # -- sending side -----------------------------------------------------------------------------------

    def _settle(self, item: _InFlight) -> concurrent.futures.Future[Any] | None:
        """One sink settled `item`; when it was the last one, acknowledge in file order. Returns the
        future of that acknowledgement's commit (None: nothing to wait for)."""
        item.unsettled_sinks -= 1
        if item.unsettled_sinks:
            return None
        ticket = item.ticket
        del self._emitted_at[ticket]
        offset = self._acks.settle(ticket)
        durable = None
        if offset is not None:
            durable = self.source.acknowledge(ticket.file_key, offset)
            self.acknowledgements += 1
        self._release(item.count)
        return durable

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self.request_stop()

    async def _send(self, sink: Sink, group: Sequence[_InFlight]) -> None:
        started = time.monotonic()
        payload = _merged([item.payload for item in group])
        count = _count(payload)
        try:
            if isinstance(payload, JsonLines):
                await sink.send_json_lines(payload)
            elif isinstance(payload, OtlpLogRecords):
                await sink.send_otlp_records(payload)
            else:
                await sink.send(payload)
        except BatchRejected as rejected:
            self.rejected[sink.name] += rejected.rejected
            self._report_rejected(sink, group, count, rejected)
            count -= rejected.rejected
            if not count:
                return
        self.sent[sink.name] += count
        if self.observer is not None:
            self.observer.observe_delivery(sink.name, count, time.monotonic() - started)

    def _report_rejected(
        self, sink: Sink, group: Sequence[_InFlight], count: int, rejected: BatchRejected
    ) -> None:
        """One event per rejection: the records a sink will never deliver, and where their lines are
        (file, first and last offset), so they can be found and sent again by hand."""
        ranges = rejected.ranges or (RejectedRange(0, count, rejected.rejected, rejected.reason),)
        for part in ranges:
            events.emit(
                Event.SINK_PARTIAL_SUCCESS if part.partial else Event.SINK_REJECTED,
                sink=sink.name,
                reason=part.reason,
                rejected=part.rejected,
                records=part.stop - part.start,
                files=_files_of(group, part.start, part.stop),
            )

    def queue_depth(self) -> int:
        """Lines parsed and not yet settled by every sink (for the live gauges)."""
        return self._in_flight_lines

    def oldest_undelivered_age_s(self) -> float | None:
        """Age of the oldest batch still in flight, None when nothing is (for the live gauges)."""
        for emitted_at in self._emitted_at.values():
            return time.monotonic() - emitted_at
        return None

    def stats(self) -> dict[str, Any]:
        return {
            "lines_in": self.lines_in,
            "batches_in": self.batches_in,
            "acknowledgements": self.acknowledgements,
            "in_flight_batches": self._in_flight_batches,
            "in_flight_lines": self._in_flight_lines,
            "abandoned_batches": self.abandoned_batches,
            "sent": dict(self.sent),
            "rejected": dict(self.rejected),
        }


# The part of --drain-timeout kept for the final commit: reading and delivery end this long before it.
COMMIT_RESERVE_S = 0.5
# After the deadline, closing the sinks may take this long (a collector that is down cannot hold the exit).
SINK_CLOSE_GRACE_S = 1.0

# Generation-0 threshold while the pipeline runs (CPython's default is 700).
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Make the cyclic GC cheap for a long-running pipeline. Records, their dicts and row tuples
    form no cycles, yet every batch allocates thousands of them, so with CPython's defaults the
    collector ran ~250 times per 200k lines and rescanned the in-flight records (measured: ~9% of
    the CPU of `tail → stdout`). `gc.freeze()` moves the start-up heap (modules, config) out of
    every later collection; a higher generation-0 threshold makes collections rare. Cycles are
    still collected, just later: memory stays bounded."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


# The encodings a fast-path writer writes directly (`fastpath.writer_for`).
_JSON_LINES = JSON_LINES
_OTLP_RECORDS = OTLP_RECORDS


def _lines_left(left: Sequence[Mapping[str, Any]]) -> int | None:
    """Lines undelivered and unread in all files; None when some count was not made (too much)."""
    total = 0
    for entry in left:
        for key in ("undelivered_lines", "unread_lines"):
            count = entry.get(key)
            if count is None:
                return None
            total += int(count)
    return total


def _files_of(group: Sequence[_InFlight], start: int, stop: int) -> list[dict[str, Any]]:
    """Records start..stop (excluded) of a group's merged payload, as lines per file: the path, the
    offset where the first begins, the offset just past the last, and how many."""
    files: dict[str, dict[str, Any]] = {}
    base = 0
    for item in group:
        first, last = max(start - base, 0), min(stop - base, item.count) - 1
        base += item.count
        if first > last:
            continue
        entry = files.get(item.ticket.file_key)
        if entry is None:
            files[item.ticket.file_key] = {
                "path": item.path,
                "first_offset": item.line_start(first),
                "last_offset": item.end_offsets[last],
                "lines": last - first + 1,
            }
        else:
            entry["first_offset"] = min(entry["first_offset"], item.line_start(first))
            entry["last_offset"] = max(entry["last_offset"], item.end_offsets[last])
            entry["lines"] += last - first + 1
    return list(files.values())


def _count(payload: Payload) -> int:
    return payload.count if isinstance(payload, JsonLines | OtlpLogRecords) else len(payload)


def _merged(payloads: list[Payload]) -> Payload:
    """One payload for a lane's group of batches (the sink asked for bigger batches)."""
    first = payloads[0]
    if len(payloads) == 1:
        return first
    if isinstance(first, JsonLines):
        return JsonLines.merge(payloads)  # type: ignore[arg-type]
    if isinstance(first, OtlpLogRecords):
        return OtlpLogRecords.merge(payloads)  # type: ignore[arg-type]
    return [record for payload in payloads for record in payload]  # type: ignore[union-attr]


def _raw_records(lines: Sequence[bytes], *, reason: str) -> list[LogRecord]:
    observed = utcnow()
    records = []
    for line in lines:
        text, valid = decode_text(line)
        attributes: dict[str, Any] = {PARSE_ERROR: reason}
        if not valid:
            attributes[INVALID_UTF8] = True
        records.append(LogRecord(body=text, attributes=attributes, observed_timestamp=observed))
    return records
