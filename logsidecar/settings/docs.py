"""docs/configuration.md, generated from the settings model: every key with its flag, its variable,
its type and units, its default and its help (`settings.options`).

    python -m logsidecar.settings.docs > docs/configuration.md

tests/unit/test_configuration_docs.py fails when the committed file differs from `render()`.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

from pydantic import BaseModel

from logsidecar.settings.model import OUTPUT_MODELS, FormatRuleText, InputConfig
from logsidecar.settings.options import (
    COMMAND_VARIABLES,
    IMAGE_VARIABLES,
    OPTIONS,
    OTHER_COMMANDS_VARIABLES,
    Option,
)
from logsidecar.settings.otel_env import OTEL_VARIABLES
from logsidecar.settings.units import (
    Duration,
    HttpAddr,
    ReadableFile,
    Size,
    TimezoneName,
    format_duration,
    format_size,
)

_UNIT_TEXT = {
    Duration: "duration: `500ms`, `30s`, `5m`, `24h`, `1h30m` (a bare number is seconds)",
    Size: "size: `64KiB`, `1MiB`, `5MB` (a bare number is bytes)",
    TimezoneName: "time zone: `local`, `UTC`, `+02:00`, `Europe/Paris`",
    HttpAddr: "`HOST:PORT` (`:9464` is loopback)",
    ReadableFile: "path of a readable file",
    bool: "boolean",
    str: "string",
}

HEADER = """\
# Configuration

<!-- Generated from logsidecar/settings/model.py by `python -m logsidecar.settings.docs`; do not edit.
     tests/unit/test_configuration_docs.py fails when this file is stale. -->

Every `logsidecar tail` option has three names, all derived from one field of the settings model
(`logsidecar/settings/model.py`):

- a **flag**, `--max-line-bytes 64KiB`;
- an **environment variable**, `LOGSIDECAR_MAX_LINE_BYTES=64KiB` (the flag's name, upper-cased, after
  `LOGSIDECAR_`);
- a **key** of the configuration file given with `--config` (TOML, YAML or JSON): `max_line_bytes = "64KiB"`.

They take the same values, parsed the same way: durations (`250ms`, `10s`, `5m`) and sizes (`64KiB`,
`5MiB`) are accepted on the command line, in the environment and in the file alike.

**Precedence**, key by key: flags > environment (`LOGSIDECAR_*`, then the standard `OTEL_*`
variables) > file > defaults. SIGHUP reads the file again; flags and the environment still win over it.

**Lists and mappings.** A list option is a repeatable flag (`--exclude '*.gz' --exclude '*.1'`); in
its variable, items are separated by commas or spaces (`LOGSIDECAR_FORMAT`: one rule per line, as a
LogFormat holds both). A mapping is a repeatable `KEY=VALUE` flag; in its variable, `k1=v1,k2=v2`.
`--output stdout,otlp` and `LOGSIDECAR_OUTPUT=stdout,otlp` choose both outputs.

**Outputs.** The file lists them as `[[outputs]]` tables with a `type`; a flag or variable of an
output (`--otlp-endpoint`, `LOGSIDECAR_STDOUT_FORMAT`) sets that key on every output of its type.
Given for a type that is not chosen, its value is still checked (and used by `--derive-metrics`).

**Checking.** `logsidecar check-config FILE` prints the effective settings (file and environment, as
`tail --config FILE` sees them) with secrets masked, or every error, each naming its key, variable or
flag. An unknown key gets "did you mean", and a top-level key named like a flag of an output or
of the inputs (`otlp_timeout`, `output`, `paths`) is told where the file takes it (`timeout` in
`[[outputs]]` with `type = 'otlp'`). An unknown `LOGSIDECAR_*` variable is a warning, from
`check-config` and from `tail`. `${VAR}` in the file is replaced from the environment (`$${` is a
literal `${`), and the value is never shown.

Complete examples: [examples/logsidecar.toml](examples/logsidecar.toml) and
[examples/logsidecar.yaml](examples/logsidecar.yaml) (both loaded by a test).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _unit_of(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def type_text(option: Option) -> str:
    """The option's type and units, in words."""
    if option.kind == "paths":
        return "list of `[[inputs]]` tables (below); arguments: paths or globs"
    if option.kind == "outputs":
        return f"list of `[[outputs]]` tables; flag and variable: {', '.join(OUTPUT_MODELS)}"
    if option.kind == "list":
        (item,) = typing.get_args(option.annotation)
        return "list of `[GLOB=]SPEC` rules" if item is FormatRuleText else "list of strings"
    if option.kind == "mapping":
        return "table of `KEY = VALUE` strings"
    unit = _unit_of(option.annotation)
    if unit in _UNIT_TEXT:
        return _UNIT_TEXT[unit]
    if isinstance(unit, type) and issubclass(unit, enum.Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in unit)
    if typing.get_origin(unit) is typing.Literal:
        return "one of " + ", ".join(f"`{v}`" for v in typing.get_args(unit))
    if unit is int:
        low = next((m.gt for m in option.info.metadata if hasattr(m, "gt")), None)
        return "integer" + (f" > {low}" if low is not None else "")
    return str(getattr(unit, "__name__", unit))


def default_text(option: Option) -> str:
    shown = option.extra("shown_default")
    if shown is not None:
        return str(shown)
    default = option.info.get_default(call_default_factory=True)
    unit = _unit_of(option.annotation)
    if default is None or default in ([], {}):
        return "none"
    if unit is Duration:
        return format_duration(default)
    if unit is Size:
        return format_size(default)
    if isinstance(default, enum.Enum):
        return str(default.value)
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default)


def _table(options: list[Option]) -> list[str]:
    lines = [
        "| Key | Flag | Variable | Type | Default | Description |",
        "|---|---|---|---|---|---|",
    ]
    for option in options:
        flag = option.flag or "PATH_OR_GLOB arguments"
        if option.short:
            flag = f"{option.flag}, {option.short}"
        help_text = option.help
        standard = OTEL_VARIABLES.get(option.param)
        if standard:
            help_text += f" Also `{standard}`, below `{option.env}`."
        cells = [
            f"`{option.field}`",
            f"`{flag}`" if option.flag else flag,
            f"`{option.env}`",
            type_text(option),
            default_text(option),
            help_text,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _model_table(model: type[BaseModel]) -> list[str]:
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown = "required" if info.is_required() else ("none" if default in ([], {}) else str(default))
        kind = "list of strings" if typing.get_origin(info.annotation) is list else "string"
        lines.append(
            "| " + " | ".join(_cell(c) for c in (f"`{name}`", kind, shown, info.description or "")) + " |"
        )
    return lines


def render() -> str:
    """The whole of docs/configuration.md."""
    out = [HEADER]
    out += ["## Top-level keys", ""]
    out += _table([o for o in OPTIONS if o.output is None])
    out += [
        "",
        "### `[[inputs]]`",
        "",
        "Each input is a table of its own paths, excludes and format; PATH_OR_GLOB arguments and",
        "`LOGSIDECAR_PATHS` replace the file's inputs with one input of those paths.",
        "",
    ]
    out += _model_table(InputConfig)
    for output in OUTPUT_MODELS:
        out += [
            "",
            f'## `[[outputs]]` with `type = "{output}"`',
            "",
        ]
        out += _table([o for o in OPTIONS if o.output == output])
    out += [
        "",
        "## Options of `tail` that are not settings",
        "",
        "They have a flag and a variable, but no file key: they say what the command does.",
        "",
        "| Flag | Variable | Description |",
        "|---|---|---|",
        f"| `--config FILE` | `{COMMAND_VARIABLES[0]}` | The configuration file. |",
        f"| `--dry-run` | `{COMMAND_VARIABLES[1]}` | Show the files, formats and parsed last lines; forward nothing. |",
        f"| `--dry-run-lines N` | `{COMMAND_VARIABLES[2]}` | Lines parsed per file by `--dry-run` (3). |",
        f"| (none) | `{IMAGE_VARIABLES[0]}` | The container image's default paths: below the file, "
        "replaced by its `[[inputs]]`, by `LOGSIDECAR_PATHS` or by arguments. |",
        f"| (none) | `{OTHER_COMMANDS_VARIABLES[0]}` | Not read by `tail`: where `logsidecar docker audit` "
        "remembers the leaked directories it saw. |",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")
