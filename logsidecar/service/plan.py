"""From settings to the parts of a run: parsers, sinks, `TailOptions` and `PipelineOptions`.

`build_plan` builds (and so validates) everything before anything starts, so that a reload with
settings that cannot be built keeps the running pipeline. Nothing is started here.

Resource of every record: host.name, service.name (apache-httpd unless OTEL_RESOURCE_ATTRIBUTES,
OTEL_SERVICE_NAME or service_name say otherwise), the Pod's k8s.* from the Downward API variables
(K8S_POD_NAME ..., `settings.kubernetes_env`; OTEL_RESOURCE_ATTRIBUTES overrides them), then the
writer container's (`docker_metadata`), then the configured `resource` attributes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logsidecar import events
from logsidecar.events import ConfigErrorEvent
from logsidecar.metrics.aggregate import DEFAULT_MAX_ROUTES, DEFAULT_MAX_SERVER_ADDRESSES, DEFAULT_ROUTE_DEPTH
from logsidecar.metrics.sink import DEFAULT_EXPORT_INTERVAL_S, AccessMetricsSink
from logsidecar.pipeline import FormatRule, ParserSelector, PipelineOptions, validate_format_rules
from logsidecar.settings.model import Settings, StdoutOutput
from logsidecar.settings.otel_env import resolve_metrics_settings, resolve_otlp_settings
from logsidecar.sinks.base import Sink
from logsidecar.sinks.stdout import StdoutFormat, StdoutSink
from logsidecar.tail.options import TailOptions
from logsidecar.tail.stdin import STDIN_PATH


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a pipeline run is built from."""

    settings: Settings
    tail_options: TailOptions
    parsers: ParserSelector
    sinks: tuple[Sink, ...]
    pipeline_options: PipelineOptions


def tail_options(settings: Settings) -> TailOptions:
    """What the tailer follows and how: the union of every input's paths and excludes."""
    include = tuple(p for i in settings.inputs for p in i.paths)
    exclude = tuple(dict.fromkeys([*settings.exclude, *(e for i in settings.inputs for e in i.exclude)]))
    state_dir = (
        None
        if settings.state_dir is None or settings.state_dir.lower() == "none" or reads_stdin(include)
        else Path(settings.state_dir)
    )
    return TailOptions(
        include=include,
        exclude=exclude,
        state_dir=state_dir,
        watch=settings.watch,
        start_at=settings.start_at,
        ignore_older_s=settings.ignore_older,
        max_line_bytes=settings.max_line_bytes,
        partial_line_flush_s=settings.partial_line_flush,
        poll_interval_s=settings.poll_interval,
        follow_symlinks=settings.follow_symlinks,
    )


def reads_stdin(include: tuple[str, ...]) -> bool:
    """`-` names standard input (`tail.stdin`), alone: a pipe and files cannot share one run, as a
    pipe has no checkpoint and ends at EOF (raises ValueError)."""
    if STDIN_PATH not in include:
        return False
    if len(include) > 1:
        raise ValueError(
            f"'{STDIN_PATH}' (standard input) cannot be combined with files: "
            f"got {', '.join(include)}; run one logsidecar per source"
        )
    return True


def parser_selector(settings: Settings) -> ParserSelector:
    """The parser of each file by the format rules; every spec is built once here, so that a bad
    directive fails before anything starts (raises parse.FormatError)."""
    timezone = settings.tzinfo()
    rules, default_spec = settings.format_rules()
    format_rules = [FormatRule(glob, spec) for glob, spec in rules]
    validate_format_rules([*format_rules, FormatRule(None, default_spec)], timezone=timezone)
    return ParserSelector(format_rules, default_spec=default_spec, timezone=timezone)


def tailed_directories(settings: Settings) -> list[str]:
    """The directories under which the inputs' files live (the fixed part of each glob)."""
    from logsidecar.tail.discovery import static_base

    directories = []
    for pattern in (p for item in settings.inputs for p in item.paths):
        base = static_base(pattern)
        # os.path.isdir, not Path.is_dir: a directory we may not stat is False, never a PermissionError
        directories.append(str(base if os.path.isdir(base) or not base.suffix else base.parent))
    return list(dict.fromkeys(directories))


def _docker_resource(settings: Settings) -> dict[str, Any]:
    if settings.docker_metadata == "off":
        return {}
    from logsidecar.containers.metadata import container_resource_for

    resource = container_resource_for(tailed_directories(settings))
    if not resource and settings.docker_metadata == "on":
        events.emit(
            ConfigErrorEvent(
                key="docker_metadata",
                reason="--docker-metadata on, but no container writing the tailed directories was found "
                "through the Docker socket (is /var/run/docker.sock mounted?); records carry no container.*",
            )
        )
    return resource


def build_plan(
    settings: Settings, env: Mapping[str, str], otlp_flags: Mapping[str, Any] | None = None
) -> Plan:
    """Parsers, sinks and options from `settings` (nothing started). Raises ConfigError or
    FormatError for settings the model accepted but that cannot be built.

    Derived metrics use the first OTLP output's settings (the metrics signal's variant, see
    `resolve_metrics_settings`); with no OTLP output, `otlp_flags` (the --otlp-* flags given) and the
    OTEL_EXPORTER_OTLP_(METRICS_)* environment."""
    parsers = parser_selector(settings)
    base = resolve_otlp_settings({"service_name": settings.service_name}, env).resource
    resource = {**base, **_docker_resource(settings), **settings.resource}
    if settings.service_name:
        resource["service.name"] = settings.service_name

    sinks: list[Sink] = []
    first_otlp: dict[str, Any] = {}
    for output in settings.outputs:
        if isinstance(output, StdoutOutput):
            sinks.append(StdoutSink(StdoutFormat(output.format.value)))
        else:
            output_flags = {**output.otlp_flags(), "service_name": settings.service_name}
            first_otlp = first_otlp or output_flags
            otlp_settings = resolve_otlp_settings(output_flags, env)
            # imported for an OTLP output only: its wire tables and transport glue cost ~1.5 MiB
            from logsidecar.sinks.otlp import OtlpSink

            sinks.append(OtlpSink(dataclasses.replace(otlp_settings, resource=resource)))
    if settings.derive_metrics:
        # The logs' OTLP settings (the first OTLP output's), for the metrics signal.
        metrics_settings = resolve_metrics_settings(
            first_otlp or {**(otlp_flags or {}), "service_name": settings.service_name}, env
        )
        sinks.append(
            AccessMetricsSink(
                metrics_settings,
                route_depth=settings.metrics_route_depth,
                export_interval_s=settings.metrics_interval,
                resource=resource,
            )
        )
    return Plan(
        settings=settings,
        tail_options=tail_options(settings),
        parsers=parsers,
        sinks=tuple(sinks),
        pipeline_options=PipelineOptions(
            resource=resource,
            max_in_flight_lines=settings.max_in_flight_lines,
            drain_timeout_s=settings.drain_timeout,
        ),
    )


def build_access_metrics_sink(
    *,
    route_depth: int = DEFAULT_ROUTE_DEPTH,
    export_interval_s: float = DEFAULT_EXPORT_INTERVAL_S,
    max_routes: int = DEFAULT_MAX_ROUTES,
    max_server_addresses: int = DEFAULT_MAX_SERVER_ADDRESSES,
    **otlp_kwargs: Any,
) -> AccessMetricsSink:
    """The access-metrics sink from the `--otlp-*` parameters (unknown keys are ignored) and the
    OTEL_EXPORTER_OTLP_(METRICS_)* environment. Raises ConfigError for an invalid combination."""
    return AccessMetricsSink(
        resolve_metrics_settings(otlp_kwargs),
        route_depth=route_depth,
        export_interval_s=export_interval_s,
        max_routes=max_routes,
        max_server_addresses=max_server_addresses,
    )
