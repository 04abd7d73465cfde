"""`logsidecar tail`: follow log files like `tail -F`, parse every line, forward the records.

Click only: the options (every one also from a `LOGSIDECAR_*` variable, and from a `--config` file)
become one `Settings` through `settings.sources.resolve` (flags > environment > file > defaults, key
by key); `settings.resolved.from_settings` makes them a plain `ResolvedRun`; `service.plan.build_plan`
turns that into parsers, sinks and options; `service.supervisor` runs the pipeline until
SIGTERM/SIGINT (draining within `--drain-timeout`), reloads on SIGHUP, and exits 0 after a graceful
stop.

Resolve, then run lean: once everything is validated (the plan built, the state directory checked),
the real command (the console script, `python -m logsidecar`: `cli.PROCESS_ARGUMENTS`) replaces its
process with `python -m logsidecar.runtime` (`service.handover`), which runs the same supervisor
without click, pydantic or the settings model; SIGHUP resolves again in a child (`cli.resolve`,
this command with RESOLVE_ONLY). Inside click's CliRunner or a test's process, for `docker attach`
(which hands a source or a path map in ctx.obj) and wherever exec is impossible, the run stays here.

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
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from logsidecar.cli import PROCESS_ARGUMENTS, RESOLVE_ONLY
from logsidecar.cli.model_options import settings_options
from logsidecar.cli.otlp_options import OTLP_PARAMETER_NAMES
from logsidecar.parse.base import FormatError
from logsidecar.redact import known as known_secrets
from logsidecar.redact import redact
from logsidecar.settings.errors import ConfigError
from logsidecar.settings.model import Settings
from logsidecar.settings.options import unknown_variable_warnings
from logsidecar.settings.resolved import from_settings
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
    # `docker attach` runs this command with what it knows of the container (ctx.obj): the source it
    # built (--engine-logs), or the volume's directory as the container sees it.
    obj: dict[str, Any] = ctx.obj if isinstance(ctx.obj, dict) else {}
    # Derived metrics with no OTLP output: the --otlp-* flags and LOGSIDECAR_OTLP_* variables.
    otlp_flags = {
        k: v for k, v in flags_from_click(ctx, with_environment=True).items() if k in OTLP_PARAMETER_NAMES
    }

    def load() -> Settings:
        return resolve(config_file, dict(os.environ), flags)

    if obj.get(RESOLVE_ONLY):
        write_resolved(load, otlp_flags)
        return
    for line in unknown_variable_warnings(os.environ):
        click.echo(line, err=True)
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
        arguments = obj.get(PROCESS_ARGUMENTS)
        _serve(
            settings,
            load if config_file else None,
            otlp_flags,
            own_logs,
            obj,
            # The real command resolves again on SIGHUP with its own arguments (in a child).
            None if arguments is None else tuple(arguments) if config_file else (),
        )
    finally:
        own_logs.uninstall()


def _serve(
    settings: Settings,
    load: Any,
    otlp_flags: dict[str, Any],
    own_logs: Any,
    attach: dict[str, Any],
    arguments: tuple[str, ...] | None,
) -> None:
    """Build the plan and run it; every error becomes one readable line (never a traceback).

    `arguments` (the real command's own, empty without a config file to read again): the process is
    replaced by the lean runtime once everything is validated (`logsidecar.runtime`); None, or when
    that is impossible: the run goes on in this process."""
    from logsidecar.service.plan import build_plan
    from logsidecar.service.supervisor import Reload, Supervisor, run_until_exit

    path_map = tuple(attach.get("path_map") or ())

    def built(settings: Settings) -> Any:
        plan = build_plan(from_settings(settings, os.environ, otlp_flags))
        if not path_map:
            return plan
        options = dataclasses.replace(plan.pipeline_options, path_map=path_map)
        return dataclasses.replace(plan, pipeline_options=options)

    try:
        plan = built(settings)
    except (ConfigError, FormatError, ValueError) as exc:
        raise click.UsageError(redact(str(exc))) from None
    # The file is read in a worker thread (a slow mount must not stop the loop), built on the loop.
    rebuild = Reload(resolve=load, build=built) if load is not None else None
    state_dir = plan.tail_options.state_dir
    if state_dir is not None:
        from logsidecar.tail.state_files import StateDirUnusable, check_state_dir

        try:
            check_state_dir(state_dir)
        except StateDirUnusable as exc:
            click.echo(f"Error: {escape_controls(str(exc))}", err=True)
            raise SystemExit(2) from None
    if arguments is not None and not path_map and attach.get("source_factory") is None:
        from logsidecar.service.handover import exec_runtime

        run = dataclasses.replace(plan.run, secrets=known_secrets(), reload_arguments=arguments or None)
        exec_runtime(run)  # returns only when the process could not be replaced
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


def write_resolved(load: Callable[[], Settings], otlp_flags: dict[str, Any]) -> None:
    """The resolve-only run (`cli.resolve`, on SIGHUP in the runtime): the resolved run's bytes on
    stdout, or each error on a line of its own and exit status 2. Prints nothing else: the errors
    are the runtime's to report (`config_error`, the running pipeline kept)."""
    try:
        settings = load()
        if not settings.inputs:
            raise ConfigError([NO_INPUTS])
        run = from_settings(settings, os.environ, otlp_flags, secrets=known_secrets())
    except ConfigError as exc:
        _exit_unresolved(exc.errors)
    except ValueError as exc:  # `-` with files
        _exit_unresolved([redact(str(exc))])
    sys.stdout.buffer.write(run.to_bytes())
    sys.stdout.buffer.flush()


def _exit_unresolved(errors: list[str]) -> NoReturn:
    sys.stdout.write("".join(f"{escape_controls(line)}\n" for line in errors))
    sys.stdout.flush()
    raise SystemExit(2)


def _exit_invalid(config_file: str | None, error: ConfigError) -> NoReturn:
    click.echo(error.report(config_file or "configuration"), err=True)
    raise SystemExit(2)
