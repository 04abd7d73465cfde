"""The OTLP output's command-line options: `otlp_options`, a click decorator adding `--otlp-*` and
`--service-name` to a command, derived from the settings model like every `tail` option
(`cli.model_options`). Every option defaults to None so that "not given on the command line" can
fall back to the environment and the file; what they resolve to, and the OTEL_* variables they take
precedence over, is `logsidecar.settings.otel_env`.

`resolve_otlp_settings` and `build_otlp_sink` are that resolution for a command: an invalid
combination is a click.UsageError (a configuration error shown with the command's usage).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from logsidecar.cli.model_options import settings_options
from logsidecar.settings import otel_env
from logsidecar.settings.errors import ConfigError
from logsidecar.settings.options import OPTIONS
from logsidecar.sinks.base import Sink
from logsidecar.sinks.otlp_settings import OtlpSettings

__all__ = ["otlp_options", "build_otlp_sink", "resolve_otlp_settings", "OTLP_PARAMETER_NAMES"]

F = TypeVar("F", bound=Callable[..., Any])

#: The keyword names `otlp_options` adds to a command (and `build_otlp_sink` reads): one per field
#: of the model's OTLP output (headers: the repeated --otlp-header), and --service-name.
OTLP_PARAMETER_NAMES = (*(o.param for o in OPTIONS if o.output == "otlp"), "service_name")


def otlp_options(command: F) -> F:
    """Add the OTLP output options to a click command (see module docstring)."""
    return settings_options(command, output="otlp", only=("service_name",))


def build_otlp_sink(**otlp_kwargs: Any) -> Sink:
    """Resolve flags and environment into settings and build the OTLP sink (not started yet).
    Raises click.UsageError for an invalid combination (e.g. an unknown protocol in the env)."""
    from logsidecar.sinks.otlp import OtlpSink

    return OtlpSink(resolve_otlp_settings(otlp_kwargs))


def resolve_otlp_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, hostname: str | None = None
) -> OtlpSettings:
    """`settings.otel_env.resolve_otlp_settings`, its error as a usage error of the command."""
    try:
        return otel_env.resolve_otlp_settings(flags, environ, hostname=hostname)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
