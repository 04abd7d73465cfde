"""OTLP transports: one blocking export attempt of serialized `ExportLogsServiceRequest` bytes over
gRPC (`GrpcTransport`) or HTTP/protobuf (`HttpTransport`), and its outcome classified in the user's
words: `Accepted` (maybe partly), `Retryable`, `Rejected` (for good, or too large: split and retry)
or `Misconfigured` (retried until fixed). The policy over these outcomes (retry, split, truncate,
report) is the sink's (`sinks/otlp.py`); which status falls where is written there.

Both transports use public APIs only (grpc's channel, credentials and gzip channel compression; a
pooled requests session), and the pieces the exporter packages keep private are in `otlp_connection`.
Requests and responses are bytes both ways: `otlp_wire` writes the requests, `otlp_response` reads the
responses, google.rpc.Status and RetryInfo, so protobuf is never imported. Header values are secrets: never in reasons or reprs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from logsidecar.encoding.otlp_response import (
    ResponseDecodeError,
    export_logs_response,
    retry_delay_s,
    rpc_status,
)
from logsidecar.sinks.otlp_connection import (
    GRPC_CHANNEL_OPTIONS,
    USER_AGENT,
    HttpPoster,
    HttpResult,
    grpc_credentials,
    grpc_gateway_options,
    grpc_target,
    import_requests,
)
from logsidecar.sinks.otlp_settings import Compression, OtlpProtocol, OtlpSettings

_LOGS_EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


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

    def watch_reconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Until the returned function is called, call `callback` (from any thread) when a connection
        to the collector that was down is up again; a transport that cannot tell never calls it."""
        ...

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


# The longest grpc waits between reconnection attempts (+/-20 % jitter): with round_robin, how long
# after a collector's return the channel is READY again at most (`GrpcTransport.watch_reconnect`).
GRPC_MAX_RECONNECT_BACKOFF_MS = 2000


class GrpcTransport:
    """Unary LogsService/Export calls on one long-lived channel (thread-safe, reconnects by itself)."""

    # Retryable per the OTLP spec; RESOURCE_EXHAUSTED only with RetryInfo (handled below).
    _RETRYABLE = frozenset(
        {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"}
    )

    def __init__(self, settings: OtlpSettings) -> None:
        import grpc

        self._grpc = grpc
        target, secure = grpc_target(settings)
        options = [
            *GRPC_CHANNEL_OPTIONS,
            *grpc_gateway_options(settings),
            # grpc's own reconnect backoff grows to 120 s by default: after a collector restart we
            # would wait up to two minutes; our retry loop already paces attempts.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", GRPC_MAX_RECONNECT_BACKOFF_MS),
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
            # bytes both ways: otlp_wire serialized the request, otlp_response reads the answer
            request_serializer=None,
            response_deserializer=None,
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
        return _accepted(response)

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

    def watch_reconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        # round_robin reconnects in the background (grpc's reconnect backoff, see above) and says
        # READY the moment the collector is back; pick_first goes IDLE and waits for the next call.
        # Watched only while asked: grpc polls the state on a thread, 5 times a second.
        ready = self._grpc.ChannelConnectivity.READY
        was_down = False

        def changed(state: Any) -> None:
            nonlocal was_down
            if state is not ready:
                was_down = True
            elif was_down:  # not READY as first seen: a channel that never went down is no news
                was_down = False
                callback()

        self._channel.subscribe(changed, try_to_connect=False)
        return lambda: self._channel.unsubscribe(changed)

    def close(self) -> None:
        self._channel.close()


def _says_too_large(detail: str) -> bool:
    lowered = detail.lower()
    return "larger than max" in lowered or "too large" in lowered


def _accepted(body: bytes) -> Accepted:
    try:
        partial = export_logs_response(body)
    except ResponseDecodeError:  # the collector said OK: an unreadable answer does not undo that
        return Accepted()
    return Accepted(rejected_records=partial.rejected_log_records, message=partial.error_message)


def _grpc_retry_delay(error: Any) -> float | None:
    try:
        for key, value in error.trailing_metadata() or ():
            if key == "google.rpc.retryinfo-bin":
                return retry_delay_s(value)
    except Exception:  # noqa: BLE001 - a malformed hint is ignored, not fatal
        return None
    return None


# --- HTTP/protobuf ---------------------------------------------------------------------------------


class HttpTransport:
    """POST of the serialized request to the logs URL; the response body carries partial_success."""

    def __init__(self, settings: OtlpSettings) -> None:
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
            import gzip  # here: only this transport with gzip needs it (grpc compresses by itself)

            self._compress = gzip.compress

    def prepare(self, request: bytes) -> bytes:
        if self._gzip:
            # Level 1: log text still shrinks ~5x, at a fraction of the default level-9 CPU cost.
            return self._compress(request, compresslevel=1)
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
            return _accepted(result.body)
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

    def watch_reconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        return _nothing_to_stop  # a connection is made per request when needed: nothing to watch

    def close(self) -> None:
        self._poster.close()


def _nothing_to_stop() -> None:
    pass


def _is_invalid_header(error: BaseException | None) -> bool:
    return isinstance(error, import_requests().exceptions.InvalidHeader)


def _session_keeping_ca_file(ca_file: str | None) -> Any:
    """A requests Session on which an explicit CA file wins. Plain requests lets REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE in the environment override `Session.verify` (psf/requests#3829, #4726), which would
    silently ignore --otlp-ca-file in many containers. Proxies and the rest of the env still apply."""
    import_requests()  # first: without a character detector (see there); the import below is then a lookup
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
        message = rpc_status(body).message
        if message:
            return message
    except ResponseDecodeError:  # not protobuf: fall back to text
        pass
    return body[:200].decode("utf-8", "replace").strip() or str(result.reason or "")


def build_transport(settings: OtlpSettings) -> Transport:
    if settings.protocol is OtlpProtocol.GRPC:
        return GrpcTransport(settings)
    return HttpTransport(settings)
