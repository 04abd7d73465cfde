"""Where settings come from, and in which order: flags > environment (LOGSIDECAR_*, then the
standard OTEL_*) > file > defaults, key by key.

`resolve(file_path, env, flags)` applies it and is pure (no os.environ, no clock): the file is read,
`env` is the mapping given, `flags` holds only the options given on the command line (click parameter
names of `logsidecar tail`, see `flags_from_click`).

Names are derived from the model, never listed twice (`settings.options.OPTIONS`): a top-level
field `max_line_bytes` is the variable LOGSIDECAR_MAX_LINE_BYTES and the flag --max-line-bytes; an
`OtlpOutput` field `batch_size` is LOGSIDECAR_OTLP_BATCH_SIZE and --otlp-batch-size, and sets every
OTLP output. OTEL_EXPORTER_OTLP_* variables (names from `settings.otel_env`) configure every OTLP
output too, below LOGSIDECAR_*; they do not add one (and OTEL_EXPORTER_OTLP_ENDPOINT stays a base
URL). LOGSIDECAR_OUTPUT / --output choose the outputs, reusing the file's settings for each type.
A value given for an output type that is not chosen is validated all the same.

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
from logsidecar.settings.errors import ConfigError, describe, valid_keys_lines
from logsidecar.settings.files import load_file_lenient
from logsidecar.settings.model import OUTPUT_MODELS, Settings, keys_at, place_at
from logsidecar.settings.options import OPTIONS, Option, file_place_of, unknown_env_vars
from logsidecar.settings.otel_env import EXPORTER_FIELDS, exporter_variable, signal_url
from logsidecar.settings.units import key_values, split_words
from logsidecar.sinks.otlp_settings import OtlpProtocol

__all__ = ["resolve", "flags_from_click", "unknown_env_vars", "default_state_dir", "SCALARS", "NO_INPUTS"]

#: What `tail` and `check-config` both say when the settings name no file to follow.
NO_INPUTS = (
    "inputs: nothing to follow; give at least one PATH_OR_GLOB to `tail`, set LOGSIDECAR_PATHS, or "
    "add [[inputs]] with paths = [...] to the config file"
)

#: Top-level fields set by one LOGSIDECAR_<NAME> variable and one --<name> flag each.
SCALARS = tuple(o.field for o in OPTIONS if o.output is None and o.kind == "value")


class _Layers:
    """The raw settings being assembled, and who set each key (for error messages)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.origin: dict[tuple[Any, ...], str] = {}
        self.errors: list[str] = []
        # Values the environment or the flags give an output type that is not chosen (--otlp-endpoint
        # with stdout only): validated all the same, so that a bad value is never silently dropped.
        self.detached: dict[str, dict[str, Any]] = {}
        self.detached_origin: dict[str, dict[tuple[Any, ...], str]] = {}

    def set(self, key: str, value: Any, origin: str) -> None:
        self.data[key] = value
        self.origin[(key,)] = origin

    def outputs(self) -> list[dict[str, Any]]:
        outputs = self.data.get("outputs")
        if outputs is None:
            outputs = self.data["outputs"] = [{"type": "stdout"}]
        return [o for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else []

    def _has_output(self, output_type: str) -> bool:
        return any(o.get("type", "stdout") == output_type for o in self.outputs())

    def _detach(self, output_type: str, key: str, value: Any, origin: str) -> None:
        detached = self.detached.setdefault(output_type, {})
        if isinstance(value, dict):
            value = {**(detached.get(key) or {}), **value}
        detached[key] = value
        self.detached_origin.setdefault(output_type, {})[(key,)] = origin

    def set_output_field(
        self, output_type: str, key: str, value: Any, origin: str, *, keep_detached: bool = True
    ) -> None:
        """Set `key` on every output of `output_type` (flags and env address all of them)."""
        if not self._has_output(output_type):
            if keep_detached:
                self._detach(output_type, key, value, origin)
            return
        for index, output in enumerate(self.data["outputs"]):
            if isinstance(output, dict) and output.get("type", "stdout") == output_type:
                output[key] = value
                self.origin[("outputs", index, key)] = origin

    def merge_output_mapping(
        self,
        output_type: str,
        key: str,
        values: Mapping[str, str],
        origin: str,
        *,
        keep_detached: bool = True,
    ) -> None:
        if not self._has_output(output_type):
            if keep_detached:
                self._detach(output_type, key, dict(values), origin)
            return
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

    `flags`: only options given on the command line, by `tail` parameter name (the `param` of each
    `settings.options.OPTIONS`: paths, format_rules, outputs, max_line_bytes, otlp_endpoint,
    otlp_header ...); None or () means "not given".
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
        # `--output stdout,otlp` as LOGSIDECAR_OUTPUT=stdout,otlp (the click type splits; a caller may not)
        chosen = [t for v in flags["outputs"] for t in ([v] if isinstance(v, str) else v)]
        layers.select_outputs([t for v in chosen for t in split_words(v)], "--output")
    elif (env.get("LOGSIDECAR_OUTPUT") or "").strip():
        layers.select_outputs(split_words(env["LOGSIDECAR_OUTPUT"]), "LOGSIDECAR_OUTPUT")
    _apply_env(layers, env)
    _apply_flags(layers, flags)
    _base_endpoints_to_logs_urls(layers)
    if not layers.data.get("inputs") and (env.get("LOGSIDECAR_DEFAULT_PATHS") or "").strip():
        # A default below the file (the container image sets it): a mounted config's [[inputs]] or
        # LOGSIDECAR_PATHS replace it, instead of the image's paths overriding the user's file.
        layers.set("inputs", [{"paths": env["LOGSIDECAR_DEFAULT_PATHS"].split()}], "LOGSIDECAR_DEFAULT_PATHS")
    if layers.data.get("state_dir") is None:
        layers.data["state_dir"] = str(default_state_dir(env))
    # A value from ${VAR} is shown in no error (redact hides it in text; `describe` where it is).
    lines = list(layers.errors)
    errors: list[Any] = []
    settings = None
    try:
        settings = Settings.model_validate(layers.data)
    except ValidationError as exc:
        errors = exc.errors()
        # A key whose ${VAR} is unset is already reported; its emptied value's own error (`cannot
        # read ''`) would only repeat it.
        unset = {line.partition(": ")[0] for line in layers.errors if line.endswith(" is not set")}
        described = [describe(error, layers.origin, expanded, keys_at, file_place_of) for error in errors]
        lines += [line for line in described if line.partition(": ")[0] not in unset]
    for output_type, values in layers.detached.items():
        try:
            OUTPUT_MODELS[output_type].model_validate(values)
        except ValidationError as exc:
            origin = layers.detached_origin[output_type]
            lines += [describe(error, origin, set(), keys_at) for error in exc.errors()]
    if lines or settings is None:
        raise ConfigError(
            [redact.redact(line) for line in lines], valid_keys_lines(errors, keys_at, place_at)
        )
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
            layers.set_output_field("otlp", field, value.strip(), name, keep_detached=False)
    found = exporter_variable(env, "TIMEOUT")
    if found is not None:
        name, value = found
        try:
            layers.set_output_field("otlp", "timeout", float(value) / 1000.0, name, keep_detached=False)
        except ValueError:
            layers.errors.append(f"{name}: expected a number of milliseconds, got {value!r}")
    found = exporter_variable(env, "HEADERS")
    if found is not None:
        name, value = found
        headers = _key_values(value, name, layers.errors, percent_encoded=True)
        layers.merge_output_mapping("otlp", "headers", headers, name, keep_detached=False)

    for option in OPTIONS:
        text = get(option.env)
        if text is None or option.kind == "outputs":  # outputs: chosen first, in `resolve`
            continue
        if option.kind == "paths":
            layers.set("inputs", [{"paths": text.split()}], option.env)
        elif option.kind == "list":
            items = text.splitlines() if option.env_split == "lines" else split_words(text)
            _apply(layers, option, [item.strip() for item in items if item.strip()], option.env)
        elif option.kind == "mapping":
            members = ",".join(split_words(text)) if option.env_split == "words" else text
            _apply(layers, option, _key_values(members, option.env, layers.errors), option.env)
        else:
            _apply(layers, option, text.strip(), option.env)


def _base_endpoints_to_logs_urls(layers: _Layers) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: for OTLP/HTTP the logs URL is under it, even when
    it has a path (`http://c:4318/base/` -> `http://c:4318/base/v1/logs`), as the OTel specification
    says. Done here, once the protocol is known: an endpoint in the model is used as given (a URL
    without a path gets /v1/logs, see `otel_env.resolve_otlp_settings`)."""
    for index, output in enumerate(layers.outputs()):
        from_base = layers.origin.get(("outputs", index, "endpoint")) == "OTEL_EXPORTER_OTLP_ENDPOINT"
        if from_base and output.get("protocol") == OtlpProtocol.HTTP_PROTOBUF.value:
            output["endpoint"] = signal_url(
                OtlpProtocol.HTTP_PROTOBUF, output["endpoint"], only_if_no_path=False
            )


def _apply(layers: _Layers, option: Option, value: Any, origin: str) -> None:
    """Set one option's value where it belongs: a top-level key, or a key of every output of its type."""
    if option.output is None:
        if option.kind == "mapping":
            layers.merge_mapping(option.field, value, origin)
        else:
            layers.set(option.field, value, origin)
    elif option.kind == "mapping":
        layers.merge_output_mapping(option.output, option.field, value, origin)
    else:
        layers.set_output_field(option.output, option.field, value, origin)


def _apply_flags(layers: _Layers, flags: Mapping[str, Any]) -> None:
    for option in OPTIONS:
        if option.param not in flags or option.kind == "outputs":
            continue
        value = flags[option.param]
        origin = option.flag or "PATH_OR_GLOB"
        if option.kind == "paths":
            layers.set("inputs", [{"paths": list(value)}], origin)
        elif option.kind == "list":
            _apply(layers, option, [_rule_text(v) for v in value], origin)
        elif option.kind == "mapping":
            _apply(layers, option, dict(value), origin)
        else:
            _apply(layers, option, value, origin)


def _rule_text(rule: Any) -> str:
    """An item of a list flag: text, or a `pipeline.FormatRule` (`format_rules` given by a caller)."""
    if isinstance(rule, str):
        return rule
    return f"{rule.pattern}={rule.spec}" if rule.pattern is not None else str(rule.spec)


def flags_from_click(ctx: Any, *, with_environment: bool = False) -> dict[str, Any]:
    """The parameters of a click context that were given on the command line (not defaults, not
    click's own envvar reading: `resolve` reads the environment itself, in the documented order).
    `with_environment`: also those click read from their LOGSIDECAR_* variable (parsed the same)."""
    from click.core import ParameterSource

    sources = {ParameterSource.COMMANDLINE}
    if with_environment:
        sources.add(ParameterSource.ENVIRONMENT)
    return {
        name: value
        for name, value in ctx.params.items()
        if ctx.get_parameter_source(name) in sources and value is not None and value != ()
    }
