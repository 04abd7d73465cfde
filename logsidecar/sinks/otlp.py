"""The OTLP sink: records → OpenTelemetry collector, over gRPC or HTTP/protobuf; delivered or retried.

Contract (see `base.Sink`): `send(records)` returns only once the collector accepted every record.
- Retryable failures are retried inside `send`, with exponential backoff and jitter, for as long as it
  takes (or until `max_retry_time_s`, or `close()`). Retryable, per the OTLP specification: gRPC
  UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, CANCELLED, OUT_OF_RANGE, DATA_LOSS, and RESOURCE_EXHAUSTED when
  the server sent RetryInfo; HTTP 429, 502, 503, 504; connection errors, timeouts and TLS handshake failures
  (a collector restarting with new certificates is a transient state; the reason in the event says TLS).
  A server-supplied delay (gRPC RetryInfo, HTTP Retry-After) is honoured. Each failed attempt emits
  SINK_RETRY (selflog rate-limits repeats of the same reason); the first success after failures emits
  SINK_RECOVERED. Statuses the specification calls non-retryable but that say nothing against the
  data (HTTP 500, gRPC INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED without RetryInfo ...) are retried too:
  only a batch rejected as malformed may be dropped.
- Configuration errors: authentication and permission (HTTP 401/403, gRPC UNAUTHENTICATED/
  PERMISSION_DENIED), no logs service at the endpoint (HTTP 404/405/415, gRPC UNIMPLEMENTED/NOT_FOUND),
  header values the transport cannot carry. They never drop data, whatever `max_retry_time_s`: the
  batch is retried with the capped backoff until the configuration is fixed (or `close()`), one
  SINK_MISCONFIGURED event says what to fix (per streak and reason), and every attempt's SINK_RETRY
  carries `misconfigured: true`, which makes the process unhealthy at once (`health.py`).
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
records straight into `ExportLogsServiceRequest` bytes (`encoding/otlp_wire`, ~6 µs/record, see there why not
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
from logsidecar.encoding.otlp_wire import LogsRequestEncoder
from logsidecar.events import Event
from logsidecar.record import LogRecord
from logsidecar.sinks.base import BatchRejected, OtlpLogRecords, RejectedRange, Sink, SinkCapabilities
from logsidecar.sinks.otlp_connection import (
    GRPC_CHANNEL_OPTIONS,
    USER_AGENT,
    HttpPoster,
    HttpResult,
    grpc_credentials,
)
from logsidecar.sinks.otlp_fit import (
    DEFAULT_GRPC_MAX_REQUEST_BYTES,
    DEFAULT_HTTP_MAX_REQUEST_BYTES,
    SMALLEST_TRUNCATION_BYTES,
    truncate_single_record,
)

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
    max_request_bytes: int | None = None  # None: the protocol's default (see otlp_fit)
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


@dataclass(frozen=True, slots=True)
class Misconfigured:
    """A configuration error: retried (the data is kept) until fixed; `fix` says how."""

    reason: str
    detail: str = ""
    fix: str = ""


Outcome = Accepted | Retryable | Rejected | Misconfigured


class Transport(Protocol):
    """One blocking export attempt of serialized ExportLogsServiceRequest bytes."""

    def prepare(self, request: bytes) -> bytes:
        """The bytes to put on the wire (compressed when the transport compresses itself); done once
        per batch, not once per attempt."""
        ...

    def export(self, payload: bytes, timeout_s: float) -> Outcome: ...

    def close(self) -> None: ...


# --- reasons that say what went wrong in the user's words -------------------------------------------

_FIX_AUTH = (
    "check the credentials the collector expects: the Authorization (or API key) header given with "
    "--otlp-header, OTEL_EXPORTER_OTLP_HEADERS / OTEL_EXPORTER_OTLP_LOGS_HEADERS or the output's "
    "'headers' in the configuration file, or user:password@ in the endpoint"
)
_FIX_ENDPOINT = (
    "check the endpoint (--otlp-endpoint, OTEL_EXPORTER_OTLP_(LOGS_)ENDPOINT) and the protocol "
    "(--otlp-protocol): gRPC usually listens on port 4317, HTTP on 4318 with the path /v1/logs"
)
_FIX_HEADERS = (
    "a header value cannot be sent (a newline, a control or non-ASCII character?): check "
    "--otlp-header, OTEL_EXPORTER_OTLP_HEADERS and the output's 'headers' in the configuration file"
)

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
            request_serializer=None,  # bytes are sent as they are: otlp_wire already serialized them
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
        if name in ("RESOURCE_EXHAUSTED", "OUT_OF_RANGE") and _says_too_large(detail):
            # grpc-core: RESOURCE_EXHAUSTED "Received message larger than max"; tonic (rotel):
            # OUT_OF_RANGE "decoded message length too large". Split, as for HTTP 413.
            return Rejected(f"request too large for collector ({status})", detail, too_large=True)
        if name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return Misconfigured(f"{_GRPC_REASONS[name]} ({status})", detail, _FIX_AUTH)
        if name in ("UNIMPLEMENTED", "NOT_FOUND"):
            return Misconfigured(f"{_GRPC_REASONS[name]} ({status})", detail, _FIX_ENDPOINT)
        if name == "INTERNAL" and "metadata" in detail.lower():
            # grpc refuses to send a header value it cannot carry ("Invalid metadata").
            return Misconfigured(f"request headers are invalid ({status})", detail, _FIX_HEADERS)
        if name == "INVALID_ARGUMENT":
            return Rejected(f"{_GRPC_REASONS[name]} ({status})", detail)
        delay = _grpc_retry_delay(error)
        if name == "RESOURCE_EXHAUSTED":
            reason = "collector is throttling" if delay is not None else "collector out of resources"
        elif name == "UNAVAILABLE":
            reason = _connection_reason(detail)
        elif name in self._RETRYABLE:
            reason = _GRPC_REASONS.get(name, "export failed")
        else:
            reason = "collector failed the export"  # INTERNAL, UNKNOWN ...: nothing says the data is bad
        return Retryable(f"{reason} ({status})", detail, delay)

    def close(self) -> None:
        self._channel.close()


def _says_too_large(detail: str) -> bool:
    lowered = detail.lower()
    return "larger than max" in lowered or "too large" in lowered


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
            if _is_invalid_header(result.error):
                # requests quotes the offending value in its message: not shown (it is a secret).
                return Misconfigured("request headers are invalid", "value not shown", _FIX_HEADERS)
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
        reason = f"{_HTTP_REASONS.get(status, 'collector failed the export')} (HTTP {status})"
        if status in (400, 413):
            return Rejected(reason, detail, too_large=status == 413)
        if status in (401, 403):
            return Misconfigured(reason, detail, _FIX_AUTH)
        if status in (404, 405, 415):
            return Misconfigured(reason, detail, _FIX_ENDPOINT)
        if 300 <= status < 400:  # not followed (see HttpPoster): the endpoint is not the logs URL
            return Misconfigured(f"collector redirects elsewhere (HTTP {status})", detail, _FIX_ENDPOINT)
        # 429, 502, 503, 504 (retryable per the spec), and any other status: nothing says the data
        # is bad, so it is kept and retried.
        return Retryable(reason, detail, result.retry_after_s())

    def close(self) -> None:
        self._poster.close()


def _is_invalid_header(error: BaseException | None) -> bool:
    from requests.exceptions import InvalidHeader

    return isinstance(error, InvalidHeader)


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
        self._closed = asyncio.Event()  # binds to a loop on first wait (Python >= 3.10)
        self._is_closed = False
        self._failing_since: float | None = None  # monotonic time of the first failure of a streak
        self._misconfigured: str | None = None  # the configuration error reported in this streak
        self._endpoint_shown = endpoint_without_credentials(settings.endpoint)
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
            self._transport = _build_transport(self.settings)

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
        self._is_closed = True
        self._closed.set()
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
        limit = self.max_request_bytes if limit is None else limit
        count = stop - start
        request = await asyncio.to_thread(encode, items[start:stop])
        if len(request) > limit:
            if count > 1:
                await self._split(items, start, stop, encode, rejected, limit)
                return
            request = await self._truncated(request, limit)
        payload = await asyncio.to_thread(self._transport.prepare, request)
        outcome = await self._export_with_retry(payload, count)
        if isinstance(outcome, Rejected) and outcome.too_large:
            # The collector's limit is below ours: the halves, or this record cut to half its size.
            # (The limit halves each time, so this ends even for a record that cannot be cut.)
            smaller = min(limit, len(request))
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
                Event.SINK_PARTIAL_SUCCESS,
                sink=self.name,
                reason="collector warning",
                records=count,
                detail=outcome.message,
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

    async def _export_with_retry(self, payload: bytes, record_count: int) -> Accepted | Rejected:
        """Attempt until accepted, rejected for good, out of retry time, or closed. A configuration
        error is retried however long it takes: the retry limit never turns it into lost data."""
        assert self._transport is not None
        transport = self._transport
        attempt = 0
        started = time.monotonic()
        while True:
            self._raise_if_closed()
            self.stats.requests_sent += 1
            outcome = await asyncio.to_thread(transport.export, payload, self.settings.timeout_s)
            if not isinstance(outcome, Accepted) and self._is_closed:
                raise SinkClosed("OTLP sink closed before the batch was delivered")
            if isinstance(outcome, Accepted | Rejected):
                if isinstance(outcome, Accepted) and self._failing_since is not None:
                    events.emit(
                        Event.SINK_RECOVERED,
                        sink=self.name,
                        endpoint=self._endpoint_shown,
                        outage_s=round(time.monotonic() - self._failing_since, 3),
                    )
                    self._failing_since = None
                    self._misconfigured = None
                return outcome
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            attempt += 1
            self.stats.retries += 1
            misconfigured = isinstance(outcome, Misconfigured)
            delay = self._backoff_s(attempt, outcome.delay_s if isinstance(outcome, Retryable) else None)
            elapsed = time.monotonic() - started
            limit = self.settings.max_retry_time_s
            if isinstance(outcome, Misconfigured):
                self._report_misconfigured(outcome)
            elif limit is not None and elapsed + delay > limit:
                return Rejected(
                    f"gave up after {elapsed:.1f}s of retries (--otlp-max-retry-time): {outcome.reason}",
                    outcome.detail,
                )
            else:
                self._misconfigured = None
            events.emit(
                Event.SINK_RETRY,
                sink=self.name,
                reason=outcome.reason,
                detail=outcome.detail,
                attempt=attempt,
                retry_in_s=round(delay, 3),
                records=record_count,
                endpoint=self._endpoint_shown,
                misconfigured=misconfigured,
            )
            await self._sleep_unless_closed(delay)

    def _report_misconfigured(self, outcome: Misconfigured) -> None:
        """One event per configuration error and streak (concurrent sends share it)."""
        if self._misconfigured == outcome.reason:
            return
        self._misconfigured = outcome.reason
        events.emit(
            Event.SINK_MISCONFIGURED,
            sink=self.name,
            endpoint=self._endpoint_shown,
            reason=outcome.reason,
            detail=outcome.detail,
            fix=outcome.fix,
            consequence="nothing is dropped: the lines stay unacknowledged and are retried (backoff up "
            f"to {self.settings.max_backoff_s:g}s); reading pauses once the in-flight budget is full",
        )

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


def _build_transport(settings: OtlpSettings) -> Transport:
    if settings.protocol is OtlpProtocol.GRPC:
        return GrpcTransport(settings)
    return HttpTransport(settings)
