"""The two formats that need no Apache knowledge: `json` (one JSON object per line) and `raw`.

JsonParser: the object's fields become attributes. Nested objects are flattened with dots
(`{"http": {"status": 200}}` → `http.status`); scalars and lists of scalars are kept as they are;
a list holding objects or lists is kept as its compact JSON text (attribute values must be
scalars or homogeneous lists); `null` is left out (an absent value is left out, never zero).
The first of `timestamp`, `@timestamp`, `time` that parses becomes the record's timestamp
(RFC 3339 / ISO 8601 text, a naive one read in `timezone`; or a number of seconds since the epoch,
with milli/micro/nanoseconds recognised by magnitude), and the first of `level`, `severity` that
is a string becomes `severity_text`, mapped with `severity.severity_from_name`. Fields used for
timestamp or severity are not repeated as attributes. A line that is not a JSON object keeps its
raw body and gets `logsidecar.parse_error`.

RawParser: the line as body, nothing else; severity UNSPECIFIED. Not a parse error: raw was asked for.

Both keep the body as the raw line and satisfy the Parser contract (one record per line, never raise).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

import orjson

from logsidecar.parse.base import parse_each
from logsidecar.parse.severity import severity_from_name
from logsidecar.record import FORMAT, INVALID_UTF8, PARSE_ERROR, LogRecord, decode_text, utcnow

__all__ = ["JsonParser", "RawParser", "flatten_json_object", "parse_json_time"]

TIMESTAMP_KEYS = ("timestamp", "@timestamp", "time")
LEVEL_KEYS = ("level", "severity")
_SCALARS = (str, int, float, bool)


def flatten_json_object(
    obj: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Nested dicts → dotted keys; see the module docstring for how values are kept."""
    if out is None:
        out = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if value is None:
            continue
        if isinstance(value, dict):
            flatten_json_object(value, f"{name}.", out)
        elif isinstance(value, list) and not all(isinstance(v, _SCALARS) for v in value):
            out[name] = orjson.dumps(value).decode()
        else:
            out[name] = value
    return out


def parse_json_time(value: Any, timezone: tzinfo = UTC) -> datetime | None:
    """An ISO 8601 string or an epoch number → offset-aware datetime; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
        magnitude = abs(seconds)
        if magnitude >= 1e17:  # nanoseconds
            seconds /= 1e9
        elif magnitude >= 1e14:  # microseconds
            seconds /= 1e6
        elif magnitude >= 1e11:  # milliseconds
            seconds /= 1e3
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone)
        return parsed
    return None


class JsonParser:
    """One JSON object per line → attributes, timestamp and severity."""

    format_name = "json"

    def __init__(self, timezone: tzinfo = UTC) -> None:
        self.timezone = timezone

    def parse(self, lines: Sequence[bytes]) -> list[LogRecord]:
        return parse_each(lines, self._parse_line, self.format_name)

    def _parse_line(self, raw: bytes, observed: datetime) -> LogRecord:
        text, valid = decode_text(raw)
        attributes: dict[str, Any] = {FORMAT: self.format_name}
        if not valid:
            attributes[INVALID_UTF8] = True
        record = LogRecord(body=text, attributes=attributes, observed_timestamp=observed)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            attributes[PARSE_ERROR] = f"invalid JSON: {exc}"
            return record
        if not isinstance(obj, dict):
            attributes[PARSE_ERROR] = f"JSON {type(obj).__name__}, not an object"
            return record
        for key in TIMESTAMP_KEYS:
            if key in obj:
                timestamp = parse_json_time(obj[key], self.timezone)
                if timestamp is not None:
                    record.timestamp = timestamp
                    del obj[key]
                    break
        for key in LEVEL_KEYS:
            level = obj.get(key)
            if isinstance(level, str):
                record.severity_text = level
                record.severity_number = severity_from_name(level)
                del obj[key]
                break
        for key, value in flatten_json_object(obj).items():
            # `logsidecar.*` is our own namespace: a line cannot set (or fake) our flags.
            if not key.startswith("logsidecar."):
                attributes[key] = value
        return record


class RawParser:
    """The line as body; nothing parsed."""

    format_name = "raw"

    def parse(self, lines: Sequence[bytes]) -> list[LogRecord]:
        observed = utcnow()
        records: list[LogRecord] = []
        append = records.append
        for raw in lines:
            try:
                append(
                    LogRecord(
                        body=raw.decode("utf-8"), attributes={FORMAT: "raw"}, observed_timestamp=observed
                    )
                )
            except UnicodeDecodeError:
                text, _ = decode_text(raw)
                append(
                    LogRecord(
                        body=text, attributes={FORMAT: "raw", INVALID_UTF8: True}, observed_timestamp=observed
                    )
                )
        return records
