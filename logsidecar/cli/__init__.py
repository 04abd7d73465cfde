"""The `logsidecar` command line. Thin by design: each subcommand lives in its own module here,
parses its options, builds a config and calls into the library."""

from __future__ import annotations

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
def main() -> None:
    """Follow Apache httpd logs, parse them into OpenTelemetry records, forward them."""
