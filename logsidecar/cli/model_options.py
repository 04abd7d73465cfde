"""Click options derived from the settings model: one place per setting.

For each option of `settings.options.OPTIONS` (every field of `Settings` and of each output),
`settings_options` adds its flag reading its LOGSIDECAR_* variable, with the field's description as
help and the model's default shown. The click type follows the field's type: durations, sizes,
zones, HOST:PORT and files parse with the functions the file and the environment use
(`settings.units`); enums and literals are choices; a bool is a `--x/--no-x` pair; an int with `gt=N`
is a range from N+1; a list is a repeatable flag, a mapping a repeatable KEY=VALUE flag; `inputs`
are the PATH_OR_GLOB arguments and `outputs` a repeatable, comma-separated choice of output types.

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

from logsidecar.cli.params import (
    DURATION,
    FILE,
    HTTP_ADDR,
    SIZE,
    TIMEZONE,
    CommaOrSpaceList,
    FormatRuleType,
    KeyValue,
)
from logsidecar.settings.model import OUTPUT_MODELS, FormatRuleText
from logsidecar.settings.options import OPTIONS, Option
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
    ReadableFile: (FILE, str),
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


def _list_type(option: Option) -> click.ParamType:
    (item,) = typing.get_args(option.annotation)
    if item is FormatRuleText:
        return FormatRuleType()
    return CommaOrSpaceList(click.STRING)


def _help(option: Option, show: Callable[[Any], str]) -> str:
    field = option.info
    shown = option.extra("shown_default")
    if shown is None and field.default is not None and option.kind == "value":
        shown = show(field.default)
    help_text = option.help
    standard = OTEL_VARIABLES.get(option.param)
    if standard:
        help_text = f"{help_text} Also {standard}."
    return f"{help_text} [default: {shown}]" if shown is not None else help_text


def option_for(option: Option) -> Callable[[F], F]:
    """The click option (or argument) of one setting."""
    names = [option.flag, *([option.short] if option.short else []), *_OLD_NAMES.get(option.field, ())]
    common: dict[str, Any] = {"envvar": option.env, "metavar": option.extra("metavar")}
    if option.kind != "paths":
        common["show_envvar"] = True
    if option.kind == "paths":
        return click.argument(option.param, nargs=-1, **common)
    if option.kind == "outputs":
        choice = click.Choice(list(OUTPUT_MODELS))
        return click.option(
            *names,
            option.param,
            multiple=True,
            type=CommaOrSpaceList(choice, split=True),
            help=_help(option, str),
            **{**common, "metavar": f"[{'|'.join(OUTPUT_MODELS)}]"},
        )
    if option.kind == "list":
        return click.option(
            *names, option.param, multiple=True, type=_list_type(option), help=_help(option, str), **common
        )
    if option.kind == "mapping":
        # A malformed pair is never echoed (a header value is a secret; a resource value may be).
        return click.option(
            *names,
            option.param,
            multiple=True,
            type=KeyValue(secret=True, commas_only=option.env_split == "commas"),
            help=_help(option, str),
            **common,
        )
    param_type, show = _click_type(option.info, _unit_of(option.annotation))
    if param_type is None:  # a bool: --x/--no-x
        flag = str(option.flag)
        return click.option(
            f"{flag}/--no-{flag[2:]}", option.param, default=None, help=_help(option, show), **common
        )
    return click.option(
        *names, option.param, type=param_type, default=None, help=_help(option, show), **common
    )


def settings_options(command: F, *, output: str | None = None, only: tuple[str, ...] = ()) -> F:
    """Add the option of every setting to a click command (see the module docstring); with `output`,
    only that output type's options (and the top-level ones named in `only`)."""
    chosen = [
        o for o in OPTIONS if output is None or o.output == output or (o.output is None and o.field in only)
    ]
    for option in reversed(chosen):
        command = option_for(option)(command)
    return command
