"""`auto`: pick the format of a file by its name and its content, line by line if need be.

Candidates, in default order: `error` (httpd's built-in error-log formats), the access presets
`vhost_combined`, `combinedio`, `combined`, `common`, then `json` and `ssl_request` (the
`%t %h %{SSL_PROTOCOL}x %{SSL_CIPHER}x "%r" %b` log of Red Hat's ssl.conf). The file name only
reorders them (content always decides):

    other_vhosts_access*   vhost_combined first (Debian's name for it)
    ssl_request*           ssl_request first
    *access*               the access presets first
    *error*                error first

How a batch is parsed: the locked parser (the format the file was last seen in) parses the whole
batch; lines it rejects are offered to the other candidates in order (as one sub-batch each, so
detection stays batched), and the first candidate that parses a line wins it. Afterwards the lock
moves to the format of the latest line that parsed, so a file whose format changes (a new
LogFormat after a reload) keeps parsing and the lock follows it. Before any line has parsed,
nothing is locked and every candidate is tried in order: "locks onto the first format that matches".

Invariants: one record per line, in order, never raises; `logsidecar.format` names the format
that parsed the line ("error", "combined" ...). A line no candidate accepts carries the
rejection of the format the file is locked onto after its batch (its reason names the field
that failed), or, when nothing is locked yet, `logsidecar.parse_error` = "no known format matched"
with format "auto". One `observed_timestamp` per batch. A parser is stateful: build one per file.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence
from datetime import UTC, tzinfo
from typing import Any, cast

from logsidecar.parse.base import FormatError, Parser
from logsidecar.record import FORMAT, INVALID_UTF8, PARSE_ERROR, LogRecord, decode_text, utcnow

__all__ = ["AutoParser", "DEFAULT_CANDIDATES", "candidate_order"]

ACCESS_CANDIDATES = ("vhost_combined", "combinedio", "combined", "common")
DEFAULT_CANDIDATES = ("error", *ACCESS_CANDIDATES, "json", "ssl_request")
NO_MATCH = "no known format matched"

# mod_ssl's request log (Red Hat's ssl.conf). If the LogFormat compiler does not know mod_ssl's
# `%{VAR}x`, the same values are read as `%{VAR}e`: mod_ssl exports them as those env variables.
_SSL_REQUEST_FORMATS = (
    '%t %h %{SSL_PROTOCOL}x %{SSL_CIPHER}x "%r" %b',
    '%t %h %{SSL_PROTOCOL}e %{SSL_CIPHER}e "%r" %b',
)

# (glob on the file's base name, candidates to put first), first match wins.
_NAME_HINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("other_vhosts_access*", ("vhost_combined",)),
    ("ssl_request*", ("ssl_request",)),
    ("*access*", ACCESS_CANDIDATES),
    ("*error*", ("error",)),
)


def candidate_order(path: str | None) -> tuple[str, ...]:
    """The candidate formats for a file, most likely first, from its name."""
    if not path:
        return DEFAULT_CANDIDATES
    name = os.path.basename(path).lower()
    for pattern, first in _NAME_HINTS:
        if fnmatch.fnmatchcase(name, pattern):
            return (*first, *(c for c in DEFAULT_CANDIDATES if c not in first))
    return DEFAULT_CANDIDATES


def _build_candidate(name: str, timezone: tzinfo) -> Parser | None:
    """A fresh parser for one candidate; None when it cannot be built (then it is skipped)."""
    if name == "error":
        from logsidecar.parse.errorlog import ErrorLogParser

        return ErrorLogParser(timezone=timezone)
    if name == "json":
        from logsidecar.parse.simple import JsonParser

        return JsonParser(timezone=timezone)
    from logsidecar.parse.access import compile_logformat, preset_parser

    if name == "ssl_request":
        for fmt in _SSL_REQUEST_FORMATS:
            try:
                return compile_logformat(fmt, format_name="ssl_request", timezone=timezone)
            except FormatError:
                continue
        return None
    return preset_parser(name)


def _could_be_json(line: bytes) -> bool:
    return line.lstrip()[:1] == b"{"


class AutoParser:
    """Detects the format per file (and per rejected line); see the module docstring."""

    def __init__(
        self,
        timezone: tzinfo = UTC,
        path: str | None = None,
        candidates: Sequence[str] | None = None,
        *,
        build: Callable[[str, tzinfo], Parser | None] = _build_candidate,
    ) -> None:
        self.timezone = timezone
        self.path = path
        self._names = tuple(candidates) if candidates is not None else candidate_order(path)
        self._build = build
        self._parsers: dict[str, Parser | None] = {}
        self._locked: str | None = None
        #: The format the file is currently locked onto, or "auto" before any line parsed.
        self.format_name = "auto"

    def parse(self, lines: Sequence[bytes]) -> list[LogRecord]:
        observed = utcnow()
        try:
            records = self._parse(lines)
        except Exception as exc:  # noqa: BLE001 - the contract: never raise on input
            records = [_unmatched(line, f"internal error: {type(exc).__name__}") for line in lines]
        for record in records:
            record.observed_timestamp = observed
        return records

    def locked_parser(self) -> tuple[str | None, Parser | None]:
        """The format the file is locked onto and its parser; (None, None) before any line parsed."""
        name = self._locked
        return name, (self._parser(name) if name is not None else None)

    def search_rejected(
        self, lines: Sequence[bytes], indices: list[int], before: str | None, locked: Parser | None
    ) -> list[LogRecord]:
        """Records for the lines `indices` of `lines` that the parser locked onto `before` (`locked`)
        rejected, as `parse` of the whole batch would give them: `parse` locks onto the format of
        the latest line parsed, so the lock stays when the locked parser parsed a later line."""
        records = self.parse([lines[i] for i in indices])
        parsed = [
            i for i, record in zip(indices, records, strict=True) if PARSE_ERROR not in record.attributes
        ]
        rejected = set(indices)
        last_locked = next((i for i in range(len(lines) - 1, -1, -1) if i not in rejected), -1)
        if parsed and last_locked > parsed[-1]:
            self._locked = self.format_name = before  # type: ignore[assignment]
            # `parse` gives a line nobody parses the verdict of the format it ends locked onto.
            unparsed = [n for n, record in enumerate(records) if PARSE_ERROR in record.attributes]
            if unparsed and locked is not None:
                verdicts = locked.parse([lines[indices[n]] for n in unparsed])
                for n, verdict in zip(unparsed, verdicts, strict=True):
                    records[n] = verdict
        return records

    def _parser(self, name: str) -> Parser | None:
        if name not in self._parsers:
            self._parsers[name] = self._build(name, self.timezone)
        return self._parsers[name]

    def _parse(self, lines: Sequence[bytes]) -> list[LogRecord]:
        results: list[LogRecord | None] = [None] * len(lines)
        # Each candidate's verdict on the lines it could not parse: a line nobody parses gets
        # the verdict of the format the file ends up locked onto (its reason names the field).
        rejected: dict[str, dict[int, LogRecord]] = {}
        pending = list(range(len(lines)))
        latest_index = -1
        latest_format: str | None = None
        locked = self._locked
        order = self._names if locked is None else (locked, *(n for n in self._names if n != locked))
        for name in order:
            if not pending:
                break
            parser = self._parser(name)
            if parser is None:
                continue
            if name == "json" and locked != "json":  # cheap pre-check: only '{' lines can be JSON objects
                offered = [i for i in pending if _could_be_json(lines[i])]
            else:
                offered = pending
            if not offered:
                continue
            records = parser.parse([lines[i] for i in offered])
            verdicts = rejected.setdefault(name, {})
            parsed_here = set()
            for index, record in zip(offered, records, strict=True):
                if PARSE_ERROR in record.attributes:
                    verdicts[index] = record
                    continue
                results[index] = record
                parsed_here.add(index)
                if index > latest_index:
                    latest_index, latest_format = index, name
            if parsed_here:
                pending = [i for i in pending if i not in parsed_here]
        if latest_format is not None:
            self._locked = self.format_name = latest_format
        verdicts = rejected.get(self._locked, {}) if self._locked is not None else {}
        for index in pending:
            results[index] = verdicts.get(index) or _unmatched(lines[index], NO_MATCH)
        return cast(list[LogRecord], results)  # every slot is filled above


def _unmatched(line: bytes, reason: str) -> LogRecord:
    text, valid = decode_text(line)
    attributes: dict[str, Any] = {FORMAT: "auto", PARSE_ERROR: reason}
    if not valid:
        attributes[INVALID_UTF8] = True
    return LogRecord(body=text, attributes=attributes)
