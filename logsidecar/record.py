"""The record model every stage shares: parsers build `LogRecord`s, sinks encode them.

Invariants:
- `timestamp` comes from the line and is offset-aware (or None when the line has no time);
  `observed_timestamp` is when we read the line, always offset-aware UTC.
- `body` is the raw line as text. Bytes that are not UTF-8 are kept as `\\xhh` escapes (the same
  notation Apache itself uses), and the record is flagged with `logsidecar.invalid_utf8`.
- Attribute names follow OpenTelemetry semantic conventions; Apache-only fields live under `apache.`;
  our own flags live under `logsidecar.`. An absent value (Apache's `-`) is left out, never zero.
- `position` says where the line came from; it is set by the tailer, None for one-shot parsing.

The JSON encoding (`encode_json`) is the stdout format: one object per line with the top-level keys
`timestamp`, `observed_timestamp`, `severity_text`, `severity_number`, `body`, `attributes`, `resource`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, NamedTuple

import orjson

AttributeValue = str | bool | int | float | list[str] | list[int] | list[float] | list[bool]

# Attribute keys we set ourselves (flags about the line, not about the request).
PARSE_ERROR = "logsidecar.parse_error"
# The text of a time field that is not a real instant (Feb 30, hour 24, a bad zone ...): the record
# has no timestamp, `logsidecar.parse_error` names the field, and this keeps what was written.
TIME_ORIGINAL = "apache.time.original"
INVALID_UTF8 = "logsidecar.invalid_utf8"
TRUNCATED = "logsidecar.truncated"
FORMAT = "logsidecar.format"
LOG_FILE_PATH = "log.file.path"
LOG_FILE_NAME = "log.file.name"
# The path a line was read from on this host, when log.file.path is the path as its writer (a
# container) sees it (`docker attach`).
HOST_PATH = "logsidecar.host.path"
LOG_RECORD_UID = "log.record.uid"
# Where `timestamp` came from when not from the line itself: `engine` for a line read through a
# container engine's log API that has no time of its own (the engine's time of it, when it was written).
TIMESTAMP_SOURCE = "logsidecar.timestamp_source"
TIMESTAMP_FROM_ENGINE = "engine"


class Severity(IntEnum):
    """OpenTelemetry SeverityNumber (logs data model)."""

    UNSPECIFIED = 0
    TRACE = 1
    TRACE2 = 2
    TRACE3 = 3
    TRACE4 = 4
    DEBUG = 5
    DEBUG2 = 6
    DEBUG3 = 7
    DEBUG4 = 8
    INFO = 9
    INFO2 = 10
    INFO3 = 11
    INFO4 = 12
    WARN = 13
    WARN2 = 14
    WARN3 = 15
    WARN4 = 16
    ERROR = 17
    ERROR2 = 18
    ERROR3 = 19
    ERROR4 = 20
    FATAL = 21
    FATAL2 = 22
    FATAL3 = 23
    FATAL4 = 24


class Position(NamedTuple):
    """Where a line came from: the file's stable identity key, its path, and the byte offset just
    past the line's newline (so a checkpoint at this offset resumes with the next line).
    A named tuple (immutable) rather than a frozen dataclass: one is made per line, and
    `tuple.__new__(Position, (...))` costs a fifth of a frozen dataclass's `__init__`."""

    file_key: str
    path: str
    offset: int


@dataclass(slots=True)
class LogRecord:
    """One log line, parsed. Mutable on purpose: the pipeline stamps position and resource in place
    rather than copying every record."""

    body: str
    attributes: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None
    observed_timestamp: datetime | None = None
    severity_text: str | None = None
    severity_number: int = Severity.UNSPECIFIED
    resource: dict[str, Any] = field(default_factory=dict)
    position: Position | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (times stay datetimes; `encode_json` renders them as RFC 3339)."""
        return {
            "timestamp": self.timestamp,
            "observed_timestamp": self.observed_timestamp,
            "severity_text": self.severity_text,
            "severity_number": int(self.severity_number),
            "body": self.body,
            "attributes": self.attributes,
            "resource": self.resource,
        }


def decode_text(raw: bytes) -> tuple[str, bool]:
    """Decode bytes as UTF-8; return (text, was_valid). Invalid bytes become `\\xhh` escapes so
    that nothing is lost and the text stays valid UTF-8 for every encoder downstream."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), False


def utcnow() -> datetime:
    return datetime.now(UTC)


_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def encode_json(record: LogRecord) -> bytes:
    """One record as one JSON object (no trailing newline). Datetimes keep their UTC offset."""
    return orjson.dumps(record.to_dict(), option=_JSON_OPTIONS)


def encode_json_lines(records: Iterable[LogRecord]) -> bytes:
    """Many records as JSON lines, newline-terminated; one buffer so the sink writes once.

    Byte-for-byte what `encode_json` gives per record. Attribute keys are strings in practice, and
    orjson's non-str-key support costs ~27% of a dump (callgrind), so it is only used when a
    batch needs it (orjson raises TypeError on a non-str key; a batch that raises for another
    reason raises again the same way)."""
    shapes = [
        {
            "timestamp": r.timestamp,
            "observed_timestamp": r.observed_timestamp,
            "severity_text": r.severity_text,
            "severity_number": int(r.severity_number),
            "body": r.body,
            "attributes": r.attributes,
            "resource": r.resource,
        }
        for r in records
    ]
    if not shapes:
        return b""
    dumps = orjson.dumps
    try:
        parts = [dumps(shape) for shape in shapes]
    except TypeError:
        parts = [dumps(shape, option=_JSON_OPTIONS) for shape in shapes]
    parts.append(b"")
    return b"\n".join(parts)
