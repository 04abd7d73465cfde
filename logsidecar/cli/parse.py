"""`logsidecar parse`: one-shot parsing of files or stdin to JSON lines."""

from __future__ import annotations

import click


@click.command("parse")
@click.option("--format", "-f", "format_spec", default="auto", show_default=True, help="Format specification.")
@click.argument("files", nargs=-1)
def command(format_spec: str, files: tuple[str, ...]) -> None:
    """Parse FILE... (or - for stdin) and print one JSON record per line."""
    raise click.ClickException("not implemented yet")
