"""The one reader of the standard OpenTelemetry variables, and the resolution of an OTLP output's
settings: flags > OTEL_* environment > defaults, into the `OtlpSettings` a sink is built from.

Environment variables honoured, per the OpenTelemetry "OTLP Exporter Configuration" specification
(the signal-specific OTEL_EXPORTER_OTLP_LOGS_* variable wins over the generic OTEL_EXPORTER_OTLP_*):
ENDPOINT, PROTOCOL, HEADERS, CERTIFICATE, CLIENT_CERTIFICATE, CLIENT_KEY, COMPRESSION, TIMEOUT
(milliseconds), INSECURE; plus OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES. Derived metrics read
the OTEL_EXPORTER_OTLP_METRICS_* variant (`resolve_metrics_settings`).

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
  --service-name (each overriding the previous) says otherwise; host.name is this host's name; the
  Pod's k8s.* attributes come from the Downward API variables (`settings.kubernetes_env`), below
  OTEL_RESOURCE_ATTRIBUTES.
- An invalid combination raises ConfigError (one line); the command line shows it as a usage error.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from logsidecar import redact
from logsidecar.settings.errors import ConfigError
from logsidecar.settings.kubernetes_env import kubernetes_resource
from logsidecar.settings.model import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BATCH_TIMEOUT_S,
    DEFAULT_GRPC_ENDPOINT,
    DEFAULT_HTTP_ENDPOINT,
    DEFAULT_TIMEOUT_S,
)
from logsidecar.settings.transport import endpoint_credentials, endpoint_problem, header_problem
from logsidecar.settings.units import key_values
from logsidecar.sinks.otlp_settings import (
    DEFAULT_SERVICE_NAME,
    Compression,
    LoadBalancing,
    OtlpProtocol,
    OtlpSettings,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BATCH_TIMEOUT_S",
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_HTTP_ENDPOINT",
    "DEFAULT_TIMEOUT_S",
    "EXPORTER_FIELDS",
    "OTEL_VARIABLES",
    "exporter_variable",
    "parse_otel_key_values",
    "resolve_metrics_settings",
    "resolve_otlp_settings",
    "signal_url",
]

# OtlpOutput field -> suffix of OTEL_EXPORTER_OTLP_(LOGS_)<suffix> (a plain value each)
EXPORTER_FIELDS = {
    "endpoint": "ENDPOINT",
    "protocol": "PROTOCOL",
    "ca_file": "CERTIFICATE",
    "client_cert": "CLIENT_CERTIFICATE",
    "client_key": "CLIENT_KEY",
    "compression": "COMPRESSION",
    "insecure": "INSECURE",
}
#: The standard variable that also sets an option (by `tail` parameter name), below LOGSIDECAR_*.
OTEL_VARIABLES = {
    **{f"otlp_{field}": f"OTEL_EXPORTER_OTLP_(LOGS_){suffix}" for field, suffix in EXPORTER_FIELDS.items()},
    "otlp_timeout": "OTEL_EXPORTER_OTLP_(LOGS_)TIMEOUT (milliseconds)",
    "otlp_header": "OTEL_EXPORTER_OTLP_(LOGS_)HEADERS",
    "service_name": "OTEL_SERVICE_NAME",
    "resource": "OTEL_RESOURCE_ATTRIBUTES",
}
_LOGS_PREFIX = "OTEL_EXPORTER_OTLP_LOGS_"
_METRICS_PREFIX = "OTEL_EXPORTER_OTLP_METRICS_"


def exporter_variable(env: Mapping[str, str], suffix: str) -> tuple[str, str] | None:
    """(name, value) of OTEL_EXPORTER_OTLP_LOGS_<suffix>, else of OTEL_EXPORTER_OTLP_<suffix>, the
    first that is set to more than blanks; the value as given (not stripped)."""
    for name in (_LOGS_PREFIX + suffix, f"OTEL_EXPORTER_OTLP_{suffix}"):
        value = env.get(name)
        if value is not None and value.strip():
            return name, value
    return None


def parse_otel_key_values(text: str, *, what: str) -> dict[str, str]:
    """`k1=v1,k2=v2` with percent-encoded keys and values, as the OTel specification says. A
    malformed member is an error that never shows a value (they may be secrets)."""
    values, malformed = key_values(text, percent_encoded=True)
    if malformed:
        raise ConfigError([f"{what}: malformed member (expected key=value; value not shown)"])
    return values


def resolve_otlp_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, hostname: str | None = None
) -> OtlpSettings:
    """flags > OTEL_* environment > defaults. Pure apart from reading `environ` (default os.environ)."""
    env = os.environ if environ is None else environ

    def flag(name: str) -> Any:
        value = flags.get(name)
        return None if value in (None, ()) else value

    def env_value(suffix: str) -> str | None:
        found = exporter_variable(env, suffix)
        return found[1].strip() if found is not None else None

    protocol_text = flag("otlp_protocol") or env_value("PROTOCOL") or OtlpProtocol.GRPC.value
    try:
        protocol = OtlpProtocol(protocol_text)
    except ValueError:
        raise ConfigError(
            [
                f"unsupported OTLP protocol {protocol_text!r}; expected one of: "
                + ", ".join(p.value for p in OtlpProtocol)
            ]
        ) from None

    endpoint, credentials = endpoint_credentials(_resolve_endpoint(protocol, flag("otlp_endpoint"), env))
    _check_endpoint(protocol, endpoint)

    headers: dict[str, str] = {}
    env_headers = env_value("HEADERS")
    if env_headers:
        headers.update(parse_otel_key_values(env_headers, what="OTEL_EXPORTER_OTLP_HEADERS"))
    for key, value in flag("otlp_header") or ():
        headers[key] = value
    # gRPC metadata keys must be lower case; HTTP does not care.
    headers = {k.lower(): v for k, v in headers.items()}
    redact.remember_header_values(headers)
    problems = [p for p in (header_problem(k, v) for k, v in headers.items()) if p]
    if problems:
        raise ConfigError(["OTLP " + "; ".join(problems)])
    if credentials is not None:
        # Credentials in the URL become the authorization header, explicitly: the HTTP client would
        # otherwise replace an explicit header with them silently, and gRPC would put them in the
        # target (and in its error messages). Both at once is ambiguous: refused.
        redact.remember(credentials)
        redact.remember(credentials.partition(":")[2])  # the password alone
        if "authorization" in headers:
            raise ConfigError(
                [
                    "the OTLP endpoint has user:password@ credentials and an 'authorization' header is "
                    "set too: give only one (the URL's credentials would become the authorization header)"
                ]
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
        raise ConfigError(
            [f"unsupported OTLP compression {compression_text!r}; expected gzip or none"]
        ) from None

    timeout_s = flag("otlp_timeout")
    if timeout_s is None:
        timeout_env = env_value("TIMEOUT")
        try:
            timeout_s = float(timeout_env) / 1000.0 if timeout_env else DEFAULT_TIMEOUT_S
        except ValueError:
            raise ConfigError(
                [f"OTEL_EXPORTER_OTLP_TIMEOUT must be milliseconds, got {timeout_env!r}"]
            ) from None
        if timeout_s <= 0:
            timeout_s = DEFAULT_TIMEOUT_S

    resource: dict[str, Any] = {"service.name": DEFAULT_SERVICE_NAME}
    resource["host.name"] = hostname if hostname is not None else socket.gethostname()
    resource.update(kubernetes_resource(env))
    resource_env = env.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()
    if resource_env:
        resource.update(parse_otel_key_values(resource_env, what="OTEL_RESOURCE_ATTRIBUTES"))
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
        load_balancing=LoadBalancing(flag("otlp_load_balancing") or LoadBalancing.ROUND_ROBIN),
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
        return signal_url(protocol, flag_endpoint, only_if_no_path=True)
    logs_endpoint = env.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "").strip()
    if logs_endpoint:
        return logs_endpoint  # the spec: signal-specific endpoints are used as is
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:
        return signal_url(protocol, base, only_if_no_path=False)
    if protocol is OtlpProtocol.GRPC:
        return DEFAULT_GRPC_ENDPOINT
    return signal_url(protocol, DEFAULT_HTTP_ENDPOINT, only_if_no_path=False)


def _check_endpoint(protocol: OtlpProtocol, endpoint: str) -> None:
    """Fail at start-up on an endpoint no attempt could ever reach (instead of retrying forever);
    the model's check (`settings.transport.endpoint_problem`), for the endpoint finally resolved."""
    problem = endpoint_problem(endpoint, protocol.value)
    if problem:
        raise ConfigError([problem])


def signal_url(protocol: OtlpProtocol, base: str, *, only_if_no_path: bool) -> str:
    """For HTTP, the logs URL under a base endpoint: base + "/v1/logs" (one slash between)."""
    if protocol is OtlpProtocol.GRPC:
        return base
    if only_if_no_path and urlsplit(base).path not in ("", "/"):
        return base
    return base.rstrip("/") + "/v1/logs"


def resolve_metrics_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, hostname: str | None = None
) -> OtlpSettings:
    """The same resolution as the logs (`resolve_otlp_settings`: flags > OTEL_* env > defaults, the
    same resource), for the metrics signal: OTEL_EXPORTER_OTLP_METRICS_* variables take the place of
    the LOGS_* ones, and for HTTP the URL path is /v1/metrics. The endpoint:
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT as is; otherwise the logs endpoint with a trailing /v1/logs
    replaced by /v1/metrics (a flag or base URL without a path gets /v1/metrics); a custom path
    from --otlp-endpoint is kept as is.

    A METRICS_* variable wins over the flag of its field: `flags` may hold the logs output's settings,
    into which `settings.sources` has read the LOGS_* variables (the metrics must not inherit them)."""
    env = os.environ if environ is None else environ
    metrics_env = {k: v for k, v in env.items() if not k.startswith(_LOGS_PREFIX)}
    for key, value in env.items():
        if key.startswith(_METRICS_PREFIX):
            metrics_env[_LOGS_PREFIX + key[len(_METRICS_PREFIX) :]] = value
    own = {
        **{f"otlp_{f}": s for f, s in EXPORTER_FIELDS.items()},
        "otlp_timeout": "TIMEOUT",
        "otlp_header": "HEADERS",
    }
    flags = {
        k: v for k, v in flags.items() if not (k in own and env.get(_METRICS_PREFIX + own[k], "").strip())
    }
    settings = resolve_otlp_settings(flags, metrics_env, hostname=hostname)
    endpoint = settings.endpoint
    own_endpoint = env.get(_METRICS_PREFIX + "ENDPOINT", "").strip()
    if settings.protocol is OtlpProtocol.HTTP_PROTOBUF and not own_endpoint and endpoint.endswith("/v1/logs"):
        endpoint = endpoint[: -len("/v1/logs")] + "/v1/metrics"
    return dataclasses.replace(settings, endpoint=endpoint)
