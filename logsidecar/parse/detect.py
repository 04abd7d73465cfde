"""`auto`: pick the format of a file by its name and its content, line by line if need be.

Candidates, in default order: `error` (httpd's built-in error-log formats), the access presets
`vhost_combined`, `combinedio`, `combined`, `common`, each preceded by its common custom variants
(the preset with one of `TRAILING_FIELDS` appended, named like `combined+%D`: the name says which
LogFormat was recognised, `variant_logformat` gives it), then `json` and `ssl_request` (the
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
import re
from collections.abc import Callable, Sequence
from datetime import UTC, tzinfo
from typing import Any, cast

from logsidecar.parse.base import FormatError, Parser
from logsidecar.record import FORMAT, INVALID_UTF8, PARSE_ERROR, LogRecord, decode_text, utcnow

__all__ = ["AutoParser", "DEFAULT_CANDIDATES", "VARIANTS", "candidate_order", "variant_logformat"]

# What custom LogFormats most often append to a preset: the time taken (%D, microseconds),
# mod_logio's bytes received and sent (%I %O), the client address a proxy forwarded (quoted: left
# unquoted and last, it would take any text at all and hide every other variant). %T (seconds)
# and %{ms}T look exactly like %D (one integer): such a line is recognised as `+%D`, and
# `INTEGER_TIME_NOTE` says so wherever the detection is shown.
TRAILING_FIELDS = (" %D", " %I %O", ' "%{X-Forwarded-For}i"')
INTEGER_TIME_NOTE = (
    "a trailing integer is read as %D (microseconds); if your LogFormat ends with %T (seconds) or "
    "%{ms}T, give it with --format 'logformat:...'"
)
_VARIANT_BASES = ("combined", "common", "vhost_combined")
VARIANTS: dict[str, tuple[str, str]] = {  # name -> (preset, appended LogFormat text)
    f"{base}+{suffix.strip()}": (base, suffix)
    for base in _VARIANT_BASES
    for suffix in TRAILING_FIELDS
    if not (base == "combined" and suffix == " %I %O")  # that one is the preset combinedio
}


# Each preset's variants just before it: a preset's lenient regex would take a variant's line (its
# last quoted field swallowing the one appended), and a variant must not take a line of a preset
# tried after it (common+"%{X-Forwarded-For}i" would read combined's referer and agent as one field).
def _with_variants(preset: str) -> tuple[str, ...]:
    return (*(v for v, (base, _) in VARIANTS.items() if base == preset), preset)


ACCESS_CANDIDATES = tuple(
    name
    for preset in ("vhost_combined", "combinedio", "combined", "common")
    for name in _with_variants(preset)
)
DEFAULT_CANDIDATES = ("error", *ACCESS_CANDIDATES, "json", "ssl_request")
NO_MATCH = "no known format matched"


def variant_logformat(name: str) -> str | None:
    """The LogFormat of a detected variant (`combined+%D` -> the combined preset then ` %D`), to pin
    it with `--format 'logformat:...'`; None for any other name."""
    if name not in VARIANTS:
        return None
    from logsidecar.parse.access import PRESETS

    base, suffix = VARIANTS[name]
    return PRESETS[base] + suffix


# mod_ssl's request log (Red Hat's ssl.conf). If the LogFormat compiler does not know mod_ssl's
# `%{VAR}x`, the same values are read as `%{VAR}e`: mod_ssl exports them as those env variables.
_SSL_REQUEST_FORMATS = (
    '%t %h %{SSL_PROTOCOL}x %{SSL_CIPHER}x "%r" %b',
    '%t %h %{SSL_PROTOCOL}e %{SSL_CIPHER}e "%r" %b',
)

# (glob on the file's base name, candidates to put first), first match wins.
_NAME_HINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("other_vhosts_access*", _with_variants("vhost_combined")),
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

    if name in VARIANTS:
        return compile_logformat(cast(str, variant_logformat(name)), format_name=name, timezone=timezone)
    if name == "ssl_request":
        for fmt in _SSL_REQUEST_FORMATS:
            try:
                return compile_logformat(fmt, format_name="ssl_request", timezone=timezone)
            except FormatError:
                continue
        return None
    return preset_parser(name)


_CLOSE_ENOUGH = 5.0  # failing at field 5 or later: the first four matched


def _matched_fields(reason: str) -> float:
    """How far a LogFormat got on a line, from its reason (`parse.mismatch`): failing at field N
    means N-1 matched; "unexpected text after field N" means all N did (and more is there)."""
    match = re.search(r"(at|after) field (\d+)", reason)
    if match is None:
        return 0.0
    number = int(match.group(2))
    return number + 0.5 if match.group(1) == "after" else float(number)


def _with_reasons(parser: Parser, lines: Sequence[bytes]) -> list[LogRecord]:
    """`parser.parse(lines)`, with each rejection's failing field found (see `explain_rejections`)."""
    explains = getattr(parser, "explain_rejections", True)
    if explains:
        return parser.parse(lines)
    parser.explain_rejections = True  # type: ignore[attr-defined]
    try:
        return parser.parse(lines)
    finally:
        parser.explain_rejections = False  # type: ignore[attr-defined]


def _field_count(parser: Parser) -> int:
    from logsidecar.parse.logformat import Directive, tokenize

    logformat = getattr(parser, "logformat", "")
    return sum(isinstance(token, Directive) for token in tokenize(logformat)) if logformat else 0


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
                verdicts = _with_reasons(locked, [lines[indices[n]] for n in unparsed])
                for n, verdict in zip(unparsed, verdicts, strict=True):
                    records[n] = verdict
        return records

    def closest(self, line: bytes) -> tuple[str, str] | None:
        """For a line no candidate parses: the access format that matched it furthest, and its
        reason (which field it diverged at), e.g. ("combined", "does not match LogFormat:
        unexpected text after field 9"). None when no access format matched its first four fields
        (client, identity, user, time: below that, calling it close would mislead)."""
        best: tuple[tuple[float, int], str, str] | None = None
        for name in self._names:
            if name not in ACCESS_CANDIDATES:
                continue
            parser = self._parser(name)
            if parser is None:
                continue
            [record] = _with_reasons(parser, [line])
            reason = record.attributes.get(PARSE_ERROR)
            if reason is None:
                return None  # it parses: nothing is closest
            matched = _matched_fields(str(reason))
            # as far as another: the one with fewer fields left is closer
            score = (matched, -_field_count(parser))
            if matched >= _CLOSE_ENOUGH and (best is None or score > best[0]):
                best = (score, name, str(reason))
        return (best[1], best[2]) if best is not None else None

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
        # Only the verdicts of the format locked onto are ever shown: the others skip finding the
        # failing field, most of a rejection's cost (with every candidate explaining, a line no
        # format matches cost 1.5-2.5 times as much). A lock that moves is explained below.
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
            if hasattr(parser, "explain_rejections"):
                parser.explain_rejections = name == locked
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
        if self._locked is not None and self._locked != locked and pending:
            new = self._parser(self._locked)
            if new is not None and hasattr(new, "explain_rejections"):
                verdicts = dict(zip(pending, _with_reasons(new, [lines[i] for i in pending]), strict=True))
        for index in pending:
            results[index] = verdicts.get(index) or _unmatched(lines[index], NO_MATCH)
        return cast(list[LogRecord], results)  # every slot is filled above


def _unmatched(line: bytes, reason: str) -> LogRecord:
    text, valid = decode_text(line)
    attributes: dict[str, Any] = {FORMAT: "auto", PARSE_ERROR: reason}
    if not valid:
        attributes[INVALID_UTF8] = True
    return LogRecord(body=text, attributes=attributes)
