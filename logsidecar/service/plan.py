"""From a resolved run (`settings.resolved.ResolvedRun`: plain values, no pydantic) to the parts of a
run: parsers, sinks, `TailOptions` and `PipelineOptions`.

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
from typing import TYPE_CHECKING, Any

from logsidecar import events
from logsidecar.events import ConfigErrorEvent
from logsidecar.pipeline import FormatRule, ParserSelector, PipelineOptions, validate_format_rules
from logsidecar.settings.resolved import ResolvedRun, from_settings, reads_stdin, tail_options
from logsidecar.settings.values import parse_timezone
from logsidecar.sinks.base import Sink
from logsidecar.sinks.stdout import StdoutFormat, StdoutSink
from logsidecar.tail.options import TailOptions

if TYPE_CHECKING:
    from logsidecar.metrics.sink import AccessMetricsSink
    from logsidecar.settings.model import Settings

__all__ = ["Plan", "build_plan", "parser_selector", "reads_stdin", "tail_options", "tailed_directories"]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a pipeline run is built from."""

    run: ResolvedRun
    tail_options: TailOptions
    parsers: ParserSelector
    sinks: tuple[Sink, ...]
    pipeline_options: PipelineOptions


def parser_selector(run: ResolvedRun) -> ParserSelector:
    """The parser of each file by the format rules; every spec is built once here, so that a bad
    directive fails before anything starts (raises parse.FormatError)."""
    timezone = parse_timezone(run.timezone)
    default_spec = run.default_format
    format_rules = [FormatRule(glob, spec) for glob, spec in run.format_rules]
    validate_format_rules([*format_rules, FormatRule(None, default_spec)], timezone=timezone)
    return ParserSelector(format_rules, default_spec=default_spec, timezone=timezone)


def tailed_directories(run: ResolvedRun) -> list[str]:
    """The directories under which the inputs' files live (the fixed part of each glob)."""
    from logsidecar.tail.discovery import static_base

    directories = []
    for pattern in (p for paths in run.inputs for p in paths):
        base = static_base(pattern)
        # os.path.isdir, not Path.is_dir: a directory we may not stat is False, never a PermissionError
        directories.append(str(base if os.path.isdir(base) or not base.suffix else base.parent))
    return list(dict.fromkeys(directories))


def _docker_resource(run: ResolvedRun) -> dict[str, Any]:
    if run.docker_metadata == "off":
        return {}
    from logsidecar.containers.metadata import container_resource_for

    resource = container_resource_for(tailed_directories(run))
    if not resource and run.docker_metadata == "on":
        events.emit(
            ConfigErrorEvent(
                key="docker_metadata",
                reason="--docker-metadata on, but no container writing the tailed directories was found "
                "through the Docker socket (is /var/run/docker.sock mounted?); records carry no container.*",
            )
        )
    return resource


def build_plan(
    run: ResolvedRun | Settings,
    env: Mapping[str, str] | None = None,
    otlp_flags: Mapping[str, Any] | None = None,
) -> Plan:
    """Parsers, sinks and options of `run` (nothing started). Raises FormatError for a format the
    model accepted but that cannot be built.

    Given validated `Settings` instead (tools, tests), resolves them first in `env` (default
    os.environ) with `otlp_flags` (`settings.resolved.from_settings`), which may raise ConfigError
    or ValueError too."""
    if not isinstance(run, ResolvedRun):
        run = from_settings(run, os.environ if env is None else env, otlp_flags)
    parsers = parser_selector(run)
    container = _docker_resource(run) if run.container_resource is None else run.container_resource
    run = dataclasses.replace(run, container_resource=container)  # a start-up's lookup, not repeated
    resource = {**run.resource, **container, **run.configured_resource}
    if run.service_name:
        resource["service.name"] = run.service_name

    sinks: list[Sink] = []
    for output in run.outputs:
        if output.otlp is not None:
            # imported for an OTLP output only: its wire tables and transport glue cost ~1.5 MiB
            from logsidecar.sinks.otlp import OtlpSink

            sinks.append(OtlpSink(dataclasses.replace(output.otlp, resource=resource)))
        else:
            sinks.append(StdoutSink(StdoutFormat(str(output.stdout_format))))
    if run.derived_metrics is not None:
        # imported for --derive-metrics only (its aggregation tables)
        from logsidecar.metrics.sink import AccessMetricsSink

        sinks.append(
            AccessMetricsSink(
                run.derived_metrics,
                route_depth=run.metrics_route_depth,
                export_interval_s=run.metrics_interval,
                resource=resource,
            )
        )
    return Plan(
        run=run,
        tail_options=run.tail,
        parsers=parsers,
        sinks=tuple(sinks),
        pipeline_options=PipelineOptions(
            resource=resource,
            max_in_flight_lines=run.max_in_flight_lines,
            drain_timeout_s=run.drain_timeout,
        ),
    )


# The sink's own keywords that `build_access_metrics_sink` passes on (the others are --otlp-* ones).
_METRICS_SINK_KEYWORDS = ("route_depth", "export_interval_s", "max_routes", "max_server_addresses")


def build_access_metrics_sink(**keywords: Any) -> AccessMetricsSink:
    """The access-metrics sink from the `--otlp-*` parameters (unknown keys are ignored), the
    OTEL_EXPORTER_OTLP_(METRICS_)* environment and its own `route_depth`, `export_interval_s`,
    `max_routes` and `max_server_addresses` (AccessMetricsSink's defaults when not given). Raises
    ConfigError for an invalid combination."""
    from logsidecar.metrics.sink import AccessMetricsSink
    from logsidecar.settings.otel_env import resolve_metrics_settings  # the model's defaults: pydantic

    own = {key: keywords.pop(key) for key in _METRICS_SINK_KEYWORDS if key in keywords}
    return AccessMetricsSink(resolve_metrics_settings(keywords), **own)
