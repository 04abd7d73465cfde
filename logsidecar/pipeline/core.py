"""The pipeline: tailer → per-file parser → every sink → acknowledgements → checkpoints.

One asyncio task reads (the tailer's `run`); each batch it emits is parsed right there (one parser
per file, `parsing.BatchParser`), stamped, and put on the lane of every sink. A lane (`lanes.Lane`) is
a queue and 1..n workers
that send to one sink, merging consecutive batches when the sink asks for bigger ones (as its
`SinkCapabilities` declare: the OTLP sink does). When every sink has settled a batch (delivered, or
rejected for good: `BatchRejected`, reported with the files and offsets of the rejected lines), it is
acknowledged to the tailer in file order (`acks.AckTracker`), and only acknowledged offsets ever
reach a checkpoint.

Invariants:
- Bounded memory: at most `max_in_flight_batches` batches and (beyond the first) `max_in_flight_lines`
  lines are parsed and not yet settled. When the budget is spent, `emit` does not return, so the
  tailer stops reading: the log files are the buffer, nothing is dropped.
- A batch is acknowledged only after every sink settled it, and per file in the order read; a batch
  that failed or was abandoned at shutdown is never acknowledged (it is read again after a restart).
- A lane sends its next batch only once the acknowledgements its last one released are durable
  (see `lanes`): a kill -9 replays at most the batches in flight, sent and not yet acknowledged.
- Per-record work is a handful of dict stores: no per-record awaits, queue operations or hashing;
  per batch: one queue put per sink and one turn of the loop (the lanes run between parses), no
  task creation.
- Shutdown (`request_stop`, e.g. on SIGTERM) within `drain_timeout_s`, which covers the whole stop:
  reading, delivery, the final commit and closing the sinks. The source reads every followed file to
  its end (`Source.drain`; batches are still taken), what was sent settles, the tailer commits the
  acknowledged offsets. Reading and delivery end COMMIT_RESERVE_S + SINK_CLOSE_GRACE_S before the
  deadline, so the commit and the close fit in it too, and the deadline is EXIT_RESERVE_S before the
  end of the budget, for the process to exit. What is left then is abandoned (never acknowledged;
  `stopped_short`), and the last event, STOPPED (at warning level), names it per file: where a
  restart resumes, bytes and lines read but not delivered, bytes and lines not read. A reload
  (`request_stop(drain=False)`) does not read ahead: in-flight batches settle and the next pipeline
  resumes from the acknowledged offsets.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from logsidecar import events
from logsidecar.acks import AckTicket, AckTracker
from logsidecar.events import Event, Level, Started, Stopped, Stopping
from logsidecar.pipeline.lanes import InFlight, Lane
from logsidecar.pipeline.parsing import BatchParser, ParserSelector, encoding_for
from logsidecar.sinks.base import Sink
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
class PipelineOptions:
    resource: Mapping[str, Any]
    max_in_flight_batches: int = 8
    max_in_flight_lines: int = 6144
    # On stop: reading every file to its end, delivering and committing, at most this long. Below
    # Docker's 10 s stop timeout, with room for SINK_CLOSE_GRACE_S.
    drain_timeout_s: float = 8.0
    # Tune the cyclic GC for this process when `run` starts (see `tune_gc`).
    tune_gc: bool = True
    # (host directory, the directory as the writing container sees it): records name the container's
    # path in log.file.path and the host's in logsidecar.host.path (`docker attach`).
    path_map: tuple[tuple[str, str], ...] = ()


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
        self._batches = BatchParser(
            parsers,
            dict(options.resource),
            encoding_for(self.sinks),
            observer.observe_batch if observer is not None else None,
            options.path_map,
        )
        self._acks = AckTracker()
        self._emitted_at: dict[AckTicket, float] = {}  # in-flight batches, oldest first
        self._stop_requested = asyncio.Event()
        self._reading_paused = asyncio.Event()  # set while `emit` waits for budget: lanes linger no more
        self._lanes = [
            Lane(
                sink,
                settle=self._settle,
                fail=self._fail,
                stopping=self._stop_requested,
                reading_paused=self._reading_paused,
                observe_delivery=observer.observe_delivery if observer is not None else None,
            )
            for sink in self.sinks
        ]
        self._workers: list[asyncio.Task[None]] = []
        self._in_flight_batches = 0
        self._in_flight_lines = 0
        self._space = asyncio.Event()  # set whenever the in-flight budget shrinks
        self._idle = asyncio.Event()  # set while nothing is in flight
        self._idle.set()
        self._drain_on_stop = False
        self._closing = False
        self._drained = asyncio.Event()  # set when shutdown no longer waits for in-flight batches
        self._fatal: BaseException | None = None
        # counters
        self.lines_in = 0
        self.batches_in = 0
        self.acknowledgements = 0
        self.abandoned_batches = 0
        self.left: list[dict[str, Any]] = []  # after a stop: what was not delivered, per file
        self.deadline: float | None = None  # after a stop: sinks closed by then (time.monotonic())
        self.stopped_short = False  # after a draining stop: the deadline came before all was delivered

    # -- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until the source ends, `request_stop` is called, or a sink fails for good (re-raised)."""
        for sink in self.sinks:
            await sink.start()
        if self.options.tune_gc:
            tune_gc()  # after the sinks started: what they import on start (grpc...) is start-up too
        self._workers = [
            asyncio.create_task(lane.work(), name=f"logsidecar-{lane.sink.name}-{index}")
            for lane in self._lanes
            for index in range(lane.concurrency)
        ]
        events.emit(Started(sinks=[s.name for s in self.sinks]))
        unsubscribe = events.subscribe(self._on_event)
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
            unsubscribe()
        if self._fatal is not None:
            raise self._fatal
        if source_task.done() and not source_task.cancelled() and source_task.exception() is not None:
            raise source_task.exception()  # type: ignore[misc]

    def _on_event(self, event: Event, fields: dict[str, Any]) -> None:
        # A released file sends no more lines: what the pipeline kept for it goes (its parser).
        if event is Event.FILE_DRAINED and isinstance(fields.get("file_key"), str):
            self._batches.forget(fields["file_key"])

    def request_stop(self, *, drain: bool = True) -> None:
        """Begin a graceful shutdown; safe to call from a signal handler and more than once. `drain`:
        read every followed file to its end first (SIGTERM); a reload passes False (its successor
        resumes from the acknowledged offsets). Any request with drain=True makes the stop drain."""
        self._drain_on_stop |= drain
        self._stop_requested.set()

    async def _shutdown(self, source_task: asyncio.Task[None]) -> None:
        timeout = self.options.drain_timeout_s
        # `deadline`: the sinks are closed by then, and what remains is leaving the process.
        budget = timeout - min(EXIT_RESERVE_S, timeout / 4)
        deadline = self.deadline = time.monotonic() + budget
        deliver_by = deadline - min(COMMIT_RESERVE_S + SINK_CLOSE_GRACE_S, budget / 2)
        drain = self._drain_on_stop and self._fatal is None and not source_task.done()
        events.emit(Stopping(in_flight_batches=self._in_flight_batches, drain=drain, drain_timeout_s=timeout))
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
        close_by = deadline
        for sink in self.sinks:
            try:
                await asyncio.wait_for(sink.close(), max(close_by - time.monotonic(), 0.0))
            except TimeoutError:
                pass
            except Exception as exc:  # noqa: BLE001 - a failing close must not hide the checkpoints
                events.emit(Stopping(sink=sink.name, reason=f"close failed: {exc!r}"))
        # The last line of our own log: what this stop could not deliver, and where it starts.
        complete = read_all and delivered and not self.left
        self.stopped_short = drain and not (read_all and delivered)
        level = reason = None
        if self.stopped_short:
            level = Level.WARNING
            reason = f"--drain-timeout ({timeout:g}s) passed before every line was read and delivered"
        elif self.left and drain:
            level = Level.WARNING
            reason = "lines written after the files were read to their end"
        events.emit(
            Stopped(
                **self.stats(),
                drained=complete,
                lines_left=_lines_left(self.left) if self.left else None,
                left=self.left or None,
                level=level,
                reason=reason,
            )
        )

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
            records = self._batches.parse(batch)
        except BaseException:
            self._release(count)
            raise
        self.lines_in += count
        self.batches_in += 1
        ticket = self._acks.register(batch.file_key, batch.end_offsets[-1])
        self._emitted_at[ticket] = time.monotonic()
        item = InFlight(ticket, records, len(self._lanes), batch)
        for lane in self._lanes:
            lane.queue.put_nowait(item)
        # One turn of the loop before the next batch is parsed: what the sinks' threads finished
        # meanwhile (a write, an export) settles and the lanes send on. Without it a backlog was
        # parsed batch after batch and the loop came round only when the in-flight budget was
        # spent, so a send's hops waited for reading to stop (into rotel: budget waits 2.0 -> 1.6 s
        # per 1M lines, benchmarks/footprint.py).
        await asyncio.sleep(0)

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
            self._reading_paused.set()
            try:
                await self._space.wait()
            finally:
                self._reading_paused.clear()
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

    def _settle(self, item: InFlight) -> concurrent.futures.Future[Any] | None:
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

    @property
    def sent(self) -> dict[str, int]:
        """Records delivered, per sink name."""
        return self._per_sink("sent")

    @property
    def rejected(self) -> dict[str, int]:
        """Records rejected for good, per sink name."""
        return self._per_sink("rejected")

    def _per_sink(self, counter: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for lane in self._lanes:
            counts[lane.sink.name] = counts.get(lane.sink.name, 0) + getattr(lane, counter)
        return counts

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
            "sent": self.sent,
            "rejected": self.rejected,
        }


# The part of --drain-timeout kept for the final commit: reading and delivery end this long before it.
COMMIT_RESERVE_S = 0.5
# ...and the part kept for closing the sinks after the commit (a collector that is down cannot hold
# the exit: a close still running at the deadline is abandoned).
SINK_CLOSE_GRACE_S = 1.0
# ...and the last part, after the deadline, for leaving: interpreter shutdown, freeing the heap
# (a stop with 18k lines in flight took 40-70 ms from the deadline to the exit).
EXIT_RESERVE_S = 0.25

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
