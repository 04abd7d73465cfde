"""Our own logs: one line per internal event on stderr, JSON or readable, rate-limited.

JSON is the default when stderr is not a terminal (containers), a readable line otherwise; the
readable line escapes control characters (`logsidecar.terminal`), JSON escapes them by itself.
A repeating event with the same key (event + path + reason) is logged at most once per
`repeat_interval_s`; the next line says how many were suppressed, so nothing is hidden.
Every field goes through `logsidecar.redact` (header values, URL credentials, ${VAR} values), and
fields whose name says secret (token, password, headers ...) are never printed at all.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

import orjson

from logsidecar import events
from logsidecar.events import EVENT_LEVELS, Event, Level
from logsidecar.redact import redact_value
from logsidecar.terminal import escape_controls

_LEVEL_ORDER = {Level.DEBUG: 0, Level.INFO: 1, Level.WARNING: 2, Level.ERROR: 3}
# Field names whose values are secrets: never printed.
_SECRET_HINTS = ("authorization", "token", "password", "secret", "api-key", "api_key", "headers")


class LogStyle(StrEnum):
    JSON = "json"
    TEXT = "text"
    AUTO = "auto"


class SelfLogger:
    def __init__(
        self,
        stream: TextIO | None = None,
        style: LogStyle = LogStyle.AUTO,
        level: Level = Level.INFO,
        repeat_interval_s: float = 30.0,
    ) -> None:
        self.stream = stream or sys.stderr
        if style is LogStyle.AUTO:
            style = LogStyle.TEXT if self.stream.isatty() else LogStyle.JSON
        self.style = style
        self.min_level = _LEVEL_ORDER[level]
        self.repeat_interval_s = repeat_interval_s
        self._last: dict[tuple[str, ...], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def __call__(self, event: Event, fields: dict[str, Any]) -> None:
        level = Level(fields.pop("level", EVENT_LEVELS.get(event, Level.INFO)))
        if _LEVEL_ORDER[level] < self.min_level:
            return
        suppressed = self._suppressed_count(event, level, fields)
        if suppressed is None:
            return
        if suppressed:
            fields = {**fields, "suppressed": suppressed}
        self.stream.write(self._format(event, level, fields) + "\n")
        self.stream.flush()

    def _suppressed_count(self, event: Event, level: Level, fields: dict[str, Any]) -> int | None:
        """None when this line is to be swallowed; else how many were swallowed before it."""
        if level not in (Level.WARNING, Level.ERROR):
            return 0
        key = (
            str(event),
            str(fields.get("path", "")),
            str(fields.get("sink", "")),
            str(fields.get("reason", "")),
        )
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.repeat_interval_s:
                self._last[key] = (last[0], last[1] + 1)
                return None
            self._last[key] = (now, 0)
            return last[1] if last else 0

    def _format(self, event: Event, level: Level, fields: dict[str, Any]) -> str:
        clean = {
            k: ("***" if any(h in k.lower() for h in _SECRET_HINTS) else redact_value(v))
            for k, v in fields.items()
        }
        ts = datetime.now(UTC)
        if self.style is LogStyle.JSON:
            return orjson.dumps(
                {"time": ts, "level": str(level), "event": str(event), **clean}, default=str
            ).decode()
        details = " ".join(f"{escape_controls(k)}={logfmt_value(v)}" for k, v in clean.items())
        return f"{ts:%H:%M:%S} {level.upper():7} {event} {details}".rstrip()


def logfmt_value(value: Any) -> str:
    """A value as logfmt writes it: lists and mappings as JSON (never a Python repr), booleans
    true/false, None null; quoted (with \\ and \" escaped) when empty or holding a space, `=`, a
    quote, a backslash or a control character (as \\xhh). Values carry file names, log content and
    peers' errors: never raw control characters."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    if text and not any(c in text for c in ' ="\\') and escape_controls(text) == text:
        return text
    # Escaped first, so that the \xhh of a control character stays one escape for a logfmt reader.
    return '"' + escape_controls(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def install(
    style: LogStyle = LogStyle.AUTO, level: Level = Level.INFO, stream: TextIO | None = None
) -> SelfLogger:
    """Subscribe a SelfLogger to the event bus and return it."""
    logger = SelfLogger(stream=stream, style=style, level=level)
    events.subscribe(logger)
    return logger
