"""`logsidecar tail`: follow log files like `tail -F`, parse every line, forward the records.

Thin: parse options (every one also from a `LOGSIDECAR_*` environment variable), build TailOptions,
the parsers, the sinks and the Pipeline, run it until SIGTERM/SIGINT, exit 0 after a graceful stop.

Exit codes: 0 after a graceful stop (or when our stdout was closed by its reader), 2 for invalid
options (a bad format spec names the bad directive), 1 when a sink or the tailer fails for good.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import sys
from datetime import tzinfo
from pathlib import Path
from typing import Any

import click

from logsidecar import selflog
from logsidecar.cli.otlp_options import otlp_options, resolve_otlp_settings
from logsidecar.config import parse_duration, parse_size, parse_timezone
from logsidecar.events import Level
from logsidecar.parse.base import FormatError
from logsidecar.pipeline import (
    FormatRule,
    ParserSelector,
    Pipeline,
    PipelineOptions,
    parse_format_rule,
    validate_format_rules,
)
from logsidecar.sinks.base import Sink
from logsidecar.sinks.otlp import OtlpSink
from logsidecar.sinks.stdout import OutputClosed, StdoutFormat, StdoutSink
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
            "--shutdown-timeout",
            type=DURATION,
            default="10s",
            show_default=True,
            envvar=_env("SHUTDOWN_TIMEOUT"),
            help="On SIGTERM/SIGINT, how long in-flight records may take to be delivered before exiting.",
        ),
        click.option(
            "--max-in-flight-lines",
            type=click.IntRange(min=1),
            default=16384,
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
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("tail")
@_tail_options
@otlp_options
def command(
    paths: tuple[str, ...],
    format_rules: tuple[FormatRule, ...],
    exclude: tuple[str, ...],
    state_dir: str | None,
    start_at: str,
    watch: str,
    poll_interval: float,
    ignore_older: float | None,
    max_line_bytes: int,
    partial_line_flush: float,
    outputs: tuple[str, ...],
    stdout_format: str,
    timezone: tzinfo,
    resource: tuple[tuple[str, str], ...],
    shutdown_timeout: float,
    max_in_flight_lines: int,
    log_format: str,
    log_level: str,
    **otlp_kwargs: Any,
) -> None:
    """Follow PATH_OR_GLOB... like `tail -F` (through rotation and restarts), parse every line and
    forward the records to stdout (JSON lines) and/or OTLP. Stop with SIGTERM or Ctrl-C."""
    if not paths:
        raise click.UsageError("give at least one PATH_OR_GLOB (or set LOGSIDECAR_PATHS)")
    selflog.install(style=selflog.LogStyle(log_format), level=Level(log_level))

    plain = [rule for rule in format_rules if rule.pattern is None]
    if len(plain) > 1:
        raise click.BadParameter(
            f"more than one format for all files: {', '.join(r.spec for r in plain)}; "
            "use GLOB=SPEC to give files different formats",
            param_hint="--format",
        )
    try:
        validate_format_rules(format_rules, timezone=timezone)
    except FormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--format") from None
    parsers = ParserSelector(
        [rule for rule in format_rules if rule.pattern is not None],
        default_spec=plain[0].spec if plain else "auto",
        timezone=timezone,
    )

    if state_dir is None:
        state_path: Path | None = default_state_dir()
    elif state_dir.strip().lower() in ("", "none"):
        state_path = None
    else:
        state_path = Path(state_dir).expanduser()
    tail_options = TailOptions(
        include=tuple(paths),
        exclude=tuple(exclude),
        state_dir=state_path,
        watch=WatchMode(watch),
        start_at=StartAt(start_at),
        ignore_older_s=ignore_older,
        max_line_bytes=max_line_bytes,
        partial_line_flush_s=partial_line_flush,
        poll_interval_s=poll_interval,
    )

    # host.name, service.name (apache-httpd unless OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME or
    # --service-name say otherwise): resolved once, the OTLP output's way, for every output.
    otlp_settings = resolve_otlp_settings(otlp_kwargs)
    resource_attributes = {**otlp_settings.resource, **dict(resource)}
    sinks: list[Sink] = []
    for output in dict.fromkeys(outputs or ("stdout",)):
        if output == "stdout":
            sinks.append(StdoutSink(StdoutFormat(stdout_format)))
        else:
            sinks.append(OtlpSink(dataclasses.replace(otlp_settings, resource=resource_attributes)))

    pipeline_options = PipelineOptions(
        resource=resource_attributes,
        max_in_flight_lines=max_in_flight_lines,
        shutdown_timeout_s=shutdown_timeout,
    )
    try:
        asyncio.run(_run(tail_options, sinks, parsers, pipeline_options))
    except OutputClosed:
        _silence_stdout()
    except Exception as exc:  # noqa: BLE001 - one readable line, not a traceback
        raise click.ClickException(f"stopped: {exc!r}") from exc


async def _run(
    tail_options: TailOptions, sinks: list[Sink], parsers: ParserSelector, options: PipelineOptions
) -> None:
    from logsidecar.tail.checkpoints import CheckpointStore
    from logsidecar.tail.tailer import Tailer

    tailer = Tailer(tail_options, CheckpointStore(tail_options.state_dir))
    pipeline = Pipeline(tailer, sinks, parsers, options)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, pipeline.request_stop)
    await pipeline.run()


def _silence_stdout() -> None:
    """Our reader went away: point fd 1 at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
