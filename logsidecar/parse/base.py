"""The parser contract shared by every format.

A parser turns a batch of raw lines (bytes, without their trailing newline) into exactly one
`LogRecord` per line, in order. It never raises on input: a line that does not match is returned
with its raw body and the attribute `logsidecar.parse_error` holding a short reason. Parsers may be
stateful (the `auto` parser locks onto a format), so callers build one parser per file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from logsidecar.record import LogRecord


class FormatError(ValueError):
    """An invalid format specification (bad LogFormat directive, unknown preset ...). The message
    points at the offending part so it can be shown to the user as is."""


class Parser(Protocol):
    #: The name reported in `logsidecar.format` and in metrics ("combined", "error", "logformat" ...).
    format_name: str

    def parse(self, lines: Sequence[bytes]) -> list[LogRecord]:
        """One record per line, same order. `observed_timestamp` is set (one value per batch)."""
        ...
