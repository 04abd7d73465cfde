"""Every `tail` option, derived from the settings model: its flag, its LOGSIDECAR_* variable and its
config-file key, listed once in `OPTIONS` (see `settings.model` for the naming rules).

What reads this list: `cli.model_options` (the click options), `settings.sources` (the environment
and the flags, in the documented order), `settings.docs` (docs/configuration.md) and
`unknown_env_vars` (typos). A field added to the model appears in all of them.

Kinds: `value` (one value), `list` (a repeatable flag), `mapping` (a repeatable KEY=VALUE flag),
`paths` (the PATH_OR_GLOB arguments: one input) and `outputs` (which outputs exist).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from logsidecar.settings.errors import closest
from logsidecar.settings.model import OUTPUT_MODELS, Settings

ENV_PREFIX = "LOGSIDECAR_"
Kind = Literal["value", "list", "mapping", "paths", "outputs"]

#: Variables of `tail` itself, not settings (so never file keys): --config, --dry-run and
#: --dry-run-lines; the image's default paths (a default below the file, see `sources.resolve`); and
#: the variables of other commands (`docker audit`'s memory, `containers.audit_seen`).
COMMAND_VARIABLES = ("LOGSIDECAR_CONFIG", "LOGSIDECAR_DRY_RUN", "LOGSIDECAR_DRY_RUN_LINES")
IMAGE_VARIABLES = ("LOGSIDECAR_DEFAULT_PATHS",)
OTHER_COMMANDS_VARIABLES = ("LOGSIDECAR_AUDIT_SEEN",)


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting as the command line, the environment and the file name it."""

    field: str  # the model field
    model: type[BaseModel]  # Settings, or the output's model
    output: str | None  # None: a top-level key; "stdout" / "otlp": a key of every output of that type
    kind: Kind
    param: str  # the click parameter's name: the key of `flags` in `sources.resolve`
    flag: str | None  # "--otlp-timeout"; None for the PATH_OR_GLOB arguments
    short: str | None
    env: str
    env_split: Literal["words", "lines", "commas"]
    annotation: Any  # the field's type with its units (`Duration`, not float)

    @property
    def info(self) -> FieldInfo:
        return self.model.model_fields[self.field]

    @property
    def help(self) -> str:
        return self.info.description or ""

    def extra(self, key: str) -> Any:
        extra = self.info.json_schema_extra
        return extra.get(key) if isinstance(extra, dict) else None


def _kind(name: str, annotation: Any) -> Kind:
    if name == "inputs":
        return "paths"
    if name == "outputs":
        return "outputs"
    origin = typing.get_origin(annotation)
    return "list" if origin is list else "mapping" if origin is dict else "value"


def _options_of(model: type[BaseModel], output: str | None) -> list[Option]:
    hints = typing.get_type_hints(model, include_extras=True)
    options = []
    for name, info in model.model_fields.items():
        if name == "type":
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        kind = _kind(name, hints[name])
        base = str(extra.get("flag") or name.replace("_", "-"))
        if output is not None and "flag" not in extra:
            base = f"{output}-{base}"
        flag = None if kind == "paths" else "--" + base
        param = str(extra.get("param") or base.replace("-", "_"))
        split = extra.get("env_split") or ("commas" if kind == "mapping" else "words")
        options.append(
            Option(
                field=name,
                model=model,
                output=output,
                kind=kind,
                param=param,
                flag=flag,
                short=extra.get("short"),  # type: ignore[arg-type]
                env=ENV_PREFIX + (base if flag else param).replace("-", "_").upper(),
                env_split=split,  # type: ignore[arg-type]
                annotation=hints[name],
            )
        )
    return options


#: Every option of `tail` that is a setting: the top-level ones, then each output type's.
OPTIONS: tuple[Option, ...] = (
    *_options_of(Settings, None),
    *(o for output, model in OUTPUT_MODELS.items() for o in _options_of(model, output)),
)


def file_place_of(loc: Sequence[Any]) -> str | None:
    """Where an unknown top-level file key named like a flag belongs in the file (`otlp_timeout`,
    `output`, `paths`): per-output settings and the inputs are tables there, which a newcomer who
    knows the flags cannot guess, and whose names "did you mean" cannot reach."""
    if len(loc) != 1 or not isinstance(loc[0], str):
        return None
    name = loc[0].strip().lstrip("-").replace("-", "_").lower()
    for option in OPTIONS:
        if option.kind == "paths" and name in ("path", "paths", option.param):
            return "[[inputs]] tables, each with paths = [...] (and its own format, exclude)"
        names = {option.param, (option.flag or "").lstrip("-").replace("-", "_")}
        if option.kind == "outputs" and name in names:
            return "[[outputs]] tables, one per output, with type = 'stdout' or 'otlp'"
        if option.output is not None and name in names:
            return f"{option.field!r} in [[outputs]] with type = {option.output!r}"
    return None


def known_variables() -> list[str]:
    """Every LOGSIDECAR_* variable something reads."""
    return [*(o.env for o in OPTIONS), *COMMAND_VARIABLES, *IMAGE_VARIABLES, *OTHER_COMMANDS_VARIABLES]


def unknown_env_vars(env: Mapping[str, str]) -> list[str]:
    """LOGSIDECAR_* variables that nothing reads (a typo would otherwise be silently ignored)."""
    known = set(known_variables())
    return sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known)


def unknown_variable_warnings(env: Mapping[str, str]) -> list[str]:
    """One line per unknown LOGSIDECAR_* variable, with the closest known one."""
    lines = []
    for name in unknown_env_vars(env):
        guess = closest(name, known_variables())
        hint = f" (did you mean {guess}?)" if guess else ""
        lines.append(f"warning: {name} is not a logsidecar setting; ignored{hint}")
    return lines
