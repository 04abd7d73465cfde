"""The `logsidecar` command line. Thin by design: each subcommand lives in its own module here,
parses its options, builds a config and calls into the library."""

from __future__ import annotations

import click

from logsidecar import __version__


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
