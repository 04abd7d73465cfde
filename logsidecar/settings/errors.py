"""Configuration errors, and how a validation error becomes one line naming where it is.

A line names the key path (`inputs[1].format: ...`), or the variable or flag that set the value
(`LOGSIDECAR_WATCH: ...`, `--otlp-header (header 'x-token'): ...`). Secrets (header values, values
of secret-looking keys, every value a `${VAR}` brought) are never quoted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

_SECRET_KEY_HINTS = ("token", "password", "secret", "api_key", "apikey")


class ConfigError(ValueError):
    """Invalid configuration; `errors` holds one line per problem, each naming where it is; `notes`
    what helps to fix them, said once (the valid keys beside unknown ones)."""

    def __init__(self, errors: Sequence[str], notes: Sequence[str] = ()) -> None:
        self.errors = list(errors)
        self.notes = list(notes)
        super().__init__("\n".join([*self.errors, *self.notes]))

    def report(self, where: str) -> str:
        """What `tail` and `check-config` both print: a count, then each error, then the notes."""
        count = len(self.errors)
        lines = [f"{where}: invalid configuration ({count} error{'' if count == 1 else 's'}):"]
        lines += [f"  {line}" for line in self.errors]
        lines += [f"  ({line})" for line in self.notes]
        return "\n".join(lines)


def is_secret_key(key: str) -> bool:
    lowered = key.lower().replace("-", "_")
    return any(hint in lowered for hint in _SECRET_KEY_HINTS)


def format_loc(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def _expected_list(expected: str) -> str:
    items = re.findall(r"'([^']*)'", expected)
    return ", ".join(items) if items else expected


def describe(
    error: Mapping[str, Any],
    origin: Mapping[tuple[Any, ...], str],
    expanded: set[tuple[Any, ...]],
    keys_at: Callable[[Sequence[Any]], Iterable[str]],
    file_place: Callable[[Sequence[Any]], str | None] | None = None,
) -> str:
    """One pydantic error as a line; `keys_at(loc)` lists the valid keys beside `loc[-1]`, and
    `file_place(loc)` says where a key named like a flag goes in the file (None: not such a key)."""
    # Drop the union tag pydantic inserts after a list index (outputs[0].otlp.endpoint).
    loc = [
        p
        for i, p in enumerate(error["loc"])
        if not (i > 0 and isinstance(error["loc"][i - 1], int) and p in ("stdout", "otlp"))
    ]
    where = format_loc(loc)
    for end in range(len(loc), 0, -1):
        if tuple(loc[:end]) in origin:
            where = origin[tuple(loc[:end])]
            if "headers" in loc[:-1]:  # a flag or variable sets several: say which one
                where += f" (header {loc[loc.index('headers') + 1]!r})"
            break
    key_error = bool(loc) and loc[-1] == "[key]"  # a key's name is shown: it is no secret
    secret = (
        "headers" in loc
        or any(isinstance(p, str) and is_secret_key(p) for p in loc)
        or any(_overlaps(tuple(loc), e) for e in expanded)
    )
    value = error.get("input")
    shown = "" if secret else f", got {value!r}"
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "logsidecar":
        message = error["msg"]
        if secret and not key_error and isinstance(value, str) and value:
            message = message.replace(repr(value), "(value not shown)")
    elif kind == "extra_forbidden":
        # The valid keys are listed once for all unknown keys (`valid_keys_lines`), not per key.
        place = file_place(error["loc"]) if file_place else None
        guess = closest(str(loc[-1]), keys_at(error["loc"]))
        if place:
            message = f"unknown key; in a file, this is {place}"
        else:
            message = "unknown key" + (f"; did you mean {guess!r}?" if guess else "")
    elif kind == "missing":
        message = "required"
    elif kind in ("literal_error", "enum"):
        message = f"unknown value {value!r}; expected one of: {_expected_list(str(ctx.get('expected', '')))}"
        if secret:
            message = f"unknown value; expected one of: {_expected_list(str(ctx.get('expected', '')))}"
    elif kind == "union_tag_invalid":
        message = f"unknown output type {ctx.get('tag')!r}; expected one of: {_expected_list(str(ctx.get('expected_tags', '')))}"
    elif kind == "union_tag_not_found":
        message = "missing 'type'; expected one of: otlp, stdout"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        message = f"expected an integer{shown}"
    elif kind in ("float_parsing", "float_type"):
        message = f"expected a number{shown}"
    elif kind in ("bool_parsing", "bool_type"):
        message = f"expected true or false{shown}"
    elif kind == "string_type":
        message = f"expected a string{shown}"
    elif kind == "list_type":
        message = f"expected a list{shown}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"expected a table of settings{shown}"
    elif kind == "too_short":
        message = "must not be empty"
    elif kind == "greater_than":
        message = f"must be greater than {ctx.get('gt')}{shown}"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate `name` was most likely meant to be (a typo, a missing `_`), or None."""
    import difflib  # for a misspelt name only: the running process (logsidecar.runtime) needs none

    by_upper = {str(c).upper(): str(c) for c in candidates}
    matches = difflib.get_close_matches(name.upper(), list(by_upper), n=1, cutoff=0.75)
    return by_upper[matches[0]] if matches else None


def valid_keys_lines(
    errors: Iterable[Mapping[str, Any]],
    keys_at: Callable[[Sequence[Any]], Iterable[str]],
    place_at: Callable[[Sequence[Any]], str],
) -> list[str]:
    """For the unknown keys among `errors`: one line per place (the top level, [[inputs]] ...)
    listing its valid keys, said once however many keys were wrong there."""
    places: dict[str, list[str]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden":
            places.setdefault(place_at(error["loc"]), sorted(keys_at(error["loc"])))
    return [f"valid keys {place}: {', '.join(keys)}" for place, keys in places.items()]


def _overlaps(loc: tuple[Any, ...], other: tuple[Any, ...]) -> bool:
    """One key path is the other or inside it."""
    shorter = min(len(loc), len(other))
    return shorter > 0 and loc[:shorter] == other[:shorter]
