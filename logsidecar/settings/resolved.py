"""A resolved run: the validated `Settings` as plain, frozen values (no pydantic), which is what the
running process is built from (`service.plan.build_plan`, the supervisor, telemetry, our own logs).

`logsidecar tail` resolves and validates with the model (click, pydantic: ~20 MiB of RSS), derives a
`ResolvedRun` here (`from_settings`) and hands it over to the lean runtime process
(`logsidecar.runtime`) as bytes (`to_bytes`/`from_bytes`) through an inherited descriptor: never argv
or the environment, as it holds secrets (OTLP headers). One truth: every value comes from the model;
tests/unit/test_resolved_run.py changes each `Settings` field in turn and fails when one leaves the
run unchanged (a new field the runtime would silently forget).

What the run holds is resolved as far as the configuration goes: the OTLP outputs as `OtlpSettings`
(flags > OTEL_* environment > defaults), the resource from the environment (k8s.*, OTEL_RESOURCE_*).
The writer container's resource (`--docker-metadata`) is looked up when the run is built, as before.

The bytes are JSON (`settings.run_codec`), read back strictly by the declared types: they come from
a descriptor named on the runtime's command line, where a pickle would run whatever code it named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logsidecar.settings import run_codec
from logsidecar.sinks.otlp_settings import OtlpSettings
from logsidecar.tail.options import TailOptions
from logsidecar.tail.stdin import STDIN_PATH

if TYPE_CHECKING:
    from logsidecar.settings.model import Settings


@dataclass(frozen=True, slots=True)
class OutputRun:
    """One output: stdout in `stdout_format`, or OTLP with its resolved `otlp` settings (the resource
    is set when the run is built)."""

    type: str  # "stdout" or "otlp"
    stdout_format: str | None = None
    otlp: OtlpSettings | None = None


@dataclass(frozen=True, slots=True)
class ResolvedRun:
    """Everything a run is built from, as plain values."""

    inputs: tuple[tuple[str, ...], ...]  # each input's paths
    tail: TailOptions
    state_dir: str | None  # as set: `tail.state_dir` is None for `-`, whose engine source keeps one
    format_rules: tuple[tuple[str, str], ...]  # (GLOB, SPEC) in match order
    default_format: str
    timezone: str
    resource: Mapping[str, Any]  # service.name, k8s.*, OTEL_RESOURCE_ATTRIBUTES (the environment's)
    configured_resource: Mapping[str, str]  # the `resource` setting: wins over everything
    service_name: str | None
    docker_metadata: str
    outputs: tuple[OutputRun, ...]
    derived_metrics: OtlpSettings | None  # --derive-metrics: the metrics signal's settings
    metrics_route_depth: int
    metrics_interval: float
    max_in_flight_lines: int
    drain_timeout: float
    exit_when_exists: str | None
    log_format: str
    log_level: str
    http_addr: str | None
    unhealthy_after: float
    # The writer container's resource (`--docker-metadata`): None until the run is built
    # (`service.plan.build_plan` looks it up once; the runtime is given the start-up's).
    container_resource: Mapping[str, Any] | None = None
    # What `logsidecar.redact` hides, as (secret, shown instead, whole word only).
    secrets: tuple[tuple[str, str, bool], ...] = ()
    # The command's own arguments, to resolve again on SIGHUP (None: no --config file to read again).
    reload_arguments: tuple[str, ...] | None = field(default=None)

    def to_bytes(self) -> bytes:
        return run_codec.encode(self)

    @staticmethod
    def from_bytes(data: bytes) -> ResolvedRun:
        """The run `to_bytes` wrote. Raises ValueError naming the field for anything else."""
        return run_codec.decode(ResolvedRun, data)


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


def from_settings(
    settings: Settings,
    env: Mapping[str, str],
    otlp_flags: Mapping[str, Any] | None = None,
    *,
    secrets: tuple[tuple[str, str, bool], ...] = (),
    reload_arguments: tuple[str, ...] | None = None,
) -> ResolvedRun:
    """The run of `settings` in the environment `env`. Raises ConfigError (an OTLP output or the
    OTEL_* variables cannot be resolved) or ValueError (`-` with files), as building it did.

    Derived metrics use the first OTLP output's settings (the metrics signal's variant, see
    `resolve_metrics_settings`); with no OTLP output, `otlp_flags` (the --otlp-* flags given) and the
    OTEL_EXPORTER_OTLP_(METRICS_)* environment."""
    # Imported here: the OTLP resolution reads the model's defaults (pydantic), which the runtime,
    # which imports this module for `ResolvedRun`, must not load.
    from logsidecar.settings.otel_env import resolve_metrics_settings, resolve_otlp_settings

    rules, default_format = settings.format_rules()
    resource = resolve_otlp_settings({"service_name": settings.service_name}, env).resource
    outputs: list[OutputRun] = []
    first_otlp: dict[str, Any] = {}
    for output in settings.outputs:
        if output.type == "stdout":
            outputs.append(OutputRun("stdout", stdout_format=str(output.format.value)))  # type: ignore[union-attr]
        else:
            output_flags = {**output.otlp_flags(), "service_name": settings.service_name}  # type: ignore[union-attr]
            first_otlp = first_otlp or output_flags
            outputs.append(OutputRun("otlp", otlp=resolve_otlp_settings(output_flags, env)))
    derived = None
    if settings.derive_metrics:
        # The logs' OTLP settings (the first OTLP output's), for the metrics signal.
        derived = resolve_metrics_settings(
            first_otlp or {**(otlp_flags or {}), "service_name": settings.service_name}, env
        )
    return ResolvedRun(
        inputs=tuple(tuple(item.paths) for item in settings.inputs),
        tail=tail_options(settings),
        state_dir=settings.state_dir,
        format_rules=tuple(rules),
        default_format=default_format,
        timezone=settings.timezone,
        resource=resource,
        configured_resource=dict(settings.resource),
        service_name=settings.service_name,
        docker_metadata=settings.docker_metadata,
        outputs=tuple(outputs),
        derived_metrics=derived,
        metrics_route_depth=settings.metrics_route_depth,
        metrics_interval=settings.metrics_interval,
        max_in_flight_lines=settings.max_in_flight_lines,
        drain_timeout=settings.drain_timeout,
        exit_when_exists=settings.exit_when_exists,
        log_format=str(settings.log_format.value),
        log_level=str(settings.log_level.value),
        http_addr=settings.http_addr,
        unhealthy_after=settings.unhealthy_after,
        secrets=secrets,
        reload_arguments=reload_arguments,
    )
