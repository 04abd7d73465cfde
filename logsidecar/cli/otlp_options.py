"""The OTLP output's command-line options and their resolution against the standard OTEL_* environment.

Two names are the public surface, used by any command that can write to OTLP (`logsidecar tail
--output otlp`):

- `otlp_options`: a click decorator adding `--otlp-*` and `--service-name` to a command. Every option
  defaults to None so that "not given on the command line" can fall back to the environment.
- `build_otlp_sink(**kwargs) -> Sink`: resolves flags > OTEL_* environment > defaults into one
  `OtlpSettings` and builds the sink. Keyword names are the click parameter names below; unknown keys
  are ignored so a command may pass its whole keyword dict.

Environment variables honoured, per the OpenTelemetry "OTLP Exporter Configuration" specification
(the signal-specific OTEL_EXPORTER_OTLP_LOGS_* variable wins over the generic OTEL_EXPORTER_OTLP_*):
ENDPOINT, PROTOCOL, HEADERS, CERTIFICATE, CLIENT_CERTIFICATE, CLIENT_KEY, COMPRESSION, TIMEOUT
(milliseconds), INSECURE; plus OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.

Invariants:
- Endpoints: the generic OTEL_EXPORTER_OTLP_ENDPOINT is a base URL; for http/protobuf `v1/logs` is
  appended to it. A signal-specific endpoint (env OTEL_EXPORTER_OTLP_LOGS_ENDPOINT) is used as is.
  `--otlp-endpoint` follows the same rule as the generic variable when it has no path (or just "/"), and
  is used as is when it names a path, which is what users mean either way.
- Protocol default: grpc. (The specification suggests http/protobuf as an SDK default; we deviate on
  purpose: gRPC is our fastest path, measured by benchmarks/otlp_throughput.py, and port 4317 is what a
  collector listens on out of the box. Set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf to change it.)
- Header values are secrets: they are never part of an exception message, repr or log line
  (`logsidecar.redact` knows them). They are checked at start-up: a value HTTP/gRPC cannot carry
  (CR, LF, NUL, non-ASCII) is an error naming the header, never showing the value.
- Credentials in the endpoint URL (`http://user:pw@host`, or `user:pw@host:4317` for gRPC) become
  an explicit `authorization: Basic ...` header and leave the URL, so no transport error can quote
  them; given together with an `authorization` header they are an error (never a silent override).
- Resource: service.name is "apache-httpd" unless OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME or
  --service-name (each overriding the previous) says otherwise; host.name is this host's name.
"""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import click

from logsidecar import redact
from logsidecar.config import endpoint_credentials, header_problem, parse_size
from logsidecar.sinks.base import Sink
from logsidecar.sinks.otlp_fit import DEFAULT_GRPC_MAX_REQUEST_BYTES, DEFAULT_HTTP_MAX_REQUEST_BYTES
from logsidecar.sinks.otlp_settings import (
    DEFAULT_SERVICE_NAME,
    Compression,
    OtlpProtocol,
    OtlpSettings,
)

__all__ = ["otlp_options", "build_otlp_sink", "resolve_otlp_settings", "OTLP_PARAMETER_NAMES"]

F = TypeVar("F", bound=Callable[..., Any])

#: The keyword names `otlp_options` adds to a command (and `build_otlp_sink` reads).
OTLP_PARAMETER_NAMES = (
    "otlp_endpoint",
    "otlp_protocol",
    "otlp_header",
    "otlp_ca_file",
    "otlp_client_cert",
    "otlp_client_key",
    "otlp_insecure",
    "otlp_compression",
    "otlp_timeout",
    "otlp_batch_size",
    "otlp_batch_timeout",
    "otlp_max_retry_time",
    "otlp_max_request_bytes",
    "service_name",
)

DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_BATCH_SIZE = 2048
DEFAULT_BATCH_TIMEOUT_S = 0.2


class _KeyValueParam(click.ParamType):
    """KEY=VALUE; the value is a secret, so it is never echoed in an error message."""

    name = "KEY=VALUE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition("=")
        if not sep or not key.strip():
            self.fail("expected KEY=VALUE (value not shown)", param, ctx)
        return key.strip(), val.strip()


class _SizeParam(click.ParamType):
    """A size such as 4MiB or 1000000 (bytes)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def otlp_options(command: F) -> F:
    """Add the OTLP output options to a click command (see module docstring)."""
    options = [
        click.option(
            "--otlp-endpoint",
            metavar="URL",
            help="OTLP receiver, e.g. http://collector:4317 (gRPC) or http://collector:4318 (HTTP; "
            "/v1/logs is appended when no path is given). [env: OTEL_EXPORTER_OTLP_(LOGS_)ENDPOINT]",
        ),
        click.option(
            "--otlp-protocol",
            type=click.Choice([p.value for p in OtlpProtocol]),
            help="Transport. [default: grpc; env: OTEL_EXPORTER_OTLP_(LOGS_)PROTOCOL]",
        ),
        click.option(
            "--otlp-header",
            type=_KeyValueParam(),
            multiple=True,
            help="Extra request header (e.g. authorization=Bearer ...), repeatable; values are never "
            "logged. [env: OTEL_EXPORTER_OTLP_(LOGS_)HEADERS]",
        ),
        click.option(
            "--otlp-ca-file",
            type=click.Path(exists=True, dir_okay=False),
            help="PEM CA bundle to verify the receiver's TLS certificate (TLS is used for https:// endpoints, "
            "and for gRPC endpoints without a scheme unless --otlp-insecure). [env: OTEL_EXPORTER_OTLP_(LOGS_)CERTIFICATE]",
        ),
        click.option(
            "--otlp-client-cert",
            type=click.Path(exists=True, dir_okay=False),
            help="PEM client certificate for mutual TLS. [env: OTEL_EXPORTER_OTLP_(LOGS_)CLIENT_CERTIFICATE]",
        ),
        click.option(
            "--otlp-client-key",
            type=click.Path(exists=True, dir_okay=False),
            help="PEM client private key for mutual TLS. [env: OTEL_EXPORTER_OTLP_(LOGS_)CLIENT_KEY]",
        ),
        click.option(
            "--otlp-insecure",
            is_flag=True,
            default=None,
            help="gRPC: plaintext when the endpoint has no scheme (an http:// or https:// scheme decides "
            "by itself). [env: OTEL_EXPORTER_OTLP_(LOGS_)INSECURE]",
        ),
        click.option(
            "--otlp-compression",
            type=click.Choice([c.value for c in Compression]),
            help="Request compression. [default: none, as the OTel spec says; env: OTEL_EXPORTER_OTLP_(LOGS_)COMPRESSION]",
        ),
        click.option(
            "--otlp-timeout",
            type=click.FloatRange(min=0.001),
            metavar="SECONDS",
            help="Deadline of one export request, in seconds (the env var is in milliseconds). "
            "[default: 10; env: OTEL_EXPORTER_OTLP_(LOGS_)TIMEOUT]",
        ),
        click.option(
            "--otlp-batch-size",
            type=click.IntRange(min=1),
            metavar="RECORDS",
            help=f"Most log records in one export request. [default: {DEFAULT_BATCH_SIZE}]",
        ),
        click.option(
            "--otlp-batch-timeout",
            type=click.FloatRange(min=0.0),
            metavar="SECONDS",
            help=f"How long lines may wait to fill a batch before it is sent. [default: {DEFAULT_BATCH_TIMEOUT_S}]",
        ),
        click.option(
            "--otlp-max-retry-time",
            type=click.FloatRange(min=0.0),
            metavar="SECONDS",
            help="Give up retrying a batch after this long (it is then reported as rejected). "
            "[default: retry forever; the log file is the buffer]",
        ),
        click.option(
            "--otlp-max-request-bytes",
            type=_SizeParam(),
            metavar="SIZE",
            help="Most bytes in one export request (serialized, before compression): bigger batches "
            "are split, a single bigger record is cut to fit and flagged logsidecar.truncated. "
            f"[default: {DEFAULT_GRPC_MAX_REQUEST_BYTES // 1024 // 1024}MiB for gRPC (its default "
            f"receive limit), {DEFAULT_HTTP_MAX_REQUEST_BYTES // 1024 // 1024}MiB for HTTP; "
            "env: LOGSIDECAR_OTLP_MAX_REQUEST_BYTES]",
        ),
        click.option(
            "--service-name",
            metavar="NAME",
            help=f"Resource service.name. [default: {DEFAULT_SERVICE_NAME}; env: OTEL_SERVICE_NAME]",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_otlp_sink(**otlp_kwargs: Any) -> Sink:
    """Resolve flags and environment into settings and build the OTLP sink (not started yet).
    Raises click.UsageError for an invalid combination (e.g. an unknown protocol in the env)."""
    from logsidecar.sinks.otlp import OtlpSink

    return OtlpSink(resolve_otlp_settings(otlp_kwargs))


def resolve_otlp_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, hostname: str | None = None
) -> OtlpSettings:
    """flags > OTEL_* environment > defaults. Pure apart from reading `environ` (default os.environ)."""
    env = os.environ if environ is None else environ

    def flag(name: str) -> Any:
        value = flags.get(name)
        return None if value in (None, ()) else value

    def env_value(suffix: str) -> str | None:
        for name in (f"OTEL_EXPORTER_OTLP_LOGS_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
            value = env.get(name, "").strip()
            if value:
                return value
        return None

    protocol_text = flag("otlp_protocol") or env_value("PROTOCOL") or OtlpProtocol.GRPC.value
    try:
        protocol = OtlpProtocol(protocol_text)
    except ValueError:
        raise click.UsageError(
            f"unsupported OTLP protocol {protocol_text!r}; expected one of: "
            + ", ".join(p.value for p in OtlpProtocol)
        ) from None

    endpoint, credentials = endpoint_credentials(_resolve_endpoint(protocol, flag("otlp_endpoint"), env))
    _check_endpoint(protocol, endpoint)

    headers: dict[str, str] = {}
    env_headers = env_value("HEADERS")
    if env_headers:
        headers.update(_parse_key_values(env_headers, what="OTEL_EXPORTER_OTLP_HEADERS"))
    for key, value in flag("otlp_header") or ():
        headers[key] = value
    # gRPC metadata keys must be lower case; HTTP does not care.
    headers = {k.lower(): v for k, v in headers.items()}
    redact.remember_header_values(headers)
    problems = [p for p in (header_problem(k, v) for k, v in headers.items()) if p]
    if problems:
        raise click.UsageError("OTLP " + "; ".join(problems))
    if credentials is not None:
        # Credentials in the URL become the authorization header, explicitly: the HTTP client would
        # otherwise replace an explicit header with them silently, and gRPC would put them in the
        # target (and in its error messages). Both at once is ambiguous: refused.
        redact.remember(credentials)
        redact.remember(credentials.partition(":")[2])  # the password alone
        if "authorization" in headers:
            raise click.UsageError(
                "the OTLP endpoint has user:password@ credentials and an 'authorization' header is "
                "set too: give only one (the URL's credentials would become the authorization header)"
            )
        user, _, password = credentials.partition(":")
        token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
        headers["authorization"] = f"Basic {token}"
        redact.remember_header_values(headers)

    insecure_flag = flag("otlp_insecure")
    if insecure_flag is None:
        insecure_env = env_value("INSECURE")
        insecure = insecure_env is not None and insecure_env.lower() == "true"
    else:
        insecure = bool(insecure_flag)

    compression_text = flag("otlp_compression") or env_value("COMPRESSION") or Compression.NONE.value
    try:
        compression = Compression(compression_text.lower())
    except ValueError:
        raise click.UsageError(
            f"unsupported OTLP compression {compression_text!r}; expected gzip or none"
        ) from None

    timeout_s = flag("otlp_timeout")
    if timeout_s is None:
        timeout_env = env_value("TIMEOUT")
        try:
            timeout_s = float(timeout_env) / 1000.0 if timeout_env else DEFAULT_TIMEOUT_S
        except ValueError:
            raise click.UsageError(
                f"OTEL_EXPORTER_OTLP_TIMEOUT must be milliseconds, got {timeout_env!r}"
            ) from None
        if timeout_s <= 0:
            timeout_s = DEFAULT_TIMEOUT_S

    resource: dict[str, Any] = {"service.name": DEFAULT_SERVICE_NAME}
    resource["host.name"] = hostname if hostname is not None else socket.gethostname()
    resource_env = env.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()
    if resource_env:
        resource.update(_parse_key_values(resource_env, what="OTEL_RESOURCE_ATTRIBUTES"))
    service_name = flag("service_name") or env.get("OTEL_SERVICE_NAME", "").strip()
    if service_name:
        resource["service.name"] = service_name

    return OtlpSettings(
        endpoint=endpoint,
        protocol=protocol,
        headers=headers,
        ca_file=flag("otlp_ca_file") or env_value("CERTIFICATE"),
        client_cert_file=flag("otlp_client_cert") or env_value("CLIENT_CERTIFICATE"),
        client_key_file=flag("otlp_client_key") or env_value("CLIENT_KEY"),
        insecure=insecure,
        compression=compression,
        timeout_s=float(timeout_s),
        batch_size=int(flag("otlp_batch_size") or DEFAULT_BATCH_SIZE),
        batch_timeout_s=float(
            flag("otlp_batch_timeout") if flag("otlp_batch_timeout") is not None else DEFAULT_BATCH_TIMEOUT_S
        ),
        max_retry_time_s=flag("otlp_max_retry_time"),
        max_request_bytes=flag("otlp_max_request_bytes"),
        resource=resource,
    )


def _resolve_endpoint(protocol: OtlpProtocol, flag_endpoint: str | None, env: Mapping[str, str]) -> str:
    if flag_endpoint:
        return _signal_url(protocol, flag_endpoint, only_if_no_path=True)
    logs_endpoint = env.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "").strip()
    if logs_endpoint:
        return logs_endpoint  # the spec: signal-specific endpoints are used as is
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:
        return _signal_url(protocol, base, only_if_no_path=False)
    if protocol is OtlpProtocol.GRPC:
        return DEFAULT_GRPC_ENDPOINT
    return _signal_url(protocol, DEFAULT_HTTP_ENDPOINT, only_if_no_path=False)


def _check_endpoint(protocol: OtlpProtocol, endpoint: str) -> None:
    """Fail at start-up on an endpoint no attempt could ever reach (instead of retrying forever)."""
    parts = urlsplit(endpoint) if "://" in endpoint else None
    if protocol is OtlpProtocol.HTTP_PROTOBUF:
        if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise click.UsageError(
                f"the OTLP/HTTP endpoint must be an http:// or https:// URL, got {redact.redact(endpoint)!r}"
            )
        return
    if parts is not None and (parts.scheme.lower() not in ("http", "https") or not parts.netloc):
        raise click.UsageError(
            "the OTLP/gRPC endpoint must be host:port or an http:// or https:// URL, "
            f"got {redact.redact(endpoint)!r}"
        )
    if parts is None and not endpoint.strip():
        raise click.UsageError("the OTLP/gRPC endpoint is empty")


def _signal_url(protocol: OtlpProtocol, base: str, *, only_if_no_path: bool) -> str:
    """For HTTP, the logs URL under a base endpoint: base + "/v1/logs" (one slash between)."""
    if protocol is OtlpProtocol.GRPC:
        return base
    if only_if_no_path and urlsplit(base).path not in ("", "/"):
        return base
    return base.rstrip("/") + "/v1/logs"


def _parse_key_values(text: str, *, what: str) -> dict[str, str]:
    """`k1=v1,k2=v2` with percent-encoded values (W3C Baggage style, as the OTel spec says).
    Malformed members are skipped; the error never shows a value (they may be secrets)."""
    result: dict[str, str] = {}
    for member in text.split(","):
        if not member.strip():
            continue
        key, sep, value = member.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"{what}: malformed member (expected key=value; value not shown)")
        result[unquote(key.strip())] = unquote(value.strip())
    return result
