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

import click  # noqa: E402

from logsidecar import __version__  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="logsidecar")
def main() -> None:
    """Follow Apache httpd logs, parse them into OpenTelemetry records, forward them."""


def _register() -> None:
    # One import per subcommand module; each module defines `command`.
    from logsidecar.cli import parse as parse_cmd

    main.add_command(parse_cmd.command)
    from logsidecar.cli import docker as docker_cmd

    main.add_command(docker_cmd.command)
    from logsidecar.cli import tail as tail_cmd

    main.add_command(tail_cmd.command)
    from logsidecar.cli import check_config as check_config_cmd
    from logsidecar.cli import health as health_cmd

    main.add_command(health_cmd.command)
    main.add_command(check_config_cmd.command)


_register()
