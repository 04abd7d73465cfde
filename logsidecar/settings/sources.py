"""Where settings come from, and in which order: flags > environment (LOGSIDECAR_*, then the
standard OTEL_*) > file > defaults, key by key.

`resolve(file_path, env, flags)` applies it and is pure (no os.environ, no clock): the file is read,
`env` is the mapping given, `flags` holds only the options given on the command line (click parameter
names of `logsidecar tail`, see `flags_from_click`).

Names are derived from the model, never listed twice: a top-level scalar field `max_line_bytes` is
the variable LOGSIDECAR_MAX_LINE_BYTES and the flag --max-line-bytes; an `OtlpOutput` field
`batch_size` is the flag --otlp-batch-size. OTEL_EXPORTER_OTLP_* variables (read by
`settings.otel_env`) configure every OTLP output; they do not add one. LOGSIDECAR_OUTPUT / --output
choose the outputs, reusing the file's settings for each type.

Invariants:
- Every problem is reported at once (`ConfigError.errors`), each naming its key path, variable or
  flag; a value from `${VAR}` is shown in no error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from logsidecar import redact
from logsidecar.settings.errors import ConfigError, describe
from logsidecar.settings.files import load_file_lenient
from logsidecar.settings.model import OTLP_FLAG_FIELDS, Settings, keys_at
from logsidecar.settings.otel_env import EXPORTER_FIELDS, exporter_variable
from logsidecar.settings.units import key_values, split_words

ENV_PREFIX = "LOGSIDECAR_"
# Top-level fields that are not one plain value (each has its own variable or flag handling below).
_STRUCTURED = frozenset({"inputs", "formats", "exclude", "outputs", "resource", "service_name"})
#: Top-level fields set by one LOGSIDECAR_<NAME> variable and one --<name> flag each.
SCALARS = tuple(name for name in Settings.model_fields if name not in _STRUCTURED)
# Variables that are not a scalar field's (each read in `_apply_env`, or by click for CONFIG).
_OTHER_VARIABLES = {
    "PATHS", "FORMAT", "EXCLUDE", "OUTPUT", "RESOURCE", "STDOUT_FORMAT", "CONFIG", "DEFAULT_PATHS",
    "OTLP_MAX_REQUEST_BYTES",
}  # fmt: skip
# `tail` flag name -> OtlpOutput field (headers: --otlp-header, merged)
_OTLP_FLAGS = {f"otlp_{name}": name for name in OTLP_FLAG_FIELDS}


def env_name(field: str) -> str:
    """The LOGSIDECAR_* variable of a top-level field."""
    return ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    """The command-line flag of a field: `max_line_bytes` -> `--max-line-bytes`."""
    return "--" + field.replace("_", "-")


class _Layers:
    """The raw settings being assembled, and who set each key (for error messages)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.origin: dict[tuple[Any, ...], str] = {}
        self.errors: list[str] = []

    def set(self, key: str, value: Any, origin: str) -> None:
        self.data[key] = value
        self.origin[(key,)] = origin

    def outputs(self) -> list[dict[str, Any]]:
        outputs = self.data.get("outputs")
        if outputs is None:
            outputs = self.data["outputs"] = [{"type": "stdout"}]
        return [o for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else []

    def set_output_field(self, output_type: str, key: str, value: Any, origin: str) -> None:
        """Set `key` on every output of `output_type` (flags and env address all of them)."""
        self.outputs()
        for index, output in enumerate(self.data["outputs"]):
            if isinstance(output, dict) and output.get("type", "stdout") == output_type:
                output[key] = value
                self.origin[("outputs", index, key)] = origin

    def merge_output_mapping(
        self, output_type: str, key: str, values: Mapping[str, str], origin: str
    ) -> None:
        self.outputs()
        for index, output in enumerate(self.data["outputs"]):
            if isinstance(output, dict) and output.get("type", "stdout") == output_type:
                current = output.get(key)
                output[key] = {**(current if isinstance(current, dict) else {}), **values}
                for name in values:
                    self.origin[("outputs", index, key, name)] = origin

    def select_outputs(self, types: Sequence[str], origin: str) -> None:
        current = self.outputs()
        chosen: list[dict[str, Any]] = []
        for output_type in dict.fromkeys(types):
            existing = [o for o in current if o.get("type", "stdout") == output_type]
            if not existing:
                # A new output: any error in it (an unknown type) is the selecting variable's or flag's.
                self.origin[("outputs", len(chosen))] = origin
            chosen.extend(existing or [{"type": output_type}])
        self.data["outputs"] = chosen

    def merge_mapping(self, key: str, values: Mapping[str, str], origin: str) -> None:
        current = self.data.get(key)
        merged = dict(current) if isinstance(current, dict) else {}
        merged.update(values)
        self.data[key] = merged
        for name in values:
            self.origin[(key, name)] = origin


def resolve(
    file_path: str | os.PathLike[str] | None, env: Mapping[str, str], flags: Mapping[str, Any]
) -> Settings:
    """flags > env > file > defaults, validated. Raises ConfigError listing every problem.

    `flags`: only options given on the command line, by `tail` parameter name (paths, format_rules,
    exclude, state_dir, start_at, watch, follow_symlinks, poll_interval, ignore_older, max_line_bytes,
    partial_line_flush, outputs, stdout_format, timezone, resource, drain_timeout, exit_when_exists,
    max_in_flight_lines, log_format, log_level, http_addr, unhealthy_after, derive_metrics,
    metrics_route_depth, metrics_interval, docker_metadata, service_name, otlp_*); None or () means
    "not given".
    """
    expanded: set[tuple[Any, ...]] = set()
    data, expansion_errors = (
        load_file_lenient(file_path, env, expanded) if file_path is not None else ({}, [])
    )
    layers = _Layers(data)
    layers.errors.extend(expansion_errors)
    flags = {k: v for k, v in flags.items() if v is not None and v != ()}
    # Choose the outputs first: env and flags then configure the outputs that will exist.
    if "outputs" in flags:
        layers.select_outputs(list(flags["outputs"]), "--output")
    elif (env.get("LOGSIDECAR_OUTPUT") or "").strip():
        layers.select_outputs(split_words(env["LOGSIDECAR_OUTPUT"]), "LOGSIDECAR_OUTPUT")
    _apply_env(layers, env)
    _apply_flags(layers, flags)
    if not layers.data.get("inputs") and (env.get("LOGSIDECAR_DEFAULT_PATHS") or "").strip():
        # A default below the file (the container image sets it): a mounted config's [[inputs]] or
        # LOGSIDECAR_PATHS replace it, instead of the image's paths overriding the user's file.
        layers.set("inputs", [{"paths": env["LOGSIDECAR_DEFAULT_PATHS"].split()}], "LOGSIDECAR_DEFAULT_PATHS")
    if layers.data.get("state_dir") is None:
        layers.data["state_dir"] = str(default_state_dir(env))
    # A value from ${VAR} is shown in no error (redact hides it in text; _describe where it is).
    try:
        settings = Settings.model_validate(layers.data)
    except ValidationError as exc:
        raise ConfigError(
            [
                redact.redact(line)
                for line in layers.errors
                + [describe(error, layers.origin, expanded, keys_at) for error in exc.errors()]
            ]
        ) from None
    if layers.errors:
        raise ConfigError([redact.redact(line) for line in layers.errors])
    settings.remember_secrets()
    return settings


def default_state_dir(env: Mapping[str, str]) -> Path:
    """$XDG_STATE_HOME/logsidecar, i.e. ~/.local/state/logsidecar."""
    base = env.get("XDG_STATE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "logsidecar"


def _key_values(
    text: str, origin: str, errors: list[str], *, percent_encoded: bool = False
) -> dict[str, str]:
    values, malformed = key_values(text, percent_encoded=percent_encoded)
    errors.extend([f"{origin}: expected KEY=VALUE pairs separated by commas (value not shown)"] * malformed)
    return values


def _apply_env(layers: _Layers, env: Mapping[str, str]) -> None:
    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value is not None and value.strip() else None

    # Standard OTel variables first, so that LOGSIDECAR_* ones (more specific to us) win over them.
    attributes = get("OTEL_RESOURCE_ATTRIBUTES")
    if attributes:
        values = _key_values(attributes, "OTEL_RESOURCE_ATTRIBUTES", layers.errors, percent_encoded=True)
        layers.merge_mapping("resource", values, "OTEL_RESOURCE_ATTRIBUTES")
    if get("OTEL_SERVICE_NAME"):
        layers.set("service_name", env["OTEL_SERVICE_NAME"].strip(), "OTEL_SERVICE_NAME")
    for field, suffix in EXPORTER_FIELDS.items():
        found = exporter_variable(env, suffix)
        if found is not None:
            name, value = found
            layers.set_output_field("otlp", field, value.strip(), name)
    found = exporter_variable(env, "TIMEOUT")
    if found is not None:
        name, value = found
        try:
            layers.set_output_field("otlp", "timeout", float(value) / 1000.0, name)
        except ValueError:
            layers.errors.append(f"{name}: expected a number of milliseconds, got {value!r}")
    found = exporter_variable(env, "HEADERS")
    if found is not None:
        name, value = found
        headers = _key_values(value, name, layers.errors, percent_encoded=True)
        layers.merge_output_mapping("otlp", "headers", headers, name)

    for key in SCALARS:
        scalar = get(env_name(key))
        if scalar is not None:
            layers.set(key, scalar.strip(), env_name(key))
    if get("LOGSIDECAR_PATHS"):
        layers.set("inputs", [{"paths": env["LOGSIDECAR_PATHS"].split()}], "LOGSIDECAR_PATHS")
    if get("LOGSIDECAR_FORMAT"):
        rules = [line.strip() for line in env["LOGSIDECAR_FORMAT"].splitlines() if line.strip()]
        layers.set("formats", rules, "LOGSIDECAR_FORMAT")
    if get("LOGSIDECAR_EXCLUDE"):
        layers.set("exclude", split_words(env["LOGSIDECAR_EXCLUDE"]), "LOGSIDECAR_EXCLUDE")
    if get("LOGSIDECAR_STDOUT_FORMAT"):
        layers.set_output_field(
            "stdout", "format", env["LOGSIDECAR_STDOUT_FORMAT"].strip(), "LOGSIDECAR_STDOUT_FORMAT"
        )
    if get("LOGSIDECAR_OTLP_MAX_REQUEST_BYTES"):
        layers.set_output_field(
            "otlp",
            "max_request_bytes",
            env["LOGSIDECAR_OTLP_MAX_REQUEST_BYTES"].strip(),
            "LOGSIDECAR_OTLP_MAX_REQUEST_BYTES",
        )
    if get("LOGSIDECAR_RESOURCE"):
        pairs = _key_values(
            ",".join(split_words(env["LOGSIDECAR_RESOURCE"])), "LOGSIDECAR_RESOURCE", layers.errors
        )
        layers.merge_mapping("resource", pairs, "LOGSIDECAR_RESOURCE")


def _apply_flags(layers: _Layers, flags: Mapping[str, Any]) -> None:
    for key in SCALARS:
        if key in flags:
            layers.set(key, flags[key], flag_name(key))
    if "service_name" in flags:
        layers.set("service_name", flags["service_name"], "--service-name")
    if "paths" in flags:
        layers.set("inputs", [{"paths": list(flags["paths"])}], "PATH_OR_GLOB")
    if "format_rules" in flags:
        layers.set("formats", [_rule_text(r) for r in flags["format_rules"]], "--format")
    if "exclude" in flags:
        layers.set("exclude", list(flags["exclude"]), "--exclude")
    if "stdout_format" in flags:
        layers.set_output_field("stdout", "format", str(flags["stdout_format"]), "--stdout-format")
    if "resource" in flags:
        layers.merge_mapping("resource", dict(flags["resource"]), "--resource")
    for flag, field in _OTLP_FLAGS.items():
        if flag in flags:
            layers.set_output_field("otlp", field, flags[flag], flag_name(flag))
    if "otlp_header" in flags:
        layers.merge_output_mapping("otlp", "headers", dict(flags["otlp_header"]), "--otlp-header")


def _rule_text(rule: Any) -> str:
    """A FormatRule (from the click type) or its text."""
    if isinstance(rule, str):
        return rule
    return f"{rule.pattern}={rule.spec}" if rule.pattern is not None else str(rule.spec)


def flags_from_click(ctx: Any) -> dict[str, Any]:
    """The parameters of a click context that were given on the command line (not defaults, not
    click's own envvar reading: `resolve` reads the environment itself, in the documented order)."""
    from click.core import ParameterSource

    return {
        name: value
        for name, value in ctx.params.items()
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }


def unknown_env_vars(env: Mapping[str, str]) -> list[str]:
    """LOGSIDECAR_* variables that nothing reads (a typo would otherwise be silently ignored)."""
    known = {env_name(s) for s in SCALARS} | {ENV_PREFIX + s for s in _OTHER_VARIABLES}
    return sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known)
