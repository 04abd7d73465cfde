"""Click options derived from the settings model: one place per setting.

For each top-level scalar field of `Settings` (`settings.sources.SCALARS`), `settings_options` adds
`--<name>` (snake_case -> kebab-case) reading `LOGSIDECAR_<NAME>`, with the field's description as
help and the model's default shown. The click type follows the field's type: durations, sizes,
zones and HOST:PORT parse with `settings.units`; enums and literals are choices; a bool is a
`--x/--no-x` pair; an int with `gt=N` is a range from N+1.

Every option defaults to None: a value not given on the command line is not a flag (see
`settings.sources.flags_from_click`); the environment and the file come next, then the model's
default, which is what --help shows.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import click
from pydantic.fields import FieldInfo

from logsidecar.cli.params import DURATION, HTTP_ADDR, SIZE, TIMEZONE
from logsidecar.settings.model import Settings
from logsidecar.settings.sources import SCALARS, env_name, flag_name
from logsidecar.settings.units import (
    Duration,
    HttpAddr,
    Size,
    TimezoneName,
    format_duration,
    format_size,
)

F = TypeVar("F", bound=Callable[..., Any])

# Former names still accepted (not settings: spellings of the command line).
_OLD_NAMES = {"drain_timeout": ("--shutdown-timeout",)}


def _unit_of(annotation: Any) -> Any:
    """The field's value type without `| None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


_UNIT_TYPES: dict[Any, tuple[click.ParamType, Callable[[Any], str]]] = {
    Duration: (DURATION, format_duration),
    Size: (SIZE, format_size),
    TimezoneName: (TIMEZONE, str),
    HttpAddr: (HTTP_ADDR, str),
}


def _click_type(field: FieldInfo, unit: Any) -> tuple[click.ParamType | None, Callable[[Any], str]]:
    if unit in _UNIT_TYPES:
        return _UNIT_TYPES[unit]
    if isinstance(unit, type) and issubclass(unit, enum.Enum):
        return click.Choice([str(member.value) for member in unit]), lambda v: str(v.value)
    if typing.get_origin(unit) is Literal:
        return click.Choice([str(value) for value in typing.get_args(unit)]), str
    if unit is int:
        # pydantic keeps `gt=N` as a metadata item with a `gt` attribute (annotated_types.Gt)
        low = next((m.gt for m in field.metadata if isinstance(getattr(m, "gt", None), int)), None)
        return (click.IntRange(min=low + 1) if low is not None else click.INT), str
    if unit is bool:
        return None, lambda v: "on" if v else "off"
    return click.STRING, str


_HINTS = typing.get_type_hints(Settings, include_extras=True)  # Duration stays Duration, not float


def option_for(name: str, field: FieldInfo) -> Callable[[F], F]:
    """The click option of the model field `name`."""
    unit = _unit_of(_HINTS[name])
    param_type, show = _click_type(field, unit)
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    shown = extra.get("shown_default")
    if shown is None and field.default is not None:
        shown = show(field.default)
    help_text = field.description or ""
    if shown is not None:
        help_text = f"{help_text} [default: {shown}]"
    flag = flag_name(name)
    if param_type is None:  # a bool: --x/--no-x
        return click.option(
            f"{flag}/--no-{flag[2:]}", name, default=None, envvar=env_name(name), help=help_text
        )
    return click.option(
        flag,
        *_OLD_NAMES.get(name, ()),
        name,
        type=param_type,
        default=None,
        envvar=env_name(name),
        help=help_text,
    )


def settings_options(command: F) -> F:
    """Add an option for every scalar setting to a click command (see the module docstring)."""
    for name in reversed(SCALARS):
        command = option_for(name, Settings.model_fields[name])(command)
    return command
