"""`logsidecar tail`: follow log files like `tail -F`, parse every line, forward the records.

Thin: the options (every one also from a `LOGSIDECAR_*` variable, and from a `--config` file) become
one `config.Settings` through `config.resolve` (flags > environment > file > defaults, key by key);
`build_plan` turns the settings into parsers, sinks and options; `_serve` runs the Pipeline until
SIGTERM/SIGINT and exits 0 after a graceful stop.

Stopping (SIGTERM/SIGINT): no more file discovery; every followed file is read to its end, delivered
and committed within `--drain-timeout` (8 s); what is left then is named in the last log line (file,
offset where it starts, bytes and lines) and read again after a restart. Closing the outputs and
leaving take at most `pipeline.SINK_CLOSE_GRACE_S` more (8 + 1 s: below docker stop's 10 s): a worker
thread stuck in an abandoned export (a collector that accepted the connection and never answers) is
not waited for.

Operations:
- `--http-addr`: /metrics, /healthz, /readyz (`telemetry.TelemetryServer`), fed by the pipeline's
  observer hook (batches, deliveries), the tailer's stats read at scrape time (bytes behind, files)
  and the event bus (rotations, retries ...). Metrics and health outlive reloads.
- `--derive-metrics`: the access-metrics sink next to the outputs, on the first OTLP output's settings.
- `--docker-metadata`: container.* of the container writing the tailed directories, from the socket.
- SIGHUP (with a config file): the new settings are resolved and built first; invalid -> config_error,
  the running pipeline goes on untouched. Valid -> the running pipeline stops gracefully (in-flight
  batches settle, checkpoints are written) and a new one starts in the same process on the same
  state directory, so every file resumes at its committed offset: nothing lost, nothing repeated
  (an in-memory checkpoint store, `--state-dir none`, is carried over). Then config_reloaded.
  Flags and the environment still win over the file after a reload (they have not changed).
- `--dry-run`: see `cli.dry_run`.

Exit codes: 0 after a graceful stop (or when our stdout was closed by its reader; --dry-run with a
file matched), 2 for invalid options or configuration (each error names its key, variable or flag),
1 when a sink or the tailer fails for good (or --dry-run matched no file).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, NoReturn

import click

from logsidecar import events, selflog
from logsidecar.cli.otlp_options import OTLP_PARAMETER_NAMES, otlp_options, resolve_otlp_settings
from logsidecar.config import (
    ConfigError,
    Settings,
    StdoutOutput,
    flags_from_click,
    parse_duration,
    parse_http_addr,
    parse_size,
    parse_timezone,
    resolve,
)
from logsidecar.events import Event, Level
from logsidecar.health import HealthMonitor, HealthPolicy
from logsidecar.parse.base import FormatError
from logsidecar.pipeline import (
    FormatRule,
    ParserSelector,
    Pipeline,
    PipelineOptions,
    parse_format_rule,
    validate_format_rules,
)
from logsidecar.redact import redact
from logsidecar.sinks.base import Sink
from logsidecar.sinks.otlp import OtlpSink
from logsidecar.sinks.stdout import OutputClosed, StdoutFormat, StdoutSink
from logsidecar.tail.open_policy import FollowSymlinks
from logsidecar.tail.options import StartAt, TailOptions, WatchMode

# -- value types --------------------------------------------------------------------------------------


class _Converted(click.ParamType):
    """A click type from a `str -> value` function that raises ValueError with a readable message."""

    def __init__(self, name: str, convert: Any) -> None:
        self.name = name
        self._convert = convert

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._convert(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = _Converted("DURATION", parse_duration)
SIZE = _Converted("SIZE", parse_size)
TIMEZONE = _Converted("TIMEZONE", parse_timezone)
HTTP_ADDR = _Converted("HOST:PORT", lambda text: parse_http_addr(text) and text)


class _FormatRuleType(click.ParamType):
    """`SPEC` or `GLOB=SPEC`. From the environment, several rules are separated by newlines (a
    LogFormat string contains spaces, so the usual whitespace split would tear it apart)."""

    name = "[GLOB=]SPEC"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [line for line in rv.splitlines() if line.strip()]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> FormatRule:
        if isinstance(value, FormatRule):
            return value
        rule = parse_format_rule(str(value))
        if not rule.spec:
            self.fail(f"empty format spec in {value!r}", param, ctx)
        return rule


class _CommaOrSpaceList(click.ParamType):
    """A repeatable option whose environment value may be `a,b` or `a b`."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner = inner
        self.name = inner.name

    def split_envvar_value(self, rv: str) -> list[str]:
        return [part for part in re.split(r"[,\s]+", rv) if part]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return self.inner.convert(value, param, ctx)


class _KeyValue(click.ParamType):
    name = "KEY=VALUE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"expected KEY=VALUE, got {value!r}", param, ctx)
        return key.strip(), val.strip()


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "logsidecar"


# -- the command --------------------------------------------------------------------------------------


def _env(name: str) -> str:
    return f"LOGSIDECAR_{name}"


def _tail_options(command: Any) -> Any:
    options = [
        click.argument("paths", nargs=-1, metavar="PATH_OR_GLOB...", envvar=_env("PATHS")),
        click.option(
            "--format",
            "-f",
            "format_rules",
            type=_FormatRuleType(),
            multiple=True,
            envvar=_env("FORMAT"),
            help="Log format: auto, combined, common, error, logformat:<LogFormat>, ... Repeatable as "
            "GLOB=SPEC per file pattern (e.g. '*error*=error'); a plain SPEC applies to the other files. "
            "[default: auto]",
        ),
        click.option(
            "--exclude",
            multiple=True,
            type=_CommaOrSpaceList(click.STRING),
            envvar=_env("EXCLUDE"),
            help="Glob of paths never to follow (repeatable).",
        ),
        click.option(
            "--state-dir",
            envvar=_env("STATE_DIR"),
            help="Where checkpoints are kept; 'none' keeps them in memory only. "
            "[default: $XDG_STATE_HOME/logsidecar, i.e. ~/.local/state/logsidecar]",
        ),
        click.option(
            "--start-at",
            type=click.Choice([s.value for s in StartAt]),
            default=StartAt.BEGINNING.value,
            show_default=True,
            envvar=_env("START_AT"),
            help="Where to start in files that have no checkpoint.",
        ),
        click.option(
            "--watch",
            type=click.Choice([w.value for w in WatchMode]),
            default=WatchMode.AUTO.value,
            show_default=True,
            envvar=_env("WATCH"),
            help="How changes are noticed: inotify (with a slow stat safety net), poll, or auto by filesystem.",
        ),
        click.option(
            "--follow-symlinks",
            type=click.Choice([f.value for f in FollowSymlinks]),
            default=FollowSymlinks.WITHIN.value,
            show_default=True,
            envvar=_env("FOLLOW_SYMLINKS"),
            help="Follow a symlink never, only when it resolves inside the glob's fixed directory "
            "(within), or anywhere. Only regular files are read; our own stdout/stderr never.",
        ),
        click.option(
            "--poll-interval",
            type=DURATION,
            default="250ms",
            show_default=True,
            envvar=_env("POLL_INTERVAL"),
            help="Stat period in poll mode.",
        ),
        click.option(
            "--ignore-older",
            type=DURATION,
            default=None,
            envvar=_env("IGNORE_OLDER"),
            help="Skip files not modified for this long (e.g. 24h, 30m).",
        ),
        click.option(
            "--max-line-bytes",
            type=SIZE,
            default="1MiB",
            show_default=True,
            envvar=_env("MAX_LINE_BYTES"),
            help="Longer lines are cut here and flagged logsidecar.truncated.",
        ),
        click.option(
            "--partial-line-flush",
            type=DURATION,
            default="5s",
            show_default=True,
            envvar=_env("PARTIAL_LINE_FLUSH"),
            help="A last line without its newline is forwarded after this long.",
        ),
        click.option(
            "--output",
            "-o",
            "outputs",
            multiple=True,
            type=_CommaOrSpaceList(click.Choice(["stdout", "otlp"])),
            envvar=_env("OUTPUT"),
            metavar="[stdout|otlp]",
            help="Where records go (repeatable: several at once). [default: stdout]",
        ),
        click.option(
            "--stdout-format",
            type=click.Choice([f.value for f in StdoutFormat]),
            default=StdoutFormat.AUTO.value,
            show_default=True,
            envvar=_env("STDOUT_FORMAT"),
            help="json lines, pretty (coloured, one line per record), raw bodies; auto: pretty on a terminal.",
        ),
        click.option(
            "--timezone",
            type=TIMEZONE,
            default="local",
            show_default=True,
            envvar=_env("TIMEZONE"),
            help="Zone of error-log times (they carry no offset): local, UTC, +02:00, Europe/Paris ...",
        ),
        click.option(
            "--resource",
            multiple=True,
            type=_CommaOrSpaceList(_KeyValue()),
            envvar=_env("RESOURCE"),
            help="Extra resource attribute KEY=VALUE on every record (repeatable).",
        ),
        click.option(
            "--drain-timeout",
            "--shutdown-timeout",  # its former name
            "drain_timeout",
            type=DURATION,
            default="8s",
            show_default=True,
            envvar=_env("DRAIN_TIMEOUT"),
            help="On SIGTERM/SIGINT: stop discovering files, read every followed file to its end, deliver "
            "and commit, within this long; what is left then is named (file, offset, lines) in the last log "
            "line and read after a restart. Closing the outputs may take 1s more: the default stays below "
            "docker stop's 10s.",
        ),
        click.option(
            "--max-in-flight-lines",
            type=click.IntRange(min=1),
            # ~5 read batches of 229-byte lines: enough to keep 4 OTLP requests in flight while one
            # batch is parsed, and ~5 MiB of encoded JSON (peak RSS of tail -> stdout: ~59 MiB)
            default=6144,
            show_default=True,
            envvar=_env("MAX_IN_FLIGHT_LINES"),
            help="Lines read but not yet delivered, at most; beyond it reading pauses (the files are the buffer).",
        ),
        click.option(
            "--log-format",
            type=click.Choice([s.value for s in selflog.LogStyle]),
            default="auto",
            show_default=True,
            envvar=_env("LOG_FORMAT"),
            help="Our own logs on stderr.",
        ),
        click.option(
            "--log-level",
            type=click.Choice([lv.value for lv in Level]),
            default="info",
            show_default=True,
            envvar=_env("LOG_LEVEL"),
            help="Our own logs: the least severe level shown.",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            envvar=_env("CONFIG"),
            help="Configuration file (TOML, YAML or JSON; see `logsidecar check-config`). Flags win over "
            "the environment, which wins over the file. SIGHUP reads it again.",
        ),
        click.option(
            "--http-addr",
            type=HTTP_ADDR,
            envvar=_env("HTTP_ADDR"),
            help="Serve /metrics, /healthz and /readyz here, e.g. 127.0.0.1:9464 or :9464 (loopback). "
            "[default: off]",
        ),
        click.option(
            "--unhealthy-after",
            type=DURATION,
            envvar=_env("UNHEALTHY_AFTER"),
            help="/healthz fails once a sink has been failing this long. [default: 60s]",
        ),
        click.option(
            "--derive-metrics/--no-derive-metrics",
            default=None,
            envvar=_env("DERIVE_METRICS"),
            help="Also send HTTP server metrics derived from access records over OTLP (same OTLP "
            "settings as the logs). [default: off]",
        ),
        click.option(
            "--metrics-route-depth",
            type=click.IntRange(min=1),
            envvar=_env("METRICS_ROUTE_DEPTH"),
            help="Path segments kept in the http.route of derived metrics. [default: 1]",
        ),
        click.option(
            "--metrics-interval",
            type=DURATION,
            envvar=_env("METRICS_INTERVAL"),
            help="Export period of derived metrics. [default: 10s]",
        ),
        click.option(
            "--docker-metadata",
            type=click.Choice(["auto", "on", "off"]),
            envvar=_env("DOCKER_METADATA"),
            help="Add container.* resource attributes of the container writing the tailed directories, "
            "read from the Docker socket (auto: when the socket is reachable). [default: auto]",
        ),
        click.option(
            "--dry-run",
            is_flag=True,
            help="Show which files match, the format each gets and how their last lines parse; "
            "forward nothing, touch no checkpoint. Exit 1 when no file matches.",
        ),
        click.option(
            "--dry-run-lines",
            type=click.IntRange(min=1),
            default=3,
            show_default=True,
            help="Lines parsed per file by --dry-run.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# Parameters of the command that are not settings (see logsidecar.config.Settings).
_NOT_SETTINGS = ("config_file", "dry_run", "dry_run_lines")


@click.command("tail")
@_tail_options
@otlp_options
@click.pass_context
def command(ctx: click.Context, config_file: str | None, dry_run: bool, dry_run_lines: int, **_: Any) -> None:
    """Follow PATH_OR_GLOB... like `tail -F` (through rotation and restarts), parse every line and
    forward the records to stdout (JSON lines) and/or OTLP. Stop with SIGTERM or Ctrl-C; SIGHUP
    re-reads the --config file (inputs added or removed take effect, checkpoints kept)."""
    flags = {k: v for k, v in flags_from_click(ctx).items() if k not in _NOT_SETTINGS}

    def load() -> Settings:
        return resolve(config_file, dict(os.environ), flags)

    try:
        settings = load()
    except ConfigError as exc:
        _exit_invalid(config_file, exc.errors)
    if not settings.inputs:
        raise click.UsageError(
            "give at least one PATH_OR_GLOB (or set LOGSIDECAR_PATHS, or [[inputs]] in --config)"
        )
    _install_selflog(settings)
    if dry_run:
        from logsidecar.cli.dry_run import report

        ctx.exit(report(settings, lines=dry_run_lines))
    # Derived metrics with no OTLP output still honour the --otlp-* flags given.
    otlp_flags = {k: v for k, v in flags.items() if k in OTLP_PARAMETER_NAMES}
    try:
        plan = build_plan(settings, os.environ, otlp_flags)
    except click.ClickException:
        raise
    except (ConfigError, FormatError, ValueError) as exc:
        raise click.UsageError(redact(str(exc))) from None
    try:
        _run_until_exit(_serve(plan, load if config_file else None, otlp_flags))
    except OutputClosed:
        _silence_stdout()
    except Exception as exc:  # noqa: BLE001 - one readable line, not a traceback
        raise click.ClickException(
            redact(f"stopped: {type(exc).__name__}: {exc}")
        ) from exc  # str names the path


def _run_until_exit(main: Coroutine[Any, Any, float | None]) -> None:
    """`asyncio.run(main)`, except that worker threads still busy at the end are waited for only until
    the time `main` returns (the stop's deadline; else SINK_CLOSE_GRACE_S). All that matters is
    committed by then: a thread still running is blocked in an export the stop abandoned (an OTLP/HTTP
    collector that accepted the connection and never answers), which cannot be interrupted, and
    waiting for its timeout would outlast docker stop's grace period. That batch was never
    acknowledged: a restart reads it again."""
    from logsidecar.pipeline import SINK_CLOSE_GRACE_S

    loop = asyncio.new_event_loop()
    # Our own default executor (the one asyncio would make), so that its shutdown can be waited for
    # with a bound (loop.shutdown_default_executor joins without one).
    executor = concurrent.futures.ThreadPoolExecutor()
    loop.set_default_executor(executor)
    deadline: float | None = None
    try:
        deadline = loop.run_until_complete(main)
    finally:
        try:
            remaining = asyncio.all_tasks(loop)
            for task in remaining:
                task.cancel()
            if remaining:
                loop.run_until_complete(asyncio.wait(remaining))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
    joiner = threading.Thread(target=executor.shutdown, name="logsidecar-exit", daemon=True)
    joiner.start()
    joiner.join(SINK_CLOSE_GRACE_S if deadline is None else max(deadline - time.monotonic(), 0.0))
    if joiner.is_alive():
        # Everything is committed and written; the interpreter would join the stuck thread at exit.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(0)


_selflog_installed: list[Callable[[], None]] = []


def _install_selflog(settings: Settings) -> None:
    """Our own logs as configured; a reload replaces the logger (never two on the bus)."""
    for unsubscribe in _selflog_installed:
        unsubscribe()
    logger = selflog.SelfLogger(style=selflog.LogStyle(settings.log_format), level=Level(settings.log_level))
    _selflog_installed[:] = [events.subscribe(logger)]


def _exit_invalid(config_file: str | None, errors: list[str]) -> NoReturn:
    where = config_file or "configuration"
    count = len(errors)
    click.echo(f"{where}: invalid configuration ({count} error{'' if count == 1 else 's'}):", err=True)
    for line in errors:
        click.echo(f"  {line}", err=True)
    raise SystemExit(2)


# -- from settings to running parts -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a pipeline run is built from; built (and so validated) before anything starts,
    so that a reload with settings that cannot be built keeps the running pipeline."""

    settings: Settings
    tail_options: TailOptions
    parsers: ParserSelector
    sinks: tuple[Sink, ...]
    pipeline_options: PipelineOptions


def tailed_directories(settings: Settings) -> list[str]:
    """The directories under which the inputs' files live (the fixed part of each glob)."""
    from logsidecar.tail.discovery import static_base

    directories = []
    for pattern in (p for item in settings.inputs for p in item.paths):
        base = static_base(pattern)
        directories.append(str(base if os.path.isdir(base) or not base.suffix else base.parent))
    return list(dict.fromkeys(directories))


def _docker_resource(settings: Settings) -> dict[str, Any]:
    if settings.docker_metadata == "off":
        return {}
    from logsidecar.containers.metadata import container_resource_for

    resource = container_resource_for(tailed_directories(settings))
    if not resource and settings.docker_metadata == "on":
        events.emit(
            Event.CONFIG_ERROR,
            key="docker_metadata",
            reason="--docker-metadata on, but no container writing the tailed directories was found "
            "through the Docker socket (is /var/run/docker.sock mounted?); records carry no container.*",
        )
    return resource


def build_plan(
    settings: Settings, env: Mapping[str, str], otlp_flags: Mapping[str, Any] | None = None
) -> Plan:
    """Parsers, sinks and options from `settings` (nothing started). Raises click.UsageError or
    FormatError for settings the model accepted but that cannot be built.

    Derived metrics use the first OTLP output's settings (the metrics signal's variant, see
    `resolve_metrics_settings`); with no OTLP output, `otlp_flags` (the --otlp-* flags given) and the
    OTEL_EXPORTER_OTLP_(METRICS_)* environment."""
    from logsidecar.cli.metrics_options import resolve_metrics_settings
    from logsidecar.metrics.sink import AccessMetricsSink

    timezone = settings.tzinfo()
    rules, default_spec = settings.format_rules()
    format_rules = [FormatRule(glob, spec) for glob, spec in rules]
    validate_format_rules([*format_rules, FormatRule(None, default_spec)], timezone=timezone)
    parsers = ParserSelector(format_rules, default_spec=default_spec, timezone=timezone)

    # host.name, service.name (apache-httpd unless OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME or
    # service_name say otherwise), then the writer container's, then the configured attributes.
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
            otlp_flags = {**output.otlp_flags(), "service_name": settings.service_name}
            first_otlp = first_otlp or otlp_flags
            otlp_settings = resolve_otlp_settings(otlp_flags, env)
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
        tail_options=settings.tail_options(),
        parsers=parsers,
        sinks=tuple(sinks),
        pipeline_options=PipelineOptions(
            resource=resource,
            max_in_flight_lines=settings.max_in_flight_lines,
            drain_timeout_s=settings.drain_timeout,
        ),
    )


# -- running, reloading -----------------------------------------------------------------------------


class _Running:
    """The pipeline and tailer of the current run: what the live gauges read at scrape time."""

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self.tailer: Any = None

    def file_stats(self) -> Any:
        return self.tailer.stats() if self.tailer is not None else ()

    def queue_depth(self) -> int:
        return self.pipeline.queue_depth() if self.pipeline is not None else 0

    def oldest_undelivered_age_s(self) -> float | None:
        return self.pipeline.oldest_undelivered_age_s() if self.pipeline is not None else None


class _Telemetry:
    """Metrics, health and the HTTP server; they outlive reloads (counters keep counting)."""

    def __init__(self, settings: Settings, running: _Running) -> None:
        # Imported here: prometheus-client costs ~3 MiB of RSS, for nothing without --http-addr.
        from logsidecar.telemetry import LiveSources, Metrics, TelemetryServer

        self.key = (settings.http_addr, settings.unhealthy_after)
        live = LiveSources(
            file_stats=running.file_stats,
            oldest_undelivered_age_s=running.oldest_undelivered_age_s,
            queue_depth=running.queue_depth,
        )
        self.health = HealthMonitor(
            policy=HealthPolicy(unhealthy_after_s=settings.unhealthy_after),
            bytes_behind=live.total_bytes_behind,
            files_followed=live.files_watched,
        )
        self.metrics = Metrics(live=live, health=self.health)
        self._unsubscribe: list[Callable[[], None]] = []
        assert settings.http_addr is not None
        self.server = TelemetryServer(settings.http_addr, self.metrics, self.health)

    async def start(self) -> None:
        try:
            await self.server.start()
        except OSError as exc:
            raise RuntimeError(f"cannot serve /metrics on {self.server.url}: {exc.strerror or exc}") from None
        events.emit(Event.STARTED, component="telemetry", url=self.server.url)
        # Subscribed after our own STARTED: health waits for the pipeline's.
        self._unsubscribe = [self.metrics.subscribe(), self.health.subscribe()]

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        await self.server.stop()


async def _serve(
    plan: Plan, load: Callable[[], Settings] | None, otlp_flags: Mapping[str, Any] | None = None
) -> float | None:
    """Run pipelines until SIGTERM/SIGINT; returns the last pipeline's stop deadline. On SIGHUP (with a config file): build the new plan; if it
    is invalid, keep running (config_error); else stop the running pipeline gracefully (in-flight
    batches settle, checkpoints written) and start one from the new plan on the same state: every
    file resumes at its committed offset."""
    from logsidecar.tail.checkpoints import CheckpointStore
    from logsidecar.tail.tailer import Tailer

    loop = asyncio.get_running_loop()
    running = _Running()
    stopping = False
    pending: list[Plan] = []

    def stop() -> None:
        nonlocal stopping
        stopping = True
        if running.pipeline is not None:
            running.pipeline.request_stop()

    def reload() -> None:
        if load is None:
            events.emit(Event.CONFIG_ERROR, reason="SIGHUP ignored: no --config file to read again")
            return
        try:
            new_plan = build_plan(load(), os.environ, otlp_flags)
        except ConfigError as exc:
            events.emit(
                Event.CONFIG_ERROR,
                reason="reload refused; still running the previous settings",
                errors=exc.errors,
            )
            return
        except (click.ClickException, FormatError, ValueError) as exc:
            message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
            events.emit(
                Event.CONFIG_ERROR,
                reason="reload refused; still running the previous settings",
                errors=[message],
            )
            return
        pending[:] = [new_plan]
        if running.pipeline is not None:
            running.pipeline.request_stop(drain=False)  # the next pipeline resumes where this one stopped

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    loop.add_signal_handler(signal.SIGHUP, reload)

    telemetry: _Telemetry | None = None
    store: CheckpointStore | None = None
    try:
        while True:
            settings = plan.settings
            _install_selflog(settings)
            key = (settings.http_addr, settings.unhealthy_after)
            if telemetry is not None and telemetry.key != key:
                await telemetry.stop()
                telemetry = None
            if telemetry is None and settings.http_addr is not None:
                telemetry = _Telemetry(settings, running)
                await telemetry.start()
            state_dir = plan.tail_options.state_dir
            # A durable store is read again (as at a restart); an in-memory one is carried over.
            if store is None or state_dir is not None or store.state_dir is not None:
                store = CheckpointStore(state_dir)
            running.tailer = Tailer(plan.tail_options, store)
            running.pipeline = Pipeline(
                running.tailer,
                list(plan.sinks),
                plan.parsers,
                plan.pipeline_options,
                observer=telemetry.metrics if telemetry is not None else None,
            )
            if stopping or pending:  # a signal came while we were switching pipelines
                running.pipeline.request_stop(drain=stopping)
            await running.pipeline.run()
            if state_dir is not None:
                store.close()
            if stopping or not pending:
                return running.pipeline.deadline
            previous, plan = plan, pending.pop()
            before = [p for item in previous.settings.inputs for p in item.paths]
            after = [p for item in plan.settings.inputs for p in item.paths]
            events.emit(
                Event.CONFIG_RELOADED,
                inputs_added=[p for p in after if p not in before],
                inputs_removed=[p for p in before if p not in after],
                outputs=[o.type for o in plan.settings.outputs],
            )
    finally:
        if telemetry is not None:
            await telemetry.stop()


def _silence_stdout() -> None:
    """Our reader went away: point fd 1 at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
