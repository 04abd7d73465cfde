"""JSON lines straight from an access log's regex rows, without building records.

The stdout JSON of a batch is, by definition, `encode_json_lines` of the parsed and stamped records
(`AccessLogParser.parse`, `BatchStamp.apply`). Building a dict and a `LogRecord` per line only for
orjson to walk them again was most of the cost of `tail → stdout` (profiled: ~4.5 µs of parsing and
~3 µs of encoding per combined line). For a line that takes the fast path (the batch regex matched
it and it holds no backslash, so there is nothing to unescape), this module writes the same JSON
text directly from the regex row, with one f-string per line. Every other line (escapes, lines the
fast regex rejected, truncated lines) is parsed, stamped and encoded the ordinary way and put back in
its place. The output is byte-for-byte what the ordinary path gives; a hypothesis property in
`tests/unit/test_access_json.py` holds us to that.

How each field becomes text (generated Python source per format, like the record builder):
- plain text (`%h`, `%u`, `%{Referer}i` ...): `,"key":` + the JSON string (`json`'s C escaper, which
  escapes exactly what orjson escapes), or nothing for `-`;
- integers: `,"key":` + `int(value)`, or nothing for `-`;
- anything else (request line, status, durations, protocol ...): the JSON text of the attributes the
  value gives is cached per distinct value (bounded), computed by running the parser's own record
  builder on a row holding only that value, so the two paths cannot disagree on meaning;
- the time: the JSON text of the parsed time, cached per distinct time string.

Formats where fields' attributes could interact (two fields filling one key, `%U%q` synthesising
`url.original`) are not written directly: `json_encoder_for` returns None and the ordinary path runs.
"""

from __future__ import annotations

import json.encoder
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from logsidecar.parse.logformat import INT, STATUS, STR, TIME
from logsidecar.record import FORMAT, PARSE_ERROR, LogRecord, encode_json
from logsidecar.stamp import BatchStamp, offset_hexes

if TYPE_CHECKING:
    from logsidecar.parse.access import AccessLogParser

__all__ = ["RowJsonEncoder", "json_encoder_for"]

# Cache bounds per field; cleared when full (memory stays bounded whatever the traffic).
_PIECE_CACHE_MAX = 4096

# The C string escaper behind json.dumps: escapes '"', '\\' and control characters like orjson,
# leaves other characters as they are, and returns str (orjson returns bytes).
_json_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]

_INFO_SEVERITY = '"severity_text":"INFO","severity_number":9'

# Slow-path hook: given the indices of lines the fast path left, return their records (parsed,
# not stamped) in the same order.
SlowParse = Callable[[list[int]], list[LogRecord]]


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class RowJsonEncoder:
    """Writes one access-log batch as JSON lines. Built once per parser (see `json_encoder_for`)."""

    def __init__(self, parser: AccessLogParser, source: str, namespace: dict[str, Any]) -> None:
        self.parser = parser
        self.source = source
        exec(compile(source, f"<json {parser.format_name}>", "exec"), namespace)  # noqa: S102
        self._encode_rows = namespace["encode_rows"]

    def encode(
        self,
        data: bytes,
        text: str,
        rows: Sequence[tuple[str, ...] | None],
        observed: datetime,
        stamp: BatchStamp,
        slow_parse: SlowParse,
    ) -> tuple[bytes, int]:
        """The JSON lines of one batch (newline-terminated) and how many lines did not parse.
        `data` is the batch's lines joined by newlines, `text` the same decoded, `rows` the batch
        regex's rows for it (one per line)."""
        head = f',"observed_timestamp":{_json(observed)},'
        tail = f'"}},"resource":{stamp.json_resource()}}}\n'
        fast_rows = list(rows)
        for index in lines_needing_escapes(data, text):
            fast_rows[index] = None
        # Fast lines hold no backslash and no control character: a quote is all JSON escapes.
        escaped = text.replace('"', '\\"').split("\n")
        out, slow = self._encode_rows(
            fast_rows, escaped, head, stamp.json_uid_head(), offset_hexes(stamp.end_offsets), tail
        )
        truncated = set(stamp.truncated)
        if truncated:  # the ordinary path adds `logsidecar.truncated` after the stamp
            slow = sorted(truncated.union(slow))
        if not slow:
            return "".join(out).encode(), 0
        records = slow_parse(slow)
        stamp.apply(records, slow)
        # Slow records may hold non-ASCII text (unescaped \xhh); joining them into the fast lines'
        # str would widen the whole batch. Fast runs are joined and encoded apart, then spliced.
        parts: list[bytes] = []
        unparsed = 0
        previous = 0
        for index, record in zip(slow, records, strict=True):
            if index > previous:
                parts.append("".join(out[previous:index]).encode())
            if PARSE_ERROR in record.attributes:
                unparsed += 1
            parts.append(encode_json(record) + b"\n")
            previous = index + 1
        parts.append("".join(out[previous:]).encode())
        return b"".join(parts), unparsed


# Bytes that JSON escapes, apart from the quote: control characters and the backslash. `\n` only
# separates lines. As a `bytes.translate` deletion table: keep exactly those bytes.
_NOT_CONTROL = bytes(range(0x20, 0x100)) + b"\n"
_NEEDS_ESCAPE = re.compile(r"[\x00-\x09\x0b-\x1f\\]")


def lines_needing_escapes(data: bytes, text: str) -> list[int]:
    """Indices of the lines holding a backslash or a control character. The common batch has
    none of the latter (httpd writes them as `\\xhh`), so one C-level pass over the bytes rules
    them out and backslashes are found with `str.find`; no per-line loop either way."""
    controls = bool(data.translate(None, _NOT_CONTROL))
    found: list[int] = []
    count, find = text.count, text.find
    line = line_start = 0
    position = _next_escape(text, 0, controls)
    while position >= 0:
        line += count("\n", line_start, position)
        found.append(line)
        end = find("\n", position)
        if end < 0:
            break
        line += 1
        line_start = end + 1
        position = _next_escape(text, line_start, controls)
    return found


def _next_escape(text: str, start: int, controls: bool) -> int:
    if controls:
        match = _NEEDS_ESCAPE.search(text, start)
        return -1 if match is None else match.start()
    return text.find("\\", start)


def json_encoder_for(parser: AccessLogParser) -> RowJsonEncoder | None:
    """The direct JSON writer for `parser`'s format, or None when the format needs the ordinary path."""
    specs = parser.field_specs
    time_specs = parser.time_specs
    keys = [key for spec in specs if spec.kind != TIME for key in spec.keys]
    if len(keys) != len(set(keys)) or parser.synthesizes_url_original:
        return None
    names = [f"v{number}" for number in range(len(specs))]
    # Fields whose fast pattern cannot hold a quote: on a fast line (no backslash, no control
    # character) their JSON string is the value itself between quotes.
    quote_free = {n for n, pattern in enumerate(parser.fast_field_patterns) if pattern == '([^"]*+)'}
    namespace: dict[str, Any] = {"enc": _json_string, "INFO": _INFO_SEVERITY}
    pieces: list[str] = []
    code: list[str] = []
    emit = code.append
    severity = "INFO"
    time_vars: list[str] = []
    for number, spec in enumerate(specs):
        var = names[number]
        if spec.kind == TIME:
            if spec in time_specs:
                time_vars.append(var)
            continue
        if not spec.keys:
            continue
        key_text = f",{_json(spec.keys[0])}:"
        if spec.kind == STR and number in quote_free:
            emit(f"    p{number} = '' if {var} == '-' else f'{key_text}\"{{{var}}}\"'")
        elif spec.kind == STR:
            emit(f"    p{number} = '' if {var} == '-' else {key_text!r} + enc({var})")
        elif spec.kind == INT:
            # Digits without a leading zero are their own JSON; anything else goes through int()
            # (the regex's \\d also takes non-ASCII digits). Beyond 18 digits orjson refuses the
            # int (64-bit): the line takes the ordinary path, whatever that does with it.
            emit(
                f"    if {var} == '-':\n        p{number} = ''\n"
                f"    elif len({var}) > 18:\n        slow.append(at >> 4)\n        append(None)\n"
                f"        at += 16\n        continue\n"
                f"    elif {var}.isascii() and ({var}[0] != '0' or len({var}) == 1):\n"
                f"        p{number} = f'{key_text}{{{var}}}'\n"
                f"    else:\n        p{number} = f'{key_text}{{int({var})}}'"
            )
        else:
            cache, compute = _piece_cache(parser, number, len(specs))
            namespace[f"get{number}"] = cache.get
            namespace[f"piece{number}"] = compute
            emit(
                f"    p{number} = get{number}({var})\n    if p{number} is None:\n        p{number} = piece{number}({var})"
            )
            if isinstance(cache, _SeverityCache):
                emit(f"    p{number}, sev = p{number}")
                severity = "sev"
        pieces.append(f"p{number}")
    if time_vars:
        time_key = time_vars[0] if len(time_vars) == 1 else "(" + ", ".join(time_vars) + ",)"
        time_cache, time_compute = _time_piece_cache(parser)
        namespace["tget"] = time_cache.get
        namespace["tpiece"] = time_compute
        emit(f"    tp = tget({time_key})\n    if tp is None:\n        tp = tpiece({time_key})")
    else:
        emit("    tp = 'null'")
    namespace["FORMAT_HEAD"] = f'","attributes":{{{_json(FORMAT)}:{_json(parser.format_name)}'
    line = (
        "{OPEN}{tp}{head}{"
        + severity
        + "}{BODY}{body}{FORMAT_HEAD}"
        + "".join("{" + p + "}" for p in pieces)
        + "{uid_head}{hexes[at:at + 16]}{tail}"
    )
    namespace["OPEN"] = '{"timestamp":'
    namespace["BODY"] = ',"body":"'
    unpack = "    " + ", ".join([*names, "bad"]) + " = row"
    source = "\n".join(
        [
            "def encode_rows(rows, escaped, head, uid_head, hexes, tail):",
            "  out = []",
            "  append = out.append",
            "  slow = []",
            "  at = 0",
            "  for body, row in zip(escaped, rows):",
            "    if row is None or not body or row[-1]:",
            "        slow.append(at >> 4)",
            "        append(None)",
            "        at += 16",
            "        continue",
            unpack,
            *code,
            f"    append(f{line!r})",
            "    at += 16",
            "  return out, slow",
        ]
    )
    return RowJsonEncoder(parser, source, namespace)


class _PieceCache(dict[str, Any]):
    """Per-field cache of JSON text per distinct value."""


class _SeverityCache(_PieceCache):
    """A status field's cache: value → (attribute text, severity text)."""


def _piece_cache(
    parser: AccessLogParser, number: int, fields: int
) -> tuple[_PieceCache, Callable[[str], Any]]:
    """The cache for field `number` and the function filling it from the parser's own builder."""
    spec = parser.field_specs[number]
    sets_severity = spec.kind == STATUS and spec.keys[0] == "http.response.status_code"
    cache: _PieceCache = _SeverityCache() if sets_severity else _PieceCache()
    blank = ["-"] * fields + [""]

    def compute(value: str) -> Any:
        row = list(blank)
        row[number] = value
        record = parser.build_rows([tuple(row)], ["-"])[0]
        text = "".join(
            f",{_json(key)}:{_json(item)}" for key, item in record.attributes.items() if key != FORMAT
        )
        piece: Any = text
        if sets_severity:
            piece = (
                text,
                f'"severity_text":{_json(record.severity_text)},"severity_number":{int(record.severity_number)}',
            )
        if len(cache) >= _PIECE_CACHE_MAX:
            cache.clear()
        cache[value] = piece
        return piece

    return cache, compute


def _time_piece_cache(parser: AccessLogParser) -> tuple[dict[Any, str], Callable[[Any], str]]:
    cache: dict[Any, str] = {}
    parse_time = parser.parse_time

    def compute(value: Any) -> str:
        moment = parse_time(value)
        text = "null" if moment is None else _json(moment)
        if len(cache) >= _PIECE_CACHE_MAX:
            cache.clear()
        cache[value] = text
        return text

    return cache, compute
