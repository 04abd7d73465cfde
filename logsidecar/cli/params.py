"""Click parameter types for the settings' value syntaxes (durations, sizes, zones, HOST:PORT, files,
`KEY=VALUE`, `[GLOB=]SPEC`): each wraps the one parser in `logsidecar.settings.units`/`model`."""

from __future__ import annotations

import re
from typing import Any

import click

from logsidecar.settings.model import split_format_rule
from logsidecar.settings.units import (
    check_readable_file,
    parse_duration,
    parse_http_addr,
    parse_size,
    parse_timezone,
    split_key_value,
)


class Converted(click.ParamType):
    """A click type from a `str -> value` function that raises ValueError with a readable message."""

    def __init__(self, name: str, convert: Any) -> None:
        self.name = name
        self._convert = convert

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._convert(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Converted("DURATION", parse_duration)
SIZE = Converted("SIZE", parse_size)
TIMEZONE = Converted("TIMEZONE", parse_timezone)
HTTP_ADDR = Converted("HOST:PORT", lambda text: parse_http_addr(text) and text)
FILE = Converted("FILE", check_readable_file)


class FormatRuleType(click.ParamType):
    """`SPEC` or `GLOB=SPEC`, as its normalised text. From the environment, several rules are
    separated by newlines (a LogFormat string contains spaces, so the usual whitespace split would
    tear it apart)."""

    name = "[GLOB=]SPEC"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [line for line in rv.splitlines() if line.strip()]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        pattern, spec = split_format_rule(str(value))
        if not spec:
            self.fail(f"empty format spec in {value!r}", param, ctx)
        return spec if pattern is None else f"{pattern}={spec}"


class CommaOrSpaceList(click.ParamType):
    """A repeatable option whose environment value may be `a,b` or `a b`. With `split`, a value on
    the command line may be `a,b` too (what `--output stdout,otlp` means): it converts to a list."""

    def __init__(self, inner: click.ParamType, *, split: bool = False) -> None:
        self.inner = inner
        self.name = inner.name
        self.split = split

    def split_envvar_value(self, rv: str) -> list[str]:
        return [part for part in re.split(r"[,\s]+", rv) if part]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if self.split and isinstance(value, str):
            return [self.inner.convert(part, param, ctx) for part in self.split_envvar_value(value)]
        return self.inner.convert(value, param, ctx)


class KeyValue(click.ParamType):
    """KEY=VALUE -> (key, value). `secret`: the value is never echoed in an error message."""

    name = "KEY=VALUE"

    def __init__(self, *, secret: bool = False, commas_only: bool = False) -> None:
        self.secret = secret
        self.commas_only = commas_only

    def split_envvar_value(self, rv: str) -> list[str]:
        """`k=v,k=v`; with `commas_only` a value may hold spaces (`authorization=Bearer t0k`)."""
        separators = r"," if self.commas_only else r"[,\s]+"
        return [part for part in re.split(separators, rv) if part.strip()]

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        pair = split_key_value(str(value))
        if pair is None:
            self.fail(
                "expected KEY=VALUE (value not shown)"
                if self.secret
                else f"expected KEY=VALUE, got {value!r}",
                param,
                ctx,
            )
        return pair


def output_format_option(
    *, default: str = "text", hidden_values: dict[str, str] | None = None, json_flag: bool = False
) -> Any:
    """The one output-format convention of every command: `--output-format`/`-o json|text` (text for
    people, json for scripts). `hidden_values` maps older spellings still accepted (`yaml` -> `text`);
    `json_flag` keeps a command's older `--json` as a hidden alias of `-o json`."""
    aliases = hidden_values or {}

    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
        if ctx.params.pop("legacy_json", False):
            return "json"
        return aliases.get(value or default, value or default)

    def decorate(command: Any) -> Any:
        command = click.option(
            "--output-format",
            "-o",
            "output_format",
            type=click.Choice(["text", "json", *aliases]),
            default=default,
            show_default=True,
            callback=convert,
            metavar="[text|json]",
            help="text for people, json for scripts.",
        )(command)
        if json_flag:
            command = click.option("--json", "legacy_json", is_flag=True, hidden=True, is_eager=True)(command)
        return command

    return decorate
