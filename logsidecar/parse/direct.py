"""Access-log batches written straight into an output encoding, without building records.

An output's encoding of a batch is, by definition, its encoder applied to the parsed and stamped
records (`AccessLogParser.parse`, `BatchStamp.apply`, then `record.encode_json_lines` or the OTLP
`LogsRequestEncoder`). Building a dict and a `LogRecord` per line only for the encoder to walk them
again was most of the cost of `tail` (profiled: ~4.5 µs of parsing and ~3 µs of JSON encoding per
combined line). For a line that takes the fast path (the batch regex matched it and it holds no
backslash and no control character, so there is nothing to unescape), a function generated per
format and per encoding (a `Dialect`: `access_json.py`, `access_otlp.py`) writes the same bytes
directly from the regex row. Every other line (escapes, lines the fast regex rejected, truncated
lines) is parsed, stamped and encoded the ordinary way and put back in its place. The output is
byte-for-byte the ordinary one; the unit tests hold both dialects to that with hypothesis.

How each field is written (generated straight-line code, like the record builder):
- plain text and integers: by the dialect's inline code;
- anything else (request line, status, durations, protocol ...): the encoding of the attributes the
  value gives is cached per distinct value (bounded), computed by running the parser's own record
  builder on a row holding only that value, so the two paths cannot disagree on meaning;
- the time: the encoding of the parsed time, cached per distinct time string.

Formats where fields' attributes could interact (two fields filling one key, `%U%q` synthesising
`url.original`) are not written directly: `DirectEncoder.build` returns None and the ordinary path runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from logsidecar.parse.logformat import INT, REQUEST, STATUS, STR, TIME, VALUE
from logsidecar.record import FORMAT, PARSE_ERROR, LogRecord
from logsidecar.stamp import BatchStamp

if TYPE_CHECKING:
    from logsidecar.parse.access import AccessLogParser

__all__ = ["Dialect", "DirectEncoder", "SlowParse", "lines_needing_escapes"]

# Cache bounds per field; cleared when full (memory stays bounded whatever the traffic).
PIECE_CACHE_MAX = 4096

# The time piece of a time that is not a real instant: such a line takes the slow path, where the
# record builder flags it (`logsidecar.parse_error`, `apache.time.original`).
BAD_TIME = object()

# Slow-path hook: given the indices of lines the fast path left, return their records (parsed,
# not stamped) in the same order.
SlowParse = Callable[[list[int]], list[LogRecord]]


class Dialect(Protocol):
    """One output encoding, as the generator needs it. Code snippets assign `p<number>` from the
    row variable `var`; `key` is the attribute's name."""

    #: Names of the generated function's per-batch arguments, after `rows, bodies`.
    batch_arguments: tuple[str, ...]
    #: True when the generated code takes rows of bytes (the batch regex run over the raw bytes of an
    #: ASCII batch: no decoding, no re-encoding of every value), False for rows of str.
    bytes_rows: bool
    #: The piece for an absent time and the severity piece for a format without a status.
    no_time: Any
    default_severity: Any

    def namespace(self) -> dict[str, Any]: ...

    def text_field(
        self, number: int, var: str, key: str, quote_free: bool, namespace: dict[str, Any]
    ) -> str: ...

    def int_field(self, number: int, var: str, key: str, namespace: dict[str, Any]) -> str: ...

    def attributes_piece(self, attributes: dict[str, Any]) -> Any: ...

    def request_piece(self, line: Any) -> Any:
        """The piece of a fast line's request line (a row value: nothing in it needs escaping or
        unescaping), the attributes `request_attributes` gives encoded; called once per distinct
        request line, and a third of them are one of a kind: it must be cheap."""
        ...

    def severity_piece(self, text: str | None, number: int) -> Any: ...

    def time_piece(self, moment: datetime | None) -> Any: ...

    def line(self, pieces: list[str], severity: str, namespace: dict[str, Any]) -> str:
        """The statement(s) appending the line's encoding to `out` (names: tp, body, at, the
        batch arguments, the pieces)."""
        ...

    def bodies(self, text: str | None, lines: Sequence[bytes]) -> Sequence[Any]: ...

    def batch_values(self, observed: datetime, stamp: BatchStamp) -> tuple[Any, ...]: ...

    def assemble(self, out: list[Any], slow: list[int], records: list[LogRecord], observed: datetime) -> Any:
        """The batch's encoding: `out` holds the fast lines' pieces and None at `slow` indices,
        whose stamped `records` are given in the same order."""
        ...


class DirectEncoder:
    """A generated writer for one parser's format in one dialect (see the module docstring)."""

    def __init__(
        self, parser: AccessLogParser, dialect: Dialect, source: str, namespace: dict[str, Any]
    ) -> None:
        self.parser = parser
        self.dialect = dialect
        self.source = source
        exec(compile(source, f"<{type(dialect).__name__} {parser.format_name}>", "exec"), namespace)  # noqa: S102
        self._encode_rows = namespace["encode_rows"]

    @classmethod
    def build(cls, parser: AccessLogParser, dialect: Dialect) -> DirectEncoder | None:
        """The writer for `parser`'s format, or None when the format needs the ordinary path."""
        specs = parser.field_specs
        keys = [key for spec in specs if spec.kind != TIME for key in spec.keys]
        if len(keys) != len(set(keys)) or parser.synthesizes_url_original:
            return None
        names = [f"v{number}" for number in range(len(specs))]
        # Fields whose fast pattern cannot hold a quote (on a fast line nothing in them needs escaping).
        quote_free = {n for n, pattern in enumerate(parser.fast_field_patterns) if pattern == '([^"]*+)'}
        namespace: dict[str, Any] = dialect.namespace()
        namespace["default_severity"] = dialect.default_severity
        pieces: list[str] = []
        code: list[str] = []
        severity = "default_severity"
        time_vars: list[str] = []
        for number, spec in enumerate(specs):
            var = names[number]
            if spec.kind == TIME:
                if spec in parser.time_specs:
                    time_vars.append(var)
                continue
            if not spec.keys:
                continue
            key = spec.keys[0]
            if spec.kind == STR:
                code.append(dialect.text_field(number, var, key, number in quote_free, namespace))
            elif spec.kind == INT:
                code.append(dialect.int_field(number, var, key, namespace))
            else:
                sets_severity = spec.kind == STATUS and key == "http.response.status_code"
                if spec.kind == REQUEST:  # request lines are often unique: no record builder
                    cache, compute = _request_piece_cache(dialect)
                else:
                    cache, compute = _piece_cache(parser, dialect, number, sets_severity)
                namespace[f"get{number}"] = cache.get
                namespace[f"piece{number}"] = compute
                code.append(
                    f"    p{number} = get{number}({var})\n    if p{number} is None:\n        p{number} = piece{number}({var})"
                )
                if sets_severity:
                    code.append(f"    p{number}, sev = p{number}")
                    severity = "sev"
            pieces.append(f"p{number}")
        if time_vars:
            time_key = time_vars[0] if len(time_vars) == 1 else "(" + ", ".join(time_vars) + ",)"
            time_cache, time_compute = _time_piece_cache(parser, dialect)
            namespace["tget"] = time_cache.get
            namespace["tpiece"] = time_compute
            namespace["BAD_TIME"] = BAD_TIME
            # A time that is not a real instant is flagged by the record builder: slow path.
            code.append(
                f"    tp = tget({time_key})\n    if tp is None:\n        tp = tpiece({time_key})\n"
                f"    if tp is BAD_TIME:\n        slow.append(at >> 4)\n        append(None)\n"
                f"        at += 16\n        continue"
            )
        else:
            namespace["no_time"] = dialect.no_time
            code.append("    tp = no_time")
        source = "\n".join(
            [
                f"def encode_rows(rows, bodies, {', '.join(dialect.batch_arguments)}):",
                "  out = []",
                "  append = out.append",
                "  slow = []",
                "  at = 0",
                "  for body, row in zip(bodies, rows):",
                "    if row is None or not body or row[-1]:",
                "        slow.append(at >> 4)",
                "        append(None)",
                "        at += 16",
                "        continue",
                "    " + ", ".join([*names, "bad"]) + " = row",
                *code,
                dialect.line(pieces, severity, namespace),
                "    at += 16",
                "  return out, slow",
            ]
        )
        return cls(parser, dialect, source, namespace)

    def encode(
        self,
        data: bytes,
        text: str | None,
        lines: Sequence[bytes],
        rows: Sequence[tuple[Any, ...] | None],
        observed: datetime,
        stamp: BatchStamp,
        slow_parse: SlowParse,
    ) -> tuple[Any, int]:
        """The batch's encoding and how many lines did not parse. `data` is the batch's `lines`
        joined by newlines, `text` the same decoded (None for a bytes-rows dialect), `rows` the batch
        regex's rows (one per line, str or bytes as the dialect takes them)."""
        dialect = self.dialect
        needing_escapes = lines_needing_escapes(data)
        if needing_escapes:
            rows = list(rows)
            for index in needing_escapes:
                rows[index] = None
        out, slow = self._encode_rows(
            rows, dialect.bodies(text, lines), *dialect.batch_values(observed, stamp)
        )
        if stamp.truncated:  # the ordinary path adds `logsidecar.truncated` after the stamp
            slow = sorted(set(stamp.truncated).union(slow))
        records = slow_parse(slow) if slow else []
        stamp.apply(records, slow)
        unparsed = sum(PARSE_ERROR in record.attributes for record in records)
        return dialect.assemble(out, slow, records, observed), unparsed


# Bytes that need escaping in JSON or unescaping from Apache's notation: control characters and the
# backslash (`\n` only separates lines). As a `bytes.translate` deletion table: keep exactly those.
_NOT_CONTROL = bytes(range(0x20, 0x100)) + b"\n"
_NEEDS_ESCAPE = re.compile(rb"[\x00-\x09\x0b-\x1f\\]")


def lines_needing_escapes(data: bytes) -> list[int]:
    """Indices of the lines of `data` (lines joined by newlines) holding a backslash or a control
    character. The common batch has none of the latter (httpd writes them as `\\xhh`), so one C-level
    pass rules them out and backslashes are found with `bytes.find`; no per-line loop either way."""
    controls = bool(data.translate(None, _NOT_CONTROL))
    found: list[int] = []
    count, find = data.count, data.find
    line = line_start = 0
    position = _next_escape(data, 0, controls)
    while position >= 0:
        line += count(b"\n", line_start, position)
        found.append(line)
        end = find(b"\n", position)
        if end < 0:
            break
        line += 1
        line_start = end + 1
        position = _next_escape(data, line_start, controls)
    return found


def _next_escape(data: bytes, start: int, controls: bool) -> int:
    if controls:
        match = _NEEDS_ESCAPE.search(data, start)
        return -1 if match is None else match.start()
    return data.find(b"\\", start)


def as_text(value: Any) -> Any:
    """A field value (or a tuple of them) from a bytes row, as the str the record builder takes.
    Bytes rows come from ASCII batches only, so decoding cannot fail or change a character."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, tuple):
        return tuple(as_text(item) for item in value)
    return value


def _piece_cache(
    parser: AccessLogParser, dialect: Dialect, number: int, sets_severity: bool
) -> tuple[dict[Any, Any], Callable[[Any], Any]]:
    """The cache for field `number` and the function filling it from the parser's own builder:
    value → piece, or (piece, severity piece) for the status that sets the severity."""
    cache: dict[Any, Any] = {}  # keyed by the row's value: str or bytes, as the dialect's rows are
    # Every other field absent: `-`, or '' for a field where `-` is a value.
    blank = ["" if spec.kind == VALUE else "-" for spec in parser.field_specs] + [""]

    def compute(value: str | bytes) -> Any:
        row = list(blank)
        row[number] = as_text(value)
        record = parser.build_rows([tuple(row)], ["-"])[0]
        attributes = {key: item for key, item in record.attributes.items() if key != FORMAT}
        piece: Any = dialect.attributes_piece(attributes)
        if sets_severity:
            piece = (piece, dialect.severity_piece(record.severity_text, int(record.severity_number)))
        if len(cache) >= PIECE_CACHE_MAX:
            cache.clear()
        cache[value] = piece
        return piece

    return cache, compute


def _request_piece_cache(dialect: Dialect) -> tuple[dict[Any, Any], Callable[[Any], Any]]:
    """Request line → piece (`Dialect.request_piece`), cached per distinct line."""
    cache: dict[Any, Any] = {}

    def compute(value: str | bytes) -> Any:
        piece = dialect.request_piece(value)
        if len(cache) >= PIECE_CACHE_MAX:
            cache.clear()
        cache[value] = piece
        return piece

    return cache, compute


def _time_piece_cache(
    parser: AccessLogParser, dialect: Dialect
) -> tuple[dict[Any, Any], Callable[[Any], Any]]:
    cache: dict[Any, Any] = {}
    parse_time = parser.parse_time

    def compute(value: Any) -> Any:
        text = as_text(value)
        moment = parse_time(text)
        piece = (
            BAD_TIME if moment is None and parser.bad_time(text) is not None else dialect.time_piece(moment)
        )
        if len(cache) >= PIECE_CACHE_MAX:
            cache.clear()
        cache[value] = piece
        return piece

    return cache, compute
