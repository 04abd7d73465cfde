"""The OTLP sink: records → OpenTelemetry collector, over gRPC or HTTP/protobuf; delivered or retried.

Contract (see `base.Sink`): `send(records)` returns only once the collector accepted every record.
- Retryable failures are retried inside `send`, with exponential backoff and jitter, for as long as it
  takes (or until `max_retry_time_s`, or `close()`). Retryable, per the OTLP specification: gRPC
  UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, CANCELLED, OUT_OF_RANGE, DATA_LOSS, and RESOURCE_EXHAUSTED when
  the server sent RetryInfo; HTTP 429, 502, 503, 504; connection errors, timeouts and TLS handshake failures
  (a collector restarting with new certificates is a transient state; the reason in the event says TLS).
  A server-supplied delay (gRPC RetryInfo, HTTP Retry-After) is honoured. Each failed attempt emits
  SINK_RETRY (selflog rate-limits repeats of the same reason); the first success after failures emits
  SINK_RECOVERED.
- A request the collector finds too large (HTTP 413, gRPC RESOURCE_EXHAUSTED without RetryInfo) is split
  in halves and each half sent; only a single record too large for the collector is rejected.
- Other rejections (INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED ..., HTTP 400, 401,
  403, 404 ...) raise `BatchRejected` with a clear reason followed by the collector's own message, e.g.
  "authentication rejected by collector (HTTP 401): missing token"; the pipeline counts it and emits
  SINK_REJECTED (the sink does not, so the event is logged once).
- `partial_success.rejected_log_records > 0` in the response is counted and emitted as
  SINK_PARTIAL_SUCCESS; the request counts as delivered (retrying would duplicate the accepted records).
- `close()` makes pending and future sends raise `SinkClosed` promptly: "not delivered", which the
  pipeline must NOT acknowledge (unlike BatchRejected), so the lines are replayed after a restart.

Why not the SDK's LoggerProvider + BatchLogRecordProcessor + OTLPLogExporter (opentelemetry-sdk 1.45,
read in site-packages): building an SDK LogRecord per line costs far more than the line's parse; the
processor's bounded queue drops records when full (no backpressure); the exporters give up after 6 retries
or their timeout and discard the response, so `partial_success` cannot be read. Instead this sink encodes
records straight into `ExportLogsServiceRequest` bytes (`otlp_encode`, ~6 µs/record, see there why not
via the proto API) and performs the export call and the retry loop itself, on public APIs for everything
else: for gRPC, grpc's channel, credentials and gzip channel compression, the
LogsService method path and `ExportLogsServiceResponse`/`google.rpc.RetryInfo` proto types; for HTTP, a
pooled requests session. `otlp_connection` holds the pieces the exporter packages keep private (TLS
credentials, User-Agent, Retry-After, retryable statuses): their private names change between releases.

Blocking work (encoding, the export call) runs in worker threads via `asyncio.to_thread`, so the event
loop is never blocked. Header values are secrets: they never appear in events, reprs or exceptions.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from logsidecar import events
from logsidecar.events import Event
from logsidecar.record import LogRecord
from logsidecar.sinks.base import BatchRejected, OtlpLogRecords, Sink
from logsidecar.sinks.otlp_connection import (
    GRPC_CHANNEL_OPTIONS,
    RETRYABLE_HTTP_STATUSES,
    USER_AGENT,
    HttpPoster,
    HttpResult,
    grpc_credentials,
)
from logsidecar.sinks.otlp_encode import LogsRequestEncoder

DEFAULT_SERVICE_NAME = "apache-httpd"
_LOGS_EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


class OtlpProtocol(StrEnum):
    GRPC = "grpc"
    HTTP_PROTOBUF = "http/protobuf"


class Compression(StrEnum):
    GZIP = "gzip"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    """Everything the OTLP sink needs, already resolved (flags > env > defaults; see cli.otlp_options)."""

    endpoint: str  # gRPC: [scheme://]host:port; HTTP: the full URL of the logs path
    protocol: OtlpProtocol = OtlpProtocol.GRPC
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # secrets: never shown
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    insecure: bool = False  # gRPC only, endpoints without a scheme
    compression: Compression = Compression.NONE
    timeout_s: float = 10.0  # deadline of one export attempt
    batch_size: int = 2048  # most records per export request
    batch_timeout_s: float = 0.2  # for the pipeline: how long lines may wait to fill a batch
    max_concurrent_sends: int = 4  # for the pipeline: export requests in flight at once
    max_retry_time_s: float | None = None  # None: retry for as long as it takes
    resource: dict[str, Any] = field(default_factory=lambda: {"service.name": DEFAULT_SERVICE_NAME})
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0


class SinkClosed(Exception):
    """`close()` was called while the batch was still undelivered; it must not be acknowledged."""


# --- the outcome of one export attempt -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accepted:
    rejected_records: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Retryable:
    reason: str  # stable text (rate-limiting key): what happened, with the status
    detail: str = ""  # the transport's own words, may vary between attempts
    delay_s: float | None = None  # server-requested delay (RetryInfo / Retry-After)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    detail: str = ""
    too_large: bool = False  # the request could succeed if split


Outcome = Accepted | Retryable | Rejected


class Transport(Protocol):
    """One blocking export attempt of serialized ExportLogsServiceRequest bytes."""

    def prepare(self, request: bytes) -> bytes:
        """The bytes to put on the wire (compressed when the transport compresses itself); done once
        per batch, not once per attempt."""
        ...

    def export(self, payload: bytes, timeout_s: float) -> Outcome: ...

    def close(self) -> None: ...


# --- reasons that say what went wrong in the user's words -------------------------------------------

_GRPC_REASONS = {
    "UNAUTHENTICATED": "authentication rejected by collector",
    "PERMISSION_DENIED": "permission denied by collector",
    "INVALID_ARGUMENT": "collector rejected the data as invalid",
    "UNIMPLEMENTED": "collector does not accept OTLP logs at this endpoint",
    "NOT_FOUND": "collector does not accept OTLP logs at this endpoint",
    "DEADLINE_EXCEEDED": "export timed out",
    "RESOURCE_EXHAUSTED": "collector is throttling",
    "CANCELLED": "export cancelled",
}
_HTTP_REASONS = {
    400: "collector rejected the data as invalid",
    401: "authentication rejected by collector",
    403: "permission denied by collector",
    404: "collector does not accept OTLP logs at this URL",
    405: "collector does not accept OTLP logs at this URL",
    413: "request too large for collector",
    415: "collector does not accept protobuf at this URL",
    429: "collector is throttling",
    502: "collector (or a proxy in front of it) is unavailable",
    503: "collector is unavailable",
    504: "collector (or a proxy in front of it) timed out",
}


def _connection_reason(detail: str) -> str:
    lowered = detail.lower()
    if any(hint in lowered for hint in ("ssl", "tls", "handshake", "certificate", "wrong_version_number")):
        return "TLS handshake with collector failed"
    if "refused" in lowered:
        return "collector unreachable (connection refused)"
    if "resolve" in lowered or "dns" in lowered or "name or service not known" in lowered:
        return "collector address does not resolve"
    if "timed out" in lowered or "timeout" in lowered or "deadline" in lowered:
        return "export timed out"
    return "collector unreachable"


# --- gRPC ------------------------------------------------------------------------------------------


class GrpcTransport:
    """Unary LogsService/Export calls on one long-lived channel (thread-safe, reconnects by itself)."""

    # Retryable per the OTLP spec; RESOURCE_EXHAUSTED only with RetryInfo (handled below).
    _RETRYABLE = frozenset(
        {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"}
    )

    def __init__(self, settings: OtlpSettings) -> None:
        import grpc
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

        self._grpc = grpc
        target, secure = _grpc_target(settings)
        options = [
            *GRPC_CHANNEL_OPTIONS,
            # grpc's own reconnect backoff grows to 120 s by default: after a collector restart we
            # would wait up to two minutes; our retry loop already paces attempts.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
            ("grpc.max_send_message_length", -1),
        ]
        compression = grpc.Compression.Gzip if settings.compression is Compression.GZIP else None
        if secure:
            credentials = grpc_credentials(
                settings.ca_file, settings.client_key_file, settings.client_cert_file
            )
            self._channel = grpc.secure_channel(target, credentials, options=options, compression=compression)
        else:
            self._channel = grpc.insecure_channel(target, options=options, compression=compression)
        self._metadata = tuple(settings.headers.items())
        self._call = self._channel.unary_unary(
            _LOGS_EXPORT_METHOD,
            request_serializer=None,  # bytes are sent as they are: otlp_encode already serialized them
            response_deserializer=ExportLogsServiceResponse.FromString,
        )

    def prepare(self, request: bytes) -> bytes:
        return request  # grpc compresses on the channel when asked to

    def export(self, payload: bytes, timeout_s: float) -> Outcome:
        grpc = self._grpc
        try:
            response = self._call(payload, timeout=timeout_s, metadata=self._metadata)
        except grpc.RpcError as error:
            return self._classify(error)
        except Exception as error:  # noqa: BLE001 - e.g. "closed channel": retried (or SinkClosed), never lost
            return Retryable("export failed unexpectedly", repr(error))
        partial = response.partial_success
        return Accepted(rejected_records=partial.rejected_log_records, message=partial.error_message)

    def _classify(self, error: Any) -> Outcome:
        code = error.code()
        name = code.name if code is not None else "UNKNOWN"
        detail = str(error.details() or "")
        status = f"gRPC {name}"
        if name == "RESOURCE_EXHAUSTED":
            delay = _grpc_retry_delay(error)
            if delay is not None:
                return Retryable(f"collector is throttling ({status})", detail, delay)
            if "larger than max" in detail.lower() or "message too large" in detail.lower():
                return Rejected(f"request too large for collector ({status})", detail, too_large=True)
            return Rejected(f"collector out of resources, no retry advised ({status})", detail)
        if name in self._RETRYABLE:
            if name == "UNAVAILABLE":
                reason = _connection_reason(detail)
            else:
                reason = _GRPC_REASONS.get(name, "export failed")
            return Retryable(f"{reason} ({status})", detail, _grpc_retry_delay(error))
        return Rejected(f"{_GRPC_REASONS.get(name, 'collector rejected the export')} ({status})", detail)

    def close(self) -> None:
        self._channel.close()


def _grpc_retry_delay(error: Any) -> float | None:
    try:
        from google.rpc.error_details_pb2 import RetryInfo

        for key, value in error.trailing_metadata() or ():
            if key == "google.rpc.retryinfo-bin":
                info = RetryInfo.FromString(value)
                return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    except Exception:  # noqa: BLE001 - a malformed hint is ignored, not fatal
        return None
    return None


def _grpc_target(settings: OtlpSettings) -> tuple[str, bool]:
    """host:port and whether to use TLS. The spec: an http/https scheme decides; without a scheme,
    `insecure` decides (TLS by default)."""
    endpoint = settings.endpoint.strip()
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        return parts.netloc, parts.scheme.lower() != "http"
    return endpoint.rstrip("/"), not settings.insecure


# --- HTTP/protobuf ---------------------------------------------------------------------------------


class HttpTransport:
    """POST of the serialized request to the logs URL; the response body carries partial_success."""

    def __init__(self, settings: OtlpSettings) -> None:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

        self._url = settings.endpoint
        cert: str | tuple[str, str] | None = settings.client_cert_file
        if settings.client_cert_file and settings.client_key_file:
            cert = (settings.client_cert_file, settings.client_key_file)
        session = _session_keeping_ca_file(settings.ca_file)
        self._poster = HttpPoster(session, verify=settings.ca_file or True, cert=cert)
        self._headers = {
            "User-Agent": USER_AGENT,
            **settings.headers,
            "Content-Type": "application/x-protobuf",
        }
        self._gzip = settings.compression is Compression.GZIP
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._response_type = ExportLogsServiceResponse

    def prepare(self, request: bytes) -> bytes:
        if self._gzip:
            # Level 1: log text still shrinks ~5x, at a fraction of the default level-9 CPU cost.
            return gzip.compress(request, compresslevel=1)
        return request

    def export(self, payload: bytes, timeout_s: float) -> Outcome:
        result = self._poster.post(self._url, headers=self._headers, data=payload, timeout_s=timeout_s)
        status = result.status
        if status is None:
            detail = str(result.error or "no response")
            return Retryable(_connection_reason(detail), detail)
        if 200 <= status < 300:
            try:
                response = self._response_type.FromString(result.body)
            except Exception:  # noqa: BLE001 - an unparsable 2xx body still means accepted
                return Accepted()
            partial = response.partial_success
            return Accepted(rejected_records=partial.rejected_log_records, message=partial.error_message)
        detail = _http_error_detail(result)
        reason = f"{_HTTP_REASONS.get(status, 'collector rejected the export')} (HTTP {status})"
        if status in RETRYABLE_HTTP_STATUSES:
            return Retryable(reason, detail, result.retry_after_s())
        return Rejected(reason, detail, too_large=status == 413)

    def close(self) -> None:
        self._poster.close()


def _session_keeping_ca_file(ca_file: str | None) -> Any:
    """A requests Session on which an explicit CA file wins. Plain requests lets REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE in the environment override `Session.verify` (psf/requests#3829, #4726), which would
    silently ignore --otlp-ca-file in many containers. Proxies and the rest of the env still apply."""
    import requests

    class SessionKeepingCaFile(requests.Session):
        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> Any:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if ca_file and verify is None:
                settings["verify"] = ca_file
            return settings

    return SessionKeepingCaFile()


def _http_error_detail(result: HttpResult) -> str:
    """The collector's message: OTLP/HTTP error bodies are google.rpc.Status protobuf messages."""
    body = result.body
    try:
        from google.rpc.status_pb2 import Status

        message = Status.FromString(body).message
        if message:
            return message
    except Exception:  # noqa: BLE001 - not protobuf: fall back to text
        pass
    return body[:200].decode("utf-8", "replace").strip() or str(result.reason or "")


# --- the sink --------------------------------------------------------------------------------------


@dataclass(slots=True)
class OtlpSinkStats:
    records_delivered: int = 0  # accepted by the collector (partial-success rejections excluded)
    records_partially_rejected: int = 0  # partial_success.rejected_log_records
    records_rejected: int = 0  # in batches that raised BatchRejected
    batches_rejected: int = 0
    requests_sent: int = 0
    retries: int = 0


class OtlpSink(Sink):
    name = "otlp"

    def __init__(self, settings: OtlpSettings, *, transport: Transport | None = None) -> None:
        self.settings = settings
        self.stats = OtlpSinkStats()
        self._encoder = LogsRequestEncoder(settings.resource)
        self._transport = transport
        self._closed = asyncio.Event()  # binds to a loop on first wait (Python >= 3.10)
        self._is_closed = False
        self._failing_since: float | None = None  # monotonic time of the first failure of a streak
        self._endpoint_shown = endpoint_without_credentials(settings.endpoint)

    @property
    def batch_timeout_s(self) -> float:
        return self.settings.batch_timeout_s

    @property
    def max_batch_records(self) -> int:
        return self.settings.batch_size

    @property
    def max_concurrent_sends(self) -> int:
        # OTLP needs no ordering between requests; two in flight let one batch be encoded while the
        # previous one is on the wire (the pipeline reads these three attributes).
        return self.settings.max_concurrent_sends

    async def start(self) -> None:
        if self._transport is None:
            self._transport = _build_transport(self.settings)

    accepts_otlp_records = True

    async def send(self, records: Sequence[LogRecord]) -> None:
        await self._send_chunks(records, self._encoder.encode)

    async def send_otlp_records(self, batch: OtlpLogRecords) -> None:
        resource = batch.resource
        await self._send_chunks(batch.records, lambda chunk: self._encoder.encode_records(chunk, resource))

    async def _send_chunks(self, items: Sequence[Any], encode: Callable[[Sequence[Any]], bytes]) -> None:
        """Send `items` (records, or encoded records) in requests of at most `batch_size`."""
        if not items:
            return
        if self._transport is None:
            await self.start()
        size = self.settings.batch_size
        for begin in range(0, len(items), size):
            await self._send_chunk(items[begin : begin + size], encode)

    async def close(self) -> None:
        self._is_closed = True
        self._closed.set()
        transport = self._transport
        if transport is not None:
            # Closing the gRPC channel cancels in-flight calls, so a blocked attempt ends now.
            await asyncio.to_thread(transport.close)

    # -- internals --

    async def _send_chunk(self, records: Sequence[Any], encode: Callable[[Sequence[Any]], bytes]) -> None:
        payload = await asyncio.to_thread(self._prepare, records, encode)
        outcome = await self._export_with_retry(payload, len(records))
        if isinstance(outcome, Rejected) and outcome.too_large and len(records) > 1:
            half = len(records) // 2
            await self._send_chunk(records[:half], encode)
            await self._send_chunk(records[half:], encode)
            return
        if isinstance(outcome, Rejected):
            self.stats.batches_rejected += 1
            self.stats.records_rejected += len(records)
            # No SINK_REJECTED here: the pipeline emits it (once) for every BatchRejected it catches.
            reason = f"{outcome.reason}: {outcome.detail}" if outcome.detail else outcome.reason
            raise BatchRejected(reason, rejected=len(records))
        assert isinstance(outcome, Accepted)
        rejected = min(outcome.rejected_records, len(records))
        self.stats.records_delivered += len(records) - rejected
        if rejected or outcome.message:
            self.stats.records_partially_rejected += rejected
            events.emit(
                Event.SINK_PARTIAL_SUCCESS,
                sink=self.name,
                reason="collector rejected some records" if rejected else "collector warning",
                rejected=rejected,
                records=len(records),
                detail=outcome.message,
            )

    def _prepare(self, records: Sequence[Any], encode: Callable[[Sequence[Any]], bytes]) -> bytes:
        assert self._transport is not None
        return self._transport.prepare(encode(records))

    async def _export_with_retry(self, payload: bytes, record_count: int) -> Accepted | Rejected:
        """Attempt until accepted, rejected for good, out of retry time, or closed."""
        assert self._transport is not None
        transport = self._transport
        attempt = 0
        started = time.monotonic()
        while True:
            self._raise_if_closed()
            self.stats.requests_sent += 1
            outcome = await asyncio.to_thread(transport.export, payload, self.settings.timeout_s)
            if isinstance(outcome, Retryable | Rejected) and self._is_closed:
                raise SinkClosed("OTLP sink closed before the batch was delivered")
            if not isinstance(outcome, Retryable):
                if isinstance(outcome, Accepted) and self._failing_since is not None:
                    events.emit(
                        Event.SINK_RECOVERED,
                        sink=self.name,
                        endpoint=self._endpoint_shown,
                        outage_s=round(time.monotonic() - self._failing_since, 3),
                    )
                    self._failing_since = None
                return outcome
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            attempt += 1
            self.stats.retries += 1
            delay = self._backoff_s(attempt, outcome.delay_s)
            elapsed = time.monotonic() - started
            limit = self.settings.max_retry_time_s
            if limit is not None and elapsed + delay > limit:
                return Rejected(
                    f"gave up after {elapsed:.1f}s of retries (--otlp-max-retry-time): {outcome.reason}",
                    outcome.detail,
                )
            events.emit(
                Event.SINK_RETRY,
                sink=self.name,
                reason=outcome.reason,
                detail=outcome.detail,
                attempt=attempt,
                retry_in_s=round(delay, 3),
                records=record_count,
                endpoint=self._endpoint_shown,
            )
            await self._sleep_unless_closed(delay)

    def _backoff_s(self, attempt: int, server_delay_s: float | None) -> float:
        if server_delay_s is not None:
            # The server knows best, but never wait longer than our own cap (a bogus hint must not stall us).
            return min(max(server_delay_s, 0.0), max(self.settings.max_backoff_s, 60.0))
        ceiling = min(self.settings.max_backoff_s, self.settings.initial_backoff_s * 2 ** (attempt - 1))
        # +/-20% jitter, as the SDK exporters do, so many sidecars do not retry in lockstep.
        return ceiling * random.uniform(0.8, 1.2)

    async def _sleep_unless_closed(self, delay_s: float) -> None:
        try:
            await asyncio.wait_for(self._closed.wait(), timeout=delay_s)
        except TimeoutError:
            return
        raise SinkClosed("OTLP sink closed before the batch was delivered")

    def _raise_if_closed(self) -> None:
        if self._is_closed:
            raise SinkClosed("OTLP sink closed before the batch was delivered")


def endpoint_without_credentials(endpoint: str) -> str:
    """The endpoint as shown in events: any user:password@ in the URL is masked (it is a secret)."""
    if "://" not in endpoint or "@" not in endpoint:
        return endpoint
    parts = urlsplit(endpoint)
    if "@" not in parts.netloc:
        return endpoint
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def _build_transport(settings: OtlpSettings) -> Transport:
    if settings.protocol is OtlpProtocol.GRPC:
        return GrpcTransport(settings)
    return HttpTransport(settings)
