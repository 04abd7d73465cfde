"""`logsidecar check-config FILE`: validate a configuration file and print the effective settings
(file + environment, as `tail --config FILE` would see them), secrets masked as ***.

Exit 0 when valid, 2 with every error (one per line, each naming its key or variable) otherwise. A
configuration that names no file to follow is valid (`tail` may get its paths as arguments) but
warned about, in the words `tail` refuses it with when it gets none.
LOGSIDECAR_* variables that nothing reads are reported as warnings on stderr (typos), as `tail` does.
"""

from __future__ import annotations

import json
import os

import click

from logsidecar.cli.params import output_format_option
from logsidecar.settings.errors import ConfigError
from logsidecar.settings.options import unknown_variable_warnings
from logsidecar.settings.sources import NO_INPUTS, resolve


@click.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--no-env", is_flag=True, help="Ignore the environment: check the file alone.")
@output_format_option(hidden_values={"yaml": "text"})
def command(file: str, no_env: bool, output_format: str) -> None:
    """Validate FILE (TOML, YAML or JSON) and print the effective configuration: as YAML (text), or
    as JSON, where an invalid file prints {"valid": false, "errors": [...]} on stdout too.

    \b
    Examples:
      logsidecar check-config logsidecar.toml
      logsidecar check-config --no-env -o json logsidecar.yaml | jq .outputs
    """
    env = {} if no_env else dict(os.environ)
    for line in unknown_variable_warnings(env):
        click.echo(line, err=True)
    try:
        settings = resolve(file, env, {})
    except ConfigError as exc:
        if output_format == "json":
            click.echo(json.dumps({"valid": False, "file": file, "errors": list(exc.errors)}, indent=2))
        click.echo(exc.report(file), err=True)
        raise SystemExit(2) from None
    if not settings.inputs:
        # What `tail --config FILE` refuses with, said as a warning: the paths may come as arguments.
        click.echo(f"warning: {NO_INPUTS}", err=True)
    data = settings.masked()
    if output_format == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
