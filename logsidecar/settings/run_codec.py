"""A strict JSON codec for frozen dataclasses of plain values: how the resolved run
(`settings.resolved.ResolvedRun`) crosses the exec into the runtime (`service.handover`).

JSON rather than a pickle: the bytes come from a descriptor named on the command line, and reading a
pickle runs whatever code it names. Here reading only ever builds the declared types: the decoder is
driven by the dataclasses' annotations (`typing.get_type_hints`): str, int, float, bool, None and
unions with it, Enum subclasses (by value), `tuple[X, ...]` and fixed tuples, `Mapping`/`dict` with
str keys, `Path`, `Any` (any JSON value, as is) and nested dataclasses. Generic over dataclasses: a new
field needs no change here. Every key must be there and none other; anything else is a ValueError
naming where (`outputs[1].otlp.timeout_s: expected a number, got a string`), never the value itself
(it may be a secret: an OTLP header).

JSON has no infinity: a non-finite float is written as the string "Infinity", "-Infinity" or "NaN",
read back as such only where a float is declared.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import PurePath
from typing import Any, TypeVar

import orjson

T = TypeVar("T")

NON_FINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
MAPPINGS = (dict, Mapping)  # what `get_origin` gives for `dict[...]` and `Mapping[...]`


def encode(value: object) -> bytes:
    """`value` (a dataclass instance) as JSON bytes. Raises ValueError for a value JSON cannot hold
    (a non-str mapping key, an integer beyond 64 bits, an unknown type)."""
    try:
        return orjson.dumps(plain(value))
    except orjson.JSONEncodeError as exc:  # a TypeError: integers beyond 64 bits
        raise ValueError(f"cannot encode: {exc}") from None


def plain(value: object) -> Any:
    """`value` as JSON values: dataclasses as objects of their fields, enums as their values, tuples
    as arrays, paths as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, Enum):
        return plain(value.value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise ValueError(f"cannot encode a mapping with keys other than strings: {list(value)!r}")
        return {key: plain(item) for key, item in value.items()}
    raise ValueError(f"cannot encode a {type(value).__name__}")


def decode(cls: type[T], data: bytes) -> T:
    """The `cls` (a dataclass) that `data` holds. Raises ValueError naming the field for anything
    that is not exactly what `encode` writes for `cls`."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    return typing.cast(T, read(cls, raw, ""))


def read(declared: Any, raw: Any, where: str) -> Any:
    """The value of type `declared` that the JSON value `raw` at `where` stands for."""
    if declared is Any:
        return raw
    if declared is None or declared is type(None):
        return raw if raw is None else refuse(where, "null", raw)
    origin = typing.get_origin(declared)
    if origin is typing.Union or origin is types.UnionType:
        return read_union(typing.get_args(declared), raw, where)
    if origin is tuple:
        return read_tuple(typing.get_args(declared), raw, where)
    if origin in MAPPINGS:
        key_type, value_type = typing.get_args(declared) or (str, Any)
        if key_type is not str:
            raise TypeError(f"{where}: only str keys can be read from JSON, not {key_type}")
        if type(raw) is not dict:
            refuse(where, "an object", raw)
        return {key: read(value_type, item, f"{where}[{shown(key)}]") for key, item in raw.items()}
    if dataclasses.is_dataclass(declared) and isinstance(declared, type):
        return read_dataclass(declared, raw, where)
    if declared is bool:
        return raw if type(raw) is bool else refuse(where, "true or false", raw)
    if declared is int:
        return raw if type(raw) is int else refuse(where, "an integer", raw)
    if declared is float:
        if type(raw) in (int, float):
            return float(raw)
        return NON_FINITE[raw] if type(raw) is str and raw in NON_FINITE else refuse(where, "a number", raw)
    if declared is str:
        return raw if type(raw) is str else refuse(where, "a string", raw)
    if isinstance(declared, type) and issubclass(declared, Enum):
        try:
            member = declared(raw)
        except (ValueError, TypeError):
            member = None
        if member is None or type(member.value) is not type(raw):  # not true for 1, nor 1.0 for 1
            allowed = ", ".join(repr(known.value) for known in declared)
            return refuse(where, f"one of {allowed}", raw)
        return member
    if isinstance(declared, type) and issubclass(declared, PurePath):
        return declared(raw) if type(raw) is str else refuse(where, "a path (a string)", raw)
    raise TypeError(f"{where}: the codec cannot read the declared type {declared!r}")


def read_union(options: tuple[Any, ...], raw: Any, where: str) -> Any:
    if raw is None and type(None) in options:
        return None
    others = [option for option in options if option is not type(None)]
    if len(others) == 1:  # X | None, not null: an X (its own message, at its own depth)
        return read(others[0], raw, where)
    for option in others:
        try:
            return read(option, raw, where)
        except ValueError:
            continue
    return refuse(where, " or ".join(getattr(option, "__name__", str(option)) for option in options), raw)


def read_tuple(items: tuple[Any, ...], raw: Any, where: str) -> tuple[Any, ...]:
    if type(raw) is not list:
        refuse(where, "an array", raw)
    if len(items) == 2 and items[1] is Ellipsis:
        return tuple(read(items[0], item, f"{where}[{i}]") for i, item in enumerate(raw))
    if len(raw) != len(items):
        raise ValueError(f"{where or 'the value'}: expected an array of {len(items)}, got {len(raw)} items")
    return tuple(
        read(declared, item, f"{where}[{i}]")
        for i, (declared, item) in enumerate(zip(items, raw, strict=True))
    )


def read_dataclass(cls: type, raw: Any, where: str) -> Any:
    if type(raw) is not dict:
        refuse(where, f"an object ({cls.__name__})", raw)
    hints = type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    prefix = f"{where}." if where else ""
    unknown = raw.keys() - set(names)
    if unknown:
        first = min(unknown)  # the same one each time
        name = first if first.isidentifier() and len(first) <= SHOWN_KEY else shown(first)
        raise ValueError(f"{prefix}{name}: unknown field of {cls.__name__}")
    values = {}
    for name in names:
        if name not in raw:
            raise ValueError(f"{prefix}{name}: missing")
        values[name] = read(hints[name], raw[name], prefix + name)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # the dataclass's own checks (__post_init__)
        raise ValueError(f"{where or cls.__name__}: {exc}") from None


TYPE_HINTS: dict[type, dict[str, Any]] = {}


def type_hints(cls: type) -> dict[str, Any]:
    """The annotations of `cls`, evaluated (`from __future__ import annotations` keeps strings)."""
    hints = TYPE_HINTS.get(cls)
    if hints is None:
        hints = TYPE_HINTS[cls] = typing.get_type_hints(cls)
    return hints


SHOWN_KEY = 64  # characters of a key in a message: the rest of a hostile key is left out


def shown(key: str) -> str:
    """A key as a message shows it: quoted (control characters escaped), at most SHOWN_KEY long."""
    return repr(key[:SHOWN_KEY]) + ("..." if len(key) > SHOWN_KEY else "")


def refuse(where: str, expected: str, raw: Any) -> typing.NoReturn:
    raise ValueError(f"{where or 'the value'}: expected {expected}, got {json_kind(raw)}")


def json_kind(raw: Any) -> str:
    """What a JSON value is, without the value (it may be a secret)."""
    if raw is None:
        return "null"
    if type(raw) is bool:
        return "true" if raw else "false"
    kinds = {int: "an integer", float: "a number", str: "a string", list: "an array", dict: "an object"}
    return kinds.get(type(raw), type(raw).__name__)
