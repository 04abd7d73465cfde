"""The `--otlp-*` options and OTEL_EXPORTER_OTLP_* environment resolved for the metrics signal, for
`--derive-metrics`: the access-metrics sink receives the result, already resolved.

Invalid combinations raise click.UsageError here, as for the logs (`otlp_options`), never from
inside a sink.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from logsidecar.cli.otlp_options import resolve_otlp_settings
from logsidecar.metrics.aggregate import DEFAULT_MAX_ROUTES, DEFAULT_MAX_SERVER_ADDRESSES, DEFAULT_ROUTE_DEPTH
from logsidecar.metrics.sink import DEFAULT_EXPORT_INTERVAL_S, AccessMetricsSink
from logsidecar.sinks.otlp_settings import OtlpProtocol, OtlpSettings

_LOGS_PREFIX = "OTEL_EXPORTER_OTLP_LOGS_"
_METRICS_PREFIX = "OTEL_EXPORTER_OTLP_METRICS_"


def resolve_metrics_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, hostname: str | None = None
) -> OtlpSettings:
    """The same resolution as the logs (`resolve_otlp_settings`: flags > OTEL_* env > defaults, the
    same resource), for the metrics signal: OTEL_EXPORTER_OTLP_METRICS_* variables take the place of
    the LOGS_* ones, and for HTTP the URL path is /v1/metrics. The endpoint:
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT as is; otherwise the logs endpoint with a trailing /v1/logs
    replaced by /v1/metrics (a flag or base URL without a path gets /v1/metrics); a custom path
    from --otlp-endpoint is kept as is."""
    env = os.environ if environ is None else environ
    metrics_env = {k: v for k, v in env.items() if not k.startswith(_LOGS_PREFIX)}
    for key, value in env.items():
        if key.startswith(_METRICS_PREFIX):
            metrics_env[_LOGS_PREFIX + key[len(_METRICS_PREFIX) :]] = value
    settings = resolve_otlp_settings(flags, metrics_env, hostname=hostname)
    endpoint = settings.endpoint
    own_endpoint = env.get(_METRICS_PREFIX + "ENDPOINT", "").strip()
    if settings.protocol is OtlpProtocol.HTTP_PROTOBUF and not own_endpoint and endpoint.endswith("/v1/logs"):
        endpoint = endpoint[: -len("/v1/logs")] + "/v1/metrics"
    return dataclasses.replace(settings, endpoint=endpoint)


def build_access_metrics_sink(
    *,
    route_depth: int = DEFAULT_ROUTE_DEPTH,
    export_interval_s: float = DEFAULT_EXPORT_INTERVAL_S,
    max_routes: int = DEFAULT_MAX_ROUTES,
    max_server_addresses: int = DEFAULT_MAX_SERVER_ADDRESSES,
    **otlp_kwargs: Any,
) -> AccessMetricsSink:
    """Build the sink from the same keyword arguments as `build_otlp_sink` (the `--otlp-*` click
    parameters; unknown keys are ignored). Raises click.UsageError for an invalid combination."""
    return AccessMetricsSink(
        resolve_metrics_settings(otlp_kwargs),
        route_depth=route_depth,
        export_interval_s=export_interval_s,
        max_routes=max_routes,
        max_server_addresses=max_server_addresses,
    )
