"""A sink's lane: the way from the pipeline to one sink, a queue of in-flight batches and
1..n workers that send them and settle them.

A sink declares (`Sink.capabilities`) whether it wants bigger batches than the tailer reads:
`batch_timeout_s` (how long a first batch may wait for more; not while the pipeline's in-flight
budget holds reading back, when nothing more can come) and `max_batch_records` (stop merging at
this many records; a request is never split into a full one and a runt), and concurrent sends:
`max_concurrent_sends` (default 1, which also keeps batches in order, as stdout needs). The queue
needs no bound of its own: the pipeline's in-flight budget bounds every lane.

Invariants:
- A worker sends its next group only once the acknowledgements its last one released are durable
  (the tailer commits them at once): a kill -9 replays at most the batches in flight, sent and not
  yet acknowledged. It checks before the send, not after the settle, so the usual case (the commit
  ended long before the next batch) costs no wake-up.
- A batch settles once the sink delivered it or rejected records of it for good (`BatchRejected`,
  reported here with the files and offsets of the rejected lines); any other failure of a send ends
  the worker and stops the pipeline (`fail`), and the batch is never acknowledged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Sequence
from typing import Any

from logsidecar import events
from logsidecar.acks import AckTicket
from logsidecar.events import SinkPartialSuccess, SinkRejected
from logsidecar.sinks.base import BatchRejected, JsonLines, OtlpLogRecords, Payload, RejectedRange, Sink
from logsidecar.tail.options import ReadBatch

#: `PipelineObserver.observe_delivery`: sink name, records delivered, latency in seconds.
ObserveDelivery = Callable[[str, int, float], None]


class InFlight:
    """One batch between `emit` and its acknowledgement: settled once every sink settled it.
    Its payload is its records or (a pipeline whose only sink takes them so) their encoding, one
    per line; `path`, `start_offset` and `end_offsets` locate the lines (to report rejected ones)."""

    __slots__ = ("ticket", "payload", "count", "unsettled_sinks", "path", "start_offset", "end_offsets")

    def __init__(self, ticket: AckTicket, payload: Payload, sinks: int, batch: ReadBatch) -> None:
        self.ticket = ticket
        self.payload = payload
        self.count = payload_count(payload)
        self.unsettled_sinks = sinks
        self.path = batch.path
        self.end_offsets = batch.end_offsets
        # Where the first line begins: its end, less the line and (unless cut) its newline.
        newline = 0 if 0 in batch.truncated else 1
        self.start_offset = max(batch.end_offsets[0] - len(batch.lines[0]) - newline, 0)

    def line_start(self, index: int) -> int:
        return self.start_offset if index == 0 else self.end_offsets[index - 1]


class Lane:
    """The queue to one sink and what its `concurrency` workers (`work`) do with it. `settle` is
    called once per batch the sink settled and returns the future of the commit it released (None:
    nothing to wait for); `fail` stops the pipeline; `stopping` is set once a stop was requested."""

    def __init__(
        self,
        sink: Sink,
        *,
        settle: Callable[[InFlight], concurrent.futures.Future[Any] | None],
        fail: Callable[[BaseException], None],
        stopping: asyncio.Event,
        reading_paused: asyncio.Event | None = None,
        observe_delivery: ObserveDelivery | None = None,
    ) -> None:
        self.sink = sink
        capabilities = sink.capabilities
        self.linger_s = max(capabilities.batch_timeout_s, 0.0)
        self.max_records = max(capabilities.max_batch_records, 0)
        self.concurrency = max(1, capabilities.max_concurrent_sends)
        self.queue: asyncio.Queue[InFlight] = asyncio.Queue()
        self.sent = 0  # records delivered
        self.rejected = 0  # records rejected for good
        self._settle = settle
        self._fail = fail
        self._stopping = stopping
        # Set while the pipeline's in-flight budget holds reading back: no batch comes before a send
        # settles, so a group waits no longer for more (long lines: 8 batches of 256 KiB are ~250
        # lines, far from a 2048-record group, and each group waited out the whole linger).
        self._reading_paused = reading_paused if reading_paused is not None else asyncio.Event()
        self._observe_delivery = observe_delivery

    async def work(self) -> None:
        carried: InFlight | None = None
        committing: concurrent.futures.Future[Any] | None = None
        while True:
            group, carried = await self._next_group(carried)
            try:
                if committing is not None and not committing.done():
                    # Send nothing before the acknowledgements of the last send are in storage: what
                    # a kill -9 replays is then at most what is in flight. (Usually done by now.)
                    await asyncio.wrap_future(committing)
                committing = None
                await self._send(group)
                for item in group:
                    if (durable := self._settle(item)) is not None:
                        committing = durable
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - a sink (or the ack path) failing for good stops the pipeline
                self._fail(exc)
                return

    async def _next_group(self, carried: InFlight | None) -> tuple[list[InFlight], InFlight | None]:
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
                if remaining <= 0 or self._stopping.is_set() or self._reading_paused.is_set():
                    break  # (when stopping, nothing waits for a fuller batch)
                got = await self._get_unless_paused(remaining)
                if got is None:
                    break
                item = got
            else:
                item = self.queue.get_nowait()
            if self.max_records and count + item.count > self.max_records:
                return group, item
            group.append(item)
            count += item.count
        return group, None

    async def _get_unless_paused(self, timeout_s: float) -> InFlight | None:
        """The next batch queued within `timeout_s`, None if none came or reading paused first."""
        get = asyncio.ensure_future(self.queue.get())
        paused = asyncio.ensure_future(self._reading_paused.wait())
        try:
            await asyncio.wait((get, paused), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            paused.cancel()
            if not get.done():
                get.cancel()  # Queue.get is cancellation-safe: an item not taken stays queued
        return get.result() if get.done() and not get.cancelled() else None

    async def _send(self, group: Sequence[InFlight]) -> None:
        sink = self.sink
        started = time.monotonic()
        payload = merged([item.payload for item in group])
        count = payload_count(payload)
        try:
            if isinstance(payload, JsonLines):
                await sink.send_json_lines(payload)
            elif isinstance(payload, OtlpLogRecords):
                await sink.send_otlp_records(payload)
            else:
                await sink.send(payload)
        except BatchRejected as rejected:
            self.rejected += rejected.rejected
            self._report_rejected(group, count, rejected)
            count -= rejected.rejected
            if not count:
                return
        self.sent += count
        if self._observe_delivery is not None:
            self._observe_delivery(sink.name, count, time.monotonic() - started)

    def _report_rejected(self, group: Sequence[InFlight], count: int, rejected: BatchRejected) -> None:
        """One event per rejection: the records a sink will never deliver, and where their lines are
        (file, first and last offset), so they can be found and sent again by hand."""
        ranges = rejected.ranges or (RejectedRange(0, count, rejected.rejected, rejected.reason),)
        for part in ranges:
            event_type = SinkPartialSuccess if part.partial else SinkRejected
            events.emit(
                event_type(
                    sink=self.sink.name,
                    reason=part.reason,
                    rejected=part.rejected,
                    records=part.stop - part.start,
                    files=files_of(group, part.start, part.stop),
                )
            )


def files_of(group: Sequence[InFlight], start: int, stop: int) -> list[dict[str, Any]]:
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


def payload_count(payload: Payload) -> int:
    return payload.count if isinstance(payload, JsonLines | OtlpLogRecords) else len(payload)


def merged(payloads: list[Payload]) -> Payload:
    """One payload for a lane's group of batches (the sink asked for bigger batches)."""
    first = payloads[0]
    if len(payloads) == 1:
        return first
    if isinstance(first, JsonLines):
        return JsonLines.merge(payloads)  # type: ignore[arg-type]
    if isinstance(first, OtlpLogRecords):
        return OtlpLogRecords.merge(payloads)  # type: ignore[arg-type]
    return [record for payload in payloads for record in payload]  # type: ignore[union-attr]
