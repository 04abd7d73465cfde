"""The OTLP sink: records → OpenTelemetry collector, over gRPC or HTTP/protobuf; delivered or retried.

Contract (see `base.Sink`): `send(records)` returns only once the collector accepted every record.
- Failed exports are retried inside `send` until accepted, rejected for good, out of `max_retry_time_s`,
  or `close()`: the retry contract (which failures are retried, backoff, recovery after an outage,
  configuration errors; SINK_RETRY, SINK_RECOVERED, SINK_MISCONFIGURED) is `otlp_retry`'s docstring.
- Size: a request is at most `max_request_bytes` (serialized, uncompressed; 4 MiB for gRPC, 20 MiB for
  HTTP by default, see `otlp_fit`). A batch over it is split in halves before sending; a single record
  over it is truncated to fit and flagged (SINK_RECORD_TRUNCATED). A request the collector still finds
  too large (HTTP 413; gRPC RESOURCE_EXHAUSTED or OUT_OF_RANGE saying "message too large") is split
  the same way, and a single record is truncated to half its size, down to SMALLEST_TRUNCATION_BYTES.
- Only what the collector rejects as malformed (HTTP 400, gRPC INVALID_ARGUMENT, records counted in
  `partial_success.rejected_log_records`), what it refuses even truncated, and what `max_retry_time_s`
  gave up on is not delivered. Every other record of the batch is sent first; then `send` raises
  `BatchRejected` with the rejected record ranges and a clear reason followed by the collector's
  own message, e.g. "collector rejected the data as invalid (HTTP 400): bad timestamp". The pipeline
  counts them and emits SINK_REJECTED / SINK_PARTIAL_SUCCESS with their files and offsets (the sink
  does not, so each is logged once). A partial success is not retried (that would duplicate the
  accepted records).
- `close()` makes pending and future sends raise `SinkClosed` promptly: "not delivered", which the
  pipeline must NOT acknowledge (unlike BatchRejected), so the lines are replayed after a restart.

Why not the SDK's LoggerProvider + BatchLogRecordProcessor + OTLPLogExporter (opentelemetry-sdk 1.45,
read in site-packages): building an SDK LogRecord per line costs far more than the line's parse; the
processor's bounded queue drops records when full (no backpressure); the exporters give up after 6 retries
or their timeout and discard the response, so `partial_success` cannot be read. Instead this sink encodes
records straight into `ExportLogsServiceRequest` bytes (`encoding/otlp_wire`, ~6 µs/record, see there
why not via the proto API) and performs the export call (`otlp_transport`) and the retry loop itself,
on public APIs for everything else: for gRPC, grpc's channel, credentials and gzip channel compression and
the LogsService method path; for HTTP, a pooled requests session. The collector's answers
(`ExportLogsServiceResponse`, `google.rpc.Status`, `RetryInfo`) are read by `encoding/otlp_response`:
protobuf is not imported. `otlp_connection` holds the pieces the exporter packages keep private (TLS
credentials, User-Agent, Retry-After, retryable statuses): their private names change between releases.

Blocking work (encoding, the export call) runs in worker threads via `asyncio.to_thread`, so the event
loop is never blocked. Header values are secrets: they never appear in events, reprs or exceptions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from logsidecar import events
from logsidecar.encoding.otlp_wire import LogsRequestEncoder
from logsidecar.events import Event, SinkPartialSuccess
from logsidecar.record import LogRecord
from logsidecar.sinks.base import BatchRejected, OtlpLogRecords, RejectedRange, Sink, SinkCapabilities
from logsidecar.sinks.otlp_fit import (
    DEFAULT_GRPC_MAX_REQUEST_BYTES,
    DEFAULT_HTTP_MAX_REQUEST_BYTES,
    SMALLEST_TRUNCATION_BYTES,
    truncate_single_record,
)
from logsidecar.sinks.otlp_malloc import release_large_buffers
from logsidecar.sinks.otlp_retry import ExportRetry
from logsidecar.sinks.otlp_retry import SinkClosed as SinkClosed  # where callers catch it
from logsidecar.sinks.otlp_settings import OtlpProtocol, OtlpSettings
from logsidecar.sinks.otlp_transport import Accepted, Rejected, Transport, build_transport


@dataclass(slots=True)
class OtlpSinkStats:
    records_delivered: int = 0  # accepted by the collector (partial-success rejections excluded)
    records_partially_rejected: int = 0  # partial_success.rejected_log_records
    records_rejected: int = 0  # in requests rejected for good (malformed, gave up, too large)
    batches_rejected: int = 0  # requests rejected for good
    records_truncated: int = 0  # single records cut to fit a request (see otlp_fit)
    requests_sent: int = 0
    retries: int = 0


class OtlpSink(Sink):
    name = "otlp"

    def __init__(self, settings: OtlpSettings, *, transport: Transport | None = None) -> None:
        self.settings = settings
        self.stats = OtlpSinkStats()
        self._encoder = LogsRequestEncoder(settings.resource)
        self._transport = transport
        self._retry = ExportRetry(
            settings,
            self.stats,
            endpoint_shown=endpoint_without_credentials(settings.endpoint),
            sink_name=self.name,
            transport=transport,
        )
        # OTLP needs no ordering between requests; several in flight let one batch be encoded while
        # the previous one is on the wire.
        self.capabilities = SinkCapabilities(
            batch_timeout_s=settings.batch_timeout_s,
            max_batch_records=settings.batch_size,
            max_concurrent_sends=settings.max_concurrent_sends,
        )

    @property
    def max_request_bytes(self) -> int:
        """The cap on one serialized request (see otlp_fit)."""
        if self.settings.max_request_bytes is not None:
            return self.settings.max_request_bytes
        if self.settings.protocol is OtlpProtocol.GRPC:
            return DEFAULT_GRPC_MAX_REQUEST_BYTES
        return DEFAULT_HTTP_MAX_REQUEST_BYTES

    async def start(self) -> None:
        if self._transport is None:
            release_large_buffers()  # before the transport's threads and first request: see there
            self._transport = build_transport(self.settings)
            self._retry.transport = self._transport

    accepts_otlp_records = True

    async def send(self, records: Sequence[LogRecord]) -> None:
        await self._send_chunks(records, self._encoder.encode)

    async def send_otlp_records(self, batch: OtlpLogRecords) -> None:
        resource = batch.resource
        await self._send_chunks(batch.records, lambda chunk: self._encoder.encode_records(chunk, resource))

    async def _send_chunks(self, items: Sequence[Any], encode: Callable[[Sequence[Any]], bytes]) -> None:
        """Send `items` (records, or encoded records) in requests of at most `batch_size` records and
        `max_request_bytes`; then raise BatchRejected if any were rejected for good."""
        if not items:
            return
        if self._transport is None:
            await self.start()
        size = self.settings.batch_size
        rejected: list[RejectedRange] = []
        for begin in range(0, len(items), size):
            await self._send_range(items, begin, min(begin + size, len(items)), encode, rejected)
        if rejected:
            count = sum(r.rejected for r in rejected)
            reason = rejected[0].reason
            if len(rejected) > 1:
                reason += f" (and {len(rejected) - 1} more rejected request(s))"
            raise BatchRejected(reason, rejected=count, ranges=rejected)

    async def close(self) -> None:
        self._retry.close()
        transport = self._transport
        if transport is not None:
            # Closing the gRPC channel cancels in-flight calls, so a blocked attempt ends now.
            await asyncio.to_thread(transport.close)

    # -- internals --

    async def _send_range(
        self,
        items: Sequence[Any],
        start: int,
        stop: int,
        encode: Callable[[Sequence[Any]], bytes],
        rejected: list[RejectedRange],
        limit: int | None = None,
    ) -> None:
        """Deliver items[start:stop] in requests of at most `limit` bytes (default: the cap), split in
        halves as needed; what the collector rejects for good is added to `rejected`."""
        assert self._transport is not None
        transport = self._transport
        limit = self.max_request_bytes if limit is None else limit
        count = stop - start
        self._retry.raise_if_closed()
        successes_before, started = self._retry.successes, time.monotonic()

        def encode_and_export() -> tuple[bytes | None, int, bytes | None, Any]:
            # The usual request in one worker-thread hop: encoded, prepared and sent. Each hop back to
            # the event loop waits for the loop to come round, which in a backlog is busy parsing:
            # three hops per request were ~20 ms of its ~35 (benchmarks/footprint.py into rotel).
            request = encode(items[start:stop])
            if len(request) > limit:
                return request, len(request), None, None
            payload = transport.prepare(request)
            # Compressed, the payload is a copy: only it is held while retrying, not the request too.
            return None, len(request), payload, transport.export(payload, self.settings.timeout_s)

        request, request_bytes, prepared, outcome = await asyncio.to_thread(encode_and_export)
        if prepared is None:  # over the limit: nothing was sent
            assert request is not None
            if count > 1:
                await self._split(items, start, stop, encode, rejected, limit)
                return
            request = await self._truncated(request, limit)
            payload = await asyncio.to_thread(transport.prepare, request)
            request_bytes = len(request)
            del request  # compressed, the payload is a copy: only one of the two is held while retrying
            outcome = await self._retry.export(payload, count)
        else:
            self.stats.requests_sent += 1
            outcome = await self._retry.export(prepared, count, (outcome, successes_before, started))
        if isinstance(outcome, Rejected) and outcome.too_large:
            # The collector's limit is below ours: the halves, or this record cut to half its size.
            # (The limit halves each time, so this ends even for a record that cannot be cut.)
            smaller = min(limit, request_bytes)
            if count > 1:
                await self._split(items, start, stop, encode, rejected, smaller)
                return
            if smaller // 2 >= SMALLEST_TRUNCATION_BYTES:
                await self._send_range(items, start, stop, encode, rejected, smaller // 2)
                return
        if isinstance(outcome, Rejected):
            self.stats.batches_rejected += 1
            self.stats.records_rejected += count
            rejected.append(RejectedRange(start, stop, count, _reason_text(outcome.reason, outcome.detail)))
            return
        assert isinstance(outcome, Accepted)
        refused = min(outcome.rejected_records, count)
        self.stats.records_delivered += count - refused
        if refused:
            self.stats.records_partially_rejected += refused
            reason = _reason_text(f"collector rejected {refused} of {count} records", outcome.message)
            rejected.append(RejectedRange(start, stop, refused, reason, partial=True))
        elif outcome.message:
            events.emit(
                SinkPartialSuccess(
                    sink=self.name, reason="collector warning", records=count, detail=outcome.message
                )
            )

    async def _split(
        self,
        items: Sequence[Any],
        start: int,
        stop: int,
        encode: Callable[[Sequence[Any]], bytes],
        rejected: list[RejectedRange],
        limit: int,
    ) -> None:
        middle = (start + stop) // 2
        await self._send_range(items, start, middle, encode, rejected, limit)
        await self._send_range(items, middle, stop, encode, rejected, limit)

    async def _truncated(self, request: bytes, limit: int) -> bytes:
        """A one-record request over `limit`, cut to fit (or as it is when it cannot be)."""
        truncated = await asyncio.to_thread(truncate_single_record, request, limit)
        if truncated is None:
            return request  # nothing to cut: the collector decides
        self.stats.records_truncated += 1
        events.emit(
            Event.SINK_RECORD_TRUNCATED,
            sink=self.name,
            reason=f"one record is larger than a request may be ({limit} bytes): its text was cut "
            "and it is flagged logsidecar.truncated",
            record_bytes=truncated.original_bytes,
            sent_bytes=len(truncated.request),
            path=truncated.path,
            uid=truncated.uid,
        )
        return truncated.request


def _reason_text(reason: str, detail: str) -> str:
    return f"{reason}: {detail}" if detail else reason


def endpoint_without_credentials(endpoint: str) -> str:
    """The endpoint as shown in events: any user:password@ in the URL is masked (it is a secret)."""
    if "://" not in endpoint or "@" not in endpoint:
        return endpoint
    parts = urlsplit(endpoint)
    if "@" not in parts.netloc:
        return endpoint
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()
