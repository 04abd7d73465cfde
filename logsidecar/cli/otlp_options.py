"""The OTLP output's command-line options: `otlp_options`, a click decorator adding `--otlp-*` and
`--service-name` to a command. Every option defaults to None so that "not given on the command line"
can fall back to the environment and the file; what they resolve to, and the OTEL_* variables they
take precedence over, is `logsidecar.settings.otel_env` (the defaults shown here are its own).

`resolve_otlp_settings` and `build_otlp_sink` are that resolution for a command: an invalid
combination is a click.UsageError (a configuration error shown with the command's usage).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from logsidecar.cli.params import SIZE, KeyValue
from logsidecar.settings import otel_env
from logsidecar.settings.errors import ConfigError
from logsidecar.settings.model import OTLP_FLAG_FIELDS
from logsidecar.settings.otel_env import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TIMEOUT_S
from logsidecar.sinks.base import Sink
from logsidecar.sinks.otlp_fit import DEFAULT_GRPC_MAX_REQUEST_BYTES, DEFAULT_HTTP_MAX_REQUEST_BYTES
from logsidecar.sinks.otlp_settings import (
    DEFAULT_SERVICE_NAME,
    Compression,
    LoadBalancing,
    OtlpProtocol,
    OtlpSettings,
)

__all__ = ["otlp_options", "build_otlp_sink", "resolve_otlp_settings", "OTLP_PARAMETER_NAMES"]

F = TypeVar("F", bound=Callable[..., Any])

#: The keyword names `otlp_options` adds to a command (and `build_otlp_sink` reads): one per field
#: of the model's OTLP output, the repeated --otlp-header, and --service-name.
OTLP_PARAMETER_NAMES = (*(f"otlp_{name}" for name in OTLP_FLAG_FIELDS), "otlp_header", "service_name")


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
            type=KeyValue(secret=True),
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
            "--otlp-load-balancing",
            type=click.Choice([policy.value for policy in LoadBalancing]),
            help="gRPC: how exports are spread over the addresses the endpoint resolves to "
            "(dns:///gateway:4317 toward a headless Service: one per gateway Pod); pick_first sends "
            "all to one. [default: round_robin]",
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
            type=SIZE,
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
    """`settings.otel_env.resolve_otlp_settings`, its error as a usage error of the command."""
    try:
        return otel_env.resolve_otlp_settings(flags, environ, hostname=hostname)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
