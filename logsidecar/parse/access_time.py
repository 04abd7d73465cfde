"""The record time of an access-log line, from its time field(s) (`%t`, `%{...}t` pieces).

`time_specs` picks the fields that give the time (`begin:` pieces are preferred over `end:`);
`time_parser` reads their text into an aware datetime (or None); `bad_time` names the fields of a
time that matched its pattern but is not a real instant, for `logsidecar.parse_error`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from functools import partial
from typing import Any

from logsidecar.parse.fields import TIME, FieldSpec
from logsidecar.parse.timestamps import parse_clf_time, parse_epoch, parse_strftime

__all__ = ["bad_time", "time_parser", "time_specs"]


def time_specs(specs: Sequence[FieldSpec]) -> list[FieldSpec]:
    """The fields that give the record time: `begin:` ones when present, else every time field."""
    times = [s for s in specs if s.kind == TIME]
    begin = [s for s in times if not s.time_end]
    return begin or times


def bad_time(specs: Sequence[FieldSpec], values: tuple[str, ...] | str) -> tuple[str, str] | None:
    """For time field text that gave no timestamp: (the parse_error naming the field(s), the
    text as written, pieces joined by a space); None when every piece is `-` (not logged)."""
    texts = (values,) if isinstance(values, str) else values
    written = [
        (spec, text[1:-1] if text[:1] == "[" and text[-1:] == "]" else text)
        for spec, text in zip(specs, texts, strict=True)
        if text != "-"
    ]
    if not written:
        return None
    sources = " ".join(spec.directive.source for spec, _ in written)
    return f"invalid time in {sources}: not a real instant", " ".join(text for _, text in written)


def time_parser(specs: Sequence[FieldSpec], tz: tzinfo) -> Callable[[Any], datetime | None]:
    """The time of the `specs` fields' text: one value for a single field, else a tuple."""
    if len(specs) == 1 and specs[0].time_kind == "clf":
        return parse_clf_time
    single = len(specs) == 1  # the builder passes the value itself, not a 1-tuple

    def parse_composite(values: tuple[str, ...] | str) -> datetime | None:
        if single:
            values = (values,)  # type: ignore[assignment]
        base: datetime | None = None
        micro: int | None = None
        formats: list[str] = []
        texts: list[str] = []
        for spec, value in zip(specs, values, strict=True):
            kind = spec.time_kind
            if value == "-" and kind != "strftime":
                continue
            if kind == "clf":
                base = base or parse_clf_time(value)
            elif kind == "strftime":
                formats.append(spec.time_format)
                texts.append(value)
            elif kind in ("sec", "msec", "usec"):
                base = base or parse_epoch(value, kind)
            elif kind == "msec_frac" and value.isdigit():
                micro = int(value) * 1000
            elif kind == "usec_frac" and value.isdigit():
                micro = int(value)
        if base is None and formats:
            # Pieces are read together (`%{%d/%b/%Y}t %{%T}t` is one time); when they repeat a
            # field (`%{%F %T}t ... %{end:%F %T}t`), strptime cannot: the first piece that
            # parses alone gives the time.
            base = parse_strftime("\x1f".join(texts), "\x1f".join(formats), tz)
            if base is None and len(formats) > 1:
                base = next(
                    (t for t in map(partial(parse_strftime, default_tz=tz), texts, formats) if t),
                    None,
                )
        if base is not None and micro is not None and micro < 1_000_000:
            base = base.replace(microsecond=micro)
        return base

    return parse_composite
