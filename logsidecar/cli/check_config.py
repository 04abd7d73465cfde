"""`logsidecar check-config FILE`: validate a configuration file and print the effective settings
(file + environment, as `tail --config FILE` would see them), secrets masked as ***.

Exit 0 when valid, 2 with every error (one per line, each naming its key or variable) otherwise. A
configuration that names no file to follow is valid (it may be meant to go with paths given as
arguments), with a warning that says so: `tail` needs PATH_OR_GLOB arguments with it, and refuses it
(exit 2, "inputs: nothing to follow") without them.
LOGSIDECAR_* variables that nothing reads are reported as warnings on stderr (typos), as `tail` does.
"""

from __future__ import annotations

import json
import os

import click

from logsidecar.cli.params import output_format_option
from logsidecar.settings.errors import ConfigError
from logsidecar.settings.options import unknown_variable_warnings
from logsidecar.settings.sources import resolve


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
        # Valid, as the paths may come as arguments; said so, lest it read as contradicting the
        # refusal `tail --config FILE` gives without them (NO_INPUTS).
        click.echo(no_inputs_warning(file), err=True)
    data = settings.masked()
    if output_format == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())


def no_inputs_warning(file: str) -> str:
    return (
        f"warning: {file} names no inputs: `tail` needs PATH_OR_GLOB arguments with it "
        f"(logsidecar tail --config {file} PATH_OR_GLOB...) or LOGSIDECAR_PATHS, and refuses it without "
        "them (inputs: nothing to follow); for the file alone to be enough, add [[inputs]] with paths = [...]"
    )
