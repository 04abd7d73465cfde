"""How the OTLP sinks reach a collector, on public grpc and requests APIs and the OTLP specification only.

The OpenTelemetry exporter packages keep these pieces in private names (`_load_credentials`,
`_OTLP_GRPC_CHANNEL_OPTIONS`, `_extract_retry_after`, `_is_retryable`, the `_requests` transport) that
appear, move and vanish between minor releases; each is a few lines, so we own them:
- `grpc_credentials`: TLS credentials from the OTEL_EXPORTER_OTLP_CERTIFICATE / _CLIENT_KEY /
  _CLIENT_CERTIFICATE files (`grpc.ssl_channel_credentials`);
- `GRPC_CHANNEL_OPTIONS`: the User-Agent the OTLP specification asks exporters to send;
- `grpc_gateway_options`: round_robin load balancing and keepalive, what a fleet needs toward a gateway;
- `HttpPoster`: one POST on a pooled requests session, never raising: a response or the error;
- `grpc_target`: host:port (or a gRPC name such as `dns:///gateway:4317`) and TLS or not, from the
  endpoint as the OTLP specification reads it;
- `retry_after_s` (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) and `RETRYABLE_HTTP_STATUSES`
  (the OTLP/HTTP specification: 429, 502, 503, 504).
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

from logsidecar import __version__
from logsidecar.sinks.otlp_settings import OtlpSettings, is_grpc_name

_log = logging.getLogger(__name__)

# The OTLP specification: exporters SHOULD send a User-Agent naming the exporter and its version.
USER_AGENT = f"logsidecar/{__version__}"

# Keepalive pings while exports are in flight: a gateway Pod that vanished without closing the
# connection (node lost, network partition) is noticed within time + timeout, and the channel
# reconnects (re-resolving the name) instead of failing every export at its deadline until TCP gives
# up (~15 min). 30 s: the OTel Collector's gRPC server (grpc-go) counts pings closer than its
# enforcement `min_time` (default 5 min) as strikes, but each response it sends clears them, and
# grpc-core sends at most 2 pings without data, so a sidecar with traffic is never sent GOAWAY; pings
# on an idle channel are not sent (permit_without_calls 0), which that server refuses by default.
GRPC_KEEPALIVE_TIME_MS = 30_000
GRPC_KEEPALIVE_TIMEOUT_MS = 10_000

GRPC_KEEPALIVE_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.keepalive_time_ms", GRPC_KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", GRPC_KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 0),
)

# grpc appends its own "grpc-python/x grpc-c/y" to the primary user agent.
GRPC_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (("grpc.primary_user_agent", USER_AGENT),)


def grpc_gateway_options(settings: OtlpSettings) -> tuple[tuple[str, Any], ...]:
    """Channel options toward a gateway: keepalive and the load-balancing policy. grpc's default
    pick_first sends every request of a channel to the first address the name resolves to, so a fleet
    behind a headless Service (`dns:///gateway:4317`, one address per Pod) would pin each sidecar to
    one gateway Pod; round_robin (our default) spreads requests over every connected address and skips
    one that is down. With a single address both behave the same."""
    options = [("grpc.lb_policy_name", settings.load_balancing.value), *GRPC_KEEPALIVE_OPTIONS]
    scheme, _, addresses = settings.endpoint.strip().partition(":")
    if scheme.lower() in ("ipv4", "ipv6"):
        # grpc would send the whole address list as the HTTP/2 :authority, which strict servers
        # (rotel: tonic/h2) refuse with RST_STREAM PROTOCOL_ERROR; the first address is a valid one.
        options.append(("grpc.default_authority", addresses.split(",")[0]))
    return tuple(options)


# OTLP/HTTP: "429, 502, 503 and 504 ... are retryable"; every other 4xx/5xx is not.
RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})


def grpc_credentials(ca_file: str | None, client_key_file: str | None, client_cert_file: str | None) -> Any:
    """`grpc.ChannelCredentials` for TLS: the CA bundle to trust (None: the system's roots) and the
    client key and certificate for mutual TLS. A file that cannot be read is left out with a warning,
    as the exporter packages do: the connection then fails (or not) on its own terms, retried, and the
    warning names the file."""
    import grpc

    return grpc.ssl_channel_credentials(
        root_certificates=_read_pem(ca_file, "CA certificate"),
        private_key=_read_pem(client_key_file, "client key"),
        certificate_chain=_read_pem(client_cert_file, "client certificate"),
    )


def _read_pem(path: str | None, what: str) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        _log.warning("cannot read the OTLP %s file %s: %s; going on without it", what, path, error.strerror)
        return None


def retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header value (RFC 9110 §10.2.3): delay-seconds, or an
    HTTP-date to wait until (a date in the past means now). None for a missing or unparsable value,
    so the caller's own backoff applies. Decimal and negative numbers are accepted as the exporter
    packages accept them (a negative delay is 0): a server that sends one still means "wait"."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    import email.utils  # here: ~0.2 MiB of email modules an OTLP/gRPC sink never needs

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110: HTTP-dates are in GMT; an obsolete form may come without zone
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


@dataclass(frozen=True, slots=True)
class HttpResult:
    """What one POST gave: a status with its headers and body, or (status None) the error."""

    status: int | None
    reason: str = ""
    headers: Mapping[str, str] | None = None
    body: bytes = b""
    error: BaseException | None = None

    def retry_after_s(self) -> float | None:
        return retry_after_s((self.headers or {}).get("retry-after"))


# requests imports a character detector (charset_normalizer, or chardet) at import time, and
# charset_normalizer imports every codec of the standard library (~90 modules): ~3.4 MiB of RSS for
# OTLP/HTTP (fp-venv, idle, 42.0 -> 38.6 MiB). It is only ever used to guess the encoding of a response
# without a charset (`Response.text`, `apparent_encoding`); we read `Response.content`, bytes, and
# requests documents its fallback without one: utf-8.
_CHARACTER_DETECTORS = ("charset_normalizer", "chardet")


def import_requests() -> Any:
    """The requests module, imported without a character detector when it is not loaded yet. A None
    in sys.modules is the import system's documented way to make an import fail; requests catches the
    ImportError (and warns, silenced here). The entries are removed at once, so a later import of the
    detector by anyone else loads it."""
    if "requests" in sys.modules:
        return sys.modules["requests"]
    blocked = [name for name in _CHARACTER_DETECTORS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Unable to find acceptable character detection")
            import requests
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return requests


class HttpPoster:
    """POSTs on one pooled requests session (thread-safe for our use: one request per call, no shared
    mutable request state). TLS: `verify` is the CA file to trust (True: requests' default bundle),
    `cert` the client certificate, or (certificate, key). Redirects are not followed: a collector
    that redirects is misconfigured, and following would resend the payload elsewhere."""

    def __init__(self, session: Any, *, verify: bool | str = True, cert: str | tuple[str, str] | None = None):
        self._session = session
        session.verify = verify
        if cert is not None:
            session.cert = cert

    def post(self, url: str, *, headers: Mapping[str, str], data: bytes, timeout_s: float) -> HttpResult:
        try:
            response = self._session.post(
                url, headers=headers, data=data, timeout=timeout_s, allow_redirects=False
            )
            body = response.content or b""
        except Exception as error:  # noqa: BLE001 - connection, TLS, timeout ...: the caller classifies it
            return HttpResult(status=None, error=error)
        return HttpResult(
            status=response.status_code, reason=response.reason or "", headers=response.headers, body=body
        )

    def close(self) -> None:
        self._session.close()


def grpc_target(settings: OtlpSettings) -> tuple[str, bool]:
    """The grpc target and whether to use TLS. The spec: an http/https scheme decides; without a
    scheme, and for a gRPC name (`dns:///host:port`, kept as is), `insecure` decides (TLS by default)."""
    endpoint = settings.endpoint.strip()
    if is_grpc_name(endpoint):
        return endpoint, not settings.insecure
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        return parts.netloc, parts.scheme.lower() != "http"
    return endpoint.rstrip("/"), not settings.insecure
