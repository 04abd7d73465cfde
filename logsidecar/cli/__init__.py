"""The `logsidecar` command line. Thin by design: each subcommand lives in its own module here,
parses its options, builds a config and calls into the library."""

from __future__ import annotations

import os
import signal
import sys


def _exit_on_early_sigterm(signum: int, frame: object) -> None:
    # Nothing has been read yet, so there is nothing to flush: leave at once, successfully.
    sys.exit(0)


# As PID 1 in a container, a signal with the default disposition is ignored by the kernel: a SIGTERM
# that arrives while the (heavy) imports below run would be lost, and `docker stop` would wait for
# SIGKILL. Handle it from the first moment; `tail` installs its graceful handler once it runs.
signal.signal(signal.SIGTERM, _exit_on_early_sigterm)

import importlib  # noqa: E402

import click  # noqa: E402

from logsidecar import __version__  # noqa: E402

# -v/-q set our own log level through LOGSIDECAR_LOG_LEVEL unless it is set: a command's own
# --log-level still wins (flags > environment), and no command has to declare them.
_VERBOSITY_LEVELS = {-2: "error", -1: "warning", 1: "debug"}


# Each subcommand's module, imported only when that command runs (or help lists it): a command
# pays in start-up time and resident memory (for the life of a sidecar) only for its own imports.
# click's documented lazy-loading pattern: `list_commands` and `get_command` of a Group.
_SUBCOMMANDS = {
    "parse": "logsidecar.cli.parse",
    "docker": "logsidecar.cli.docker",
    "tail": "logsidecar.cli.tail",
    "health": "logsidecar.cli.health",
    "check-config": "logsidecar.cli.check_config",
}


# Keys of the root context's `obj` (a dict; `docker attach` gives `tail` its own):
# - PROCESS_ARGUMENTS: the command runs as the `logsidecar` command itself (`run`: the console
#   script, `python -m logsidecar`), never inside click's CliRunner or a test's process (which call
#   `main`). Only then may `tail` replace the process with the lean runtime (`logsidecar.runtime`),
#   which resolves again on SIGHUP by running these arguments.
# - RESOLVE_ONLY: `tail` resolves and writes the run, and runs nothing (`cli.resolve`).
PROCESS_ARGUMENTS = "logsidecar.process_arguments"
RESOLVE_ONLY = "logsidecar.resolve_only"


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _SUBCOMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            self.add_command(importlib.import_module(module).command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="logsidecar")
@click.option("-v", "--verbose", count=True, help="More of our own logs (debug).")
@click.option(
    "-q", "--quiet", count=True, help="Less: only warnings and errors (-qq: errors); no summary lines."
)
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Follow Apache httpd logs, parse them into OpenTelemetry records, forward them.

    \b
    Examples:
      logsidecar parse /var/log/apache2/access.log
      logsidecar tail '/var/log/apache2/*.log'
      logsidecar -v tail --output otlp '/var/log/apache2/*.log'
      logsidecar docker attach web
      logsidecar health -o json
      logsidecar completion bash > ~/.local/share/bash-completion/completions/logsidecar
    """
    verbosity = max(-2, min(1, verbose - quiet))
    ctx.meta["logsidecar.verbosity"] = verbosity
    if verbosity and "LOGSIDECAR_LOG_LEVEL" not in os.environ:
        os.environ["LOGSIDECAR_LOG_LEVEL"] = _VERBOSITY_LEVELS[verbosity]


def run() -> None:
    """The `logsidecar` command itself (the console script, `python -m logsidecar`): `main` on this
    process's own arguments, marked as such (PROCESS_ARGUMENTS) so that `tail` may replace the process
    with the lean runtime. `main` called directly (click's CliRunner, a test, a tool) runs in process."""
    main(obj={PROCESS_ARGUMENTS: tuple(sys.argv[1:])})


def verbosity() -> int:
    """-1 or less after -q, 1 after -v, 0 otherwise (for commands that print summaries)."""
    ctx = click.get_current_context(silent=True)
    return int(ctx.meta.get("logsidecar.verbosity", 0)) if ctx is not None else 0


@main.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (click's completion: commands, options, choices).

    \b
    Examples:
      logsidecar completion bash > ~/.local/share/bash-completion/completions/logsidecar
      logsidecar completion zsh > "${fpath[1]}/_logsidecar"
      logsidecar completion fish > ~/.config/fish/completions/logsidecar.fish
      eval "$(logsidecar completion bash)"      # this shell only
    """
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    assert complete is not None  # the choice allows only the shells click knows
    click.echo(complete(main, {}, "logsidecar", "_LOGSIDECAR_COMPLETE").source())
