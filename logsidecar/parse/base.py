"""The parser contract shared by every format.

A parser turns a batch of raw lines (bytes, without their trailing newline) into exactly one
`LogRecord` per line, in order. It never raises on input: a line that does not match is returned
with its raw body and the attribute `logsidecar.parse_error` holding a short reason. Parsers may be
stateful (the `auto` parser locks onto a format), so callers build one parser per file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from logsidecar.record import FORMAT, INVALID_UTF8, PARSE_ERROR, LogRecord, decode_text, utcnow


class FormatError(ValueError):
    """An invalid format specification (bad LogFormat directive, unknown preset ...). The message
    points at the offending part so it can be shown to the user as is."""


class Parser(Protocol):
    #: The name reported in `logsidecar.format` and in metrics ("combined", "error", "logformat" ...).
    format_name: str

    def parse(self, lines: Sequence[bytes]) -> list[LogRecord]:
        """One record per line, same order. `observed_timestamp` is set (one value per batch)."""
        ...


def unparsed_record(
    text: str, valid_utf8: bool, reason: str, format_name: str, observed: datetime
) -> LogRecord:
    """The record of a line that was not parsed: its raw body and the reason."""
    attributes: dict[str, Any] = {FORMAT: format_name, PARSE_ERROR: reason}
    if not valid_utf8:
        attributes[INVALID_UTF8] = True
    return LogRecord(body=text, attributes=attributes, observed_timestamp=observed)


def parse_each(
    lines: Sequence[bytes], parse_line: Callable[[bytes, datetime], LogRecord], format_name: str
) -> list[LogRecord]:
    """`Parser.parse` for a parser of one line at a time: one `observed` per batch, and a line whose
    `parse_line` raises is forwarded raw with the exception's type as its reason."""
    observed = utcnow()
    records: list[LogRecord] = []
    append = records.append
    for raw in lines:
        try:
            append(parse_line(raw, observed))
        except Exception as exc:  # noqa: BLE001 - the contract: never raise on input
            text, valid = decode_text(raw)
            append(
                unparsed_record(text, valid, f"internal error: {type(exc).__name__}", format_name, observed)
            )
    return records
