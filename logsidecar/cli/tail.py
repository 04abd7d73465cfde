"""`logsidecar tail`: follow log files like `tail -F`, parse every line, forward the records.

Click only: the options (every one also from a `LOGSIDECAR_*` variable, and from a `--config` file)
become one `Settings` through `settings.sources.resolve` (flags > environment > file > defaults, key
by key); `service.plan.build_plan` turns them into parsers, sinks and options; `service.supervisor`
runs the pipeline until SIGTERM/SIGINT (draining within `--drain-timeout`), reloads on SIGHUP, and
exits 0 after a graceful stop.

Operations:
- `--http-addr`: /metrics, /livez, /readyz, /healthz (`service.telemetry`; docs/kubernetes.md).
  Metrics and health outlive reloads.
- `--exit-when-exists`: the stop of SIGTERM once a file exists (`service.exit_marker`).
- `--derive-metrics`: the access-metrics sink next to the outputs, on the first OTLP output's settings.
- `--docker-metadata`: container.* of the container writing the tailed directories, from the socket.
- SIGHUP (with a config file): see `service.supervisor`. Flags and the environment still win over
  the file after a reload (they have not changed).
- `--dry-run`: see `cli.dry_run`.

Exit codes: 0 after a graceful stop (or when our stdout was closed by its reader; --dry-run with a
file matched), 2 for invalid options or configuration (each error names its key, variable or flag;
a state directory that cannot be written names its path and the fix),
1 when a sink or the tailer fails for good (or --dry-run matched no file), 3 when a stop's
--drain-timeout passed before every line was delivered (the last log line names what is left; a
restart reads it), 128 + N when a second signal N cut the stop short.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, NoReturn

import click

from logsidecar.cli.model_options import settings_options
from logsidecar.cli.otlp_options import OTLP_PARAMETER_NAMES
from logsidecar.parse.base import FormatError
from logsidecar.redact import redact
from logsidecar.settings.errors import ConfigError
from logsidecar.settings.model import Settings
from logsidecar.settings.options import unknown_variable_warnings
from logsidecar.settings.sources import NO_INPUTS, flags_from_click, resolve
from logsidecar.sinks.stdout import OutputClosed, silence_stdout
from logsidecar.terminal import escape_controls

# -- the command --------------------------------------------------------------------------------------


def _command_options(command: Any) -> Any:
    """The options that are not settings: what the command does (each also a LOGSIDECAR_* variable,
    listed in `settings.options.COMMAND_VARIABLES`). The settings come from the model
    (`cli.model_options`)."""
    options = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            envvar="LOGSIDECAR_CONFIG",
            show_envvar=True,
            help="Configuration file (TOML, YAML or JSON; see `logsidecar check-config` and "
            "docs/configuration.md). Flags win over the environment, which wins over the file. "
            "SIGHUP reads it again.",
        ),
        click.option(
            "--dry-run",
            is_flag=True,
            envvar="LOGSIDECAR_DRY_RUN",
            show_envvar=True,
            help="Show which files match, the format each gets and how their last lines parse; "
            "forward nothing, touch no checkpoint. Exit 1 when no file matches.",
        ),
        click.option(
            "--dry-run-lines",
            type=click.IntRange(min=1),
            default=3,
            show_default=True,
            envvar="LOGSIDECAR_DRY_RUN_LINES",
            show_envvar=True,
            help="Lines parsed per file by --dry-run.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# Parameters of the command that are not settings (see logsidecar.settings.model.Settings).
_NOT_SETTINGS = ("config_file", "dry_run", "dry_run_lines")


@click.command("tail")
@settings_options
@_command_options
@click.pass_context
def command(ctx: click.Context, config_file: str | None, dry_run: bool, dry_run_lines: int, **_: Any) -> None:
    """Follow PATH_OR_GLOB... like `tail -F` (through rotation and restarts), parse every line and
    forward the records to stdout (JSON lines) and/or OTLP. Stop with SIGTERM or Ctrl-C (a second one
    exits at once); SIGHUP re-reads the --config file (inputs added or removed take effect, checkpoints
    kept), or without one is ignored unless our terminal closed.

    Exit status: 0 after a stop that delivered everything; 1 when an output or the tailer failed for
    good; 2 for invalid options; 3 when --drain-timeout passed before every line was delivered (the
    last log line names what is left; a restart reads it).

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
    for line in unknown_variable_warnings(os.environ):
        click.echo(line, err=True)

    def load() -> Settings:
        return resolve(config_file, dict(os.environ), flags)

    try:
        settings = load()
    except ConfigError as exc:
        _exit_invalid(config_file, exc)
    if not settings.inputs:
        _exit_invalid(config_file, ConfigError([NO_INPUTS]))
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
            # Derived metrics with no OTLP output: the --otlp-* flags and LOGSIDECAR_OTLP_* variables.
            {
                k: v
                for k, v in flags_from_click(ctx, with_environment=True).items()
                if k in OTLP_PARAMETER_NAMES
            },
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

    # Derived metrics with no OTLP output still honour the --otlp-* flags and variables given.
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
    state_dir = plan.tail_options.state_dir
    if state_dir is not None:
        from logsidecar.tail.state_files import StateDirUnusable, check_state_dir

        try:
            check_state_dir(state_dir)
        except StateDirUnusable as exc:
            click.echo(f"Error: {escape_controls(str(exc))}", err=True)
            raise SystemExit(2) from None
    code = 0
    try:
        code = run_until_exit(Supervisor(plan, rebuild, own_logs, attach.get("source_factory")).run())
    except OutputClosed:
        silence_stdout()
    except Exception as exc:  # noqa: BLE001 - one readable line, not a traceback
        raise click.ClickException(
            redact(f"stopped: {type(exc).__name__}: {exc}")
        ) from exc  # str names the path
    if code:
        raise SystemExit(code)  # the last log line said what was left undelivered


def _exit_invalid(config_file: str | None, error: ConfigError) -> NoReturn:
    click.echo(error.report(config_file or "configuration"), err=True)
    raise SystemExit(2)
