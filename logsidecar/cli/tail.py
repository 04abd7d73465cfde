"""`logsidecar tail`: follow log files like `tail -F`, parse every line, forward the records.

Click only: the options (every one also from a `LOGSIDECAR_*` variable, and from a `--config` file)
become one `Settings` through `settings.sources.resolve` (flags > environment > file > defaults, key
by key); `service.plan.build_plan` turns them into parsers, sinks and options; `service.supervisor`
runs the pipeline until SIGTERM/SIGINT (draining within `--drain-timeout`), reloads on SIGHUP, and
exits 0 after a graceful stop.

Operations:
- `--http-addr`: /metrics, /healthz, /readyz (`service.telemetry`). Metrics and health outlive reloads.
- `--derive-metrics`: the access-metrics sink next to the outputs, on the first OTLP output's settings.
- `--docker-metadata`: container.* of the container writing the tailed directories, from the socket.
- SIGHUP (with a config file): see `service.supervisor`. Flags and the environment still win over
  the file after a reload (they have not changed).
- `--dry-run`: see `cli.dry_run`.

Exit codes: 0 after a graceful stop (or when our stdout was closed by its reader; --dry-run with a
file matched), 2 for invalid options or configuration (each error names its key, variable or flag),
1 when a sink or the tailer fails for good (or --dry-run matched no file).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, NoReturn

import click

from logsidecar.cli.model_options import settings_options
from logsidecar.cli.otlp_options import OTLP_PARAMETER_NAMES, otlp_options
from logsidecar.cli.params import (
    CommaOrSpaceList,
    FormatRuleType,
    KeyValue,
)
from logsidecar.parse.base import FormatError
from logsidecar.redact import redact
from logsidecar.settings.errors import ConfigError
from logsidecar.settings.model import InputConfig, Settings, StdoutOutput
from logsidecar.settings.sources import env_name, flags_from_click, resolve
from logsidecar.sinks.stdout import OutputClosed, StdoutFormat

# -- the command --------------------------------------------------------------------------------------


_DEFAULT_FORMAT = InputConfig.model_fields["format"].default
_DEFAULT_STDOUT_FORMAT = StdoutOutput.model_fields["format"].default.value


def _env(name: str) -> str:
    return env_name(name.lower())


def _tail_options(command: Any) -> Any:
    """The options that are not one plain setting each: inputs, outputs and what the command does.
    The plain settings come from the model (`cli.model_options`)."""
    options = [
        click.argument("paths", nargs=-1, metavar="PATH_OR_GLOB...", envvar=_env("PATHS")),
        click.option(
            "--format",
            "-f",
            "format_rules",
            type=FormatRuleType(),
            multiple=True,
            envvar=_env("FORMAT"),
            help="Log format: auto, combined, common, error, logformat:<LogFormat>, ... Repeatable as "
            "GLOB=SPEC per file pattern (e.g. '*error*=error'); a plain SPEC applies to the other files. "
            f"[default: {_DEFAULT_FORMAT}]",
        ),
        click.option(
            "--exclude",
            multiple=True,
            type=CommaOrSpaceList(click.STRING),
            envvar=_env("EXCLUDE"),
            help="Glob of paths never to follow (repeatable).",
        ),
        click.option(
            "--output",
            "-o",
            "outputs",
            multiple=True,
            type=CommaOrSpaceList(click.Choice(["stdout", "otlp"])),
            envvar=_env("OUTPUT"),
            metavar="[stdout|otlp]",
            help="Where records go (repeatable: several at once). [default: stdout]",
        ),
        click.option(
            "--stdout-format",
            type=click.Choice([f.value for f in StdoutFormat]),
            envvar=_env("STDOUT_FORMAT"),
            help="json lines, pretty (coloured, one line per record), raw bodies; auto: pretty on a terminal. "
            f"[default: {_DEFAULT_STDOUT_FORMAT}]",
        ),
        click.option(
            "--resource",
            multiple=True,
            type=CommaOrSpaceList(KeyValue()),
            envvar=_env("RESOURCE"),
            help="Extra resource attribute KEY=VALUE on every record (repeatable).",
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


# Parameters of the command that are not settings (see logsidecar.settings.model.Settings).
_NOT_SETTINGS = ("config_file", "dry_run", "dry_run_lines")


@click.command("tail")
@_tail_options
@settings_options
@otlp_options
@click.pass_context
def command(ctx: click.Context, config_file: str | None, dry_run: bool, dry_run_lines: int, **_: Any) -> None:
    """Follow PATH_OR_GLOB... like `tail -F` (through rotation and restarts), parse every line and
    forward the records to stdout (JSON lines) and/or OTLP. Stop with SIGTERM or Ctrl-C; SIGHUP
    re-reads the --config file (inputs added or removed take effect, checkpoints kept).

    `-` (alone) reads standard input until EOF, then delivers and exits 0; no checkpoint is kept (a
    pipe cannot be read again): `docker logs -f web 2>&1 | logsidecar tail -`.

    \b
    Examples:
      logsidecar tail '/var/log/apache2/*.log'
      logsidecar tail --format '*error*=error' --format '*access*=combined' '/var/log/apache2/*.log'
      logsidecar tail --output otlp --otlp-endpoint http://collector:4317 '/var/log/apache2/*.log'
      logsidecar tail --dry-run '/var/log/apache2/*.log'
      logsidecar tail --config logsidecar.toml --http-addr 127.0.0.1:9464
      docker logs -f web 2>&1 | logsidecar tail -
    """
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
    from logsidecar.service.telemetry import SelfLog

    own_logs = SelfLog()
    own_logs.install(settings)
    try:
        if dry_run:
            from logsidecar.cli.dry_run import report

            try:
                status = report(settings, lines=dry_run_lines)
            except ValueError as exc:  # inputs that cannot be combined (`-` with files)
                raise click.UsageError(redact(str(exc))) from None
            ctx.exit(status)
        _serve(
            settings,
            load if config_file else None,
            {k: v for k, v in flags.items() if k in OTLP_PARAMETER_NAMES},
            own_logs,
            # `docker attach` runs this command with what it knows of the container (ctx.obj): the
            # source it built (--engine-logs), or the volume's directory as the container sees it.
            ctx.obj if isinstance(ctx.obj, dict) else {},
        )
    finally:
        own_logs.uninstall()


def _serve(
    settings: Settings, load: Any, otlp_flags: dict[str, Any], own_logs: Any, attach: dict[str, Any]
) -> None:
    """Build the plan and run it; every error becomes one readable line (never a traceback)."""
    from logsidecar.service.plan import build_plan
    from logsidecar.service.supervisor import Supervisor, run_until_exit

    # Derived metrics with no OTLP output still honour the --otlp-* flags given.
    path_map = tuple(attach.get("path_map") or ())

    def built(settings: Settings) -> Any:
        plan = build_plan(settings, os.environ, otlp_flags)
        if not path_map:
            return plan
        options = dataclasses.replace(plan.pipeline_options, path_map=path_map)
        return dataclasses.replace(plan, pipeline_options=options)

    try:
        plan = built(settings)
    except (ConfigError, FormatError, ValueError) as exc:
        raise click.UsageError(redact(str(exc))) from None
    rebuild = (lambda: built(load())) if load is not None else None
    try:
        run_until_exit(Supervisor(plan, rebuild, own_logs, attach.get("source_factory")).run())
    except OutputClosed:
        _silence_stdout()
    except Exception as exc:  # noqa: BLE001 - one readable line, not a traceback
        raise click.ClickException(
            redact(f"stopped: {type(exc).__name__}: {exc}")
        ) from exc  # str names the path


def _exit_invalid(config_file: str | None, errors: list[str]) -> NoReturn:
    where = config_file or "configuration"
    count = len(errors)
    click.echo(f"{where}: invalid configuration ({count} error{'' if count == 1 else 's'}):", err=True)
    for line in errors:
        click.echo(f"  {line}", err=True)
    raise SystemExit(2)


def _silence_stdout() -> None:
    """Our reader went away: point fd 1 at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
