"""The fast path's generated writer: access-log rows written straight into an output encoding.

An output's encoding of a batch is, by definition, its encoder applied to the parsed and stamped
records (`AccessLogParser.parse`, `BatchStamp.apply`, then `record.encode_json_lines` or the OTLP
`LogsRequestEncoder`). Building a dict and a `LogRecord` per line only for the encoder to walk them
again was most of the cost of `tail` (profiled: ~4.5 µs of parsing and ~3 µs of JSON encoding per
combined line). For a line that takes the fast path (the batch regex matched it and it holds no
backslash and no control character, so there is nothing to unescape), a function generated per
format and per encoding (a `Dialect`: `json_dialect.py`, `otlp_dialect.py`) writes the same bytes
directly from the regex row. A line holding Apache escapes (~1.6 % of realistic lines: `\\xhh` in
user agents and targets, `\\"`) is written by a second generated loop, `encode_escaped`, from the
row the record builder would take (the fast row, or the strict regex's for a line holding `\\"`),
undoing escapes field by field as that builder does. Every other line (control characters, lines
no regex reads, truncated lines, an escape in a field that loop does not unescape) is parsed,
stamped and encoded the ordinary way and put back in its place. The output is byte-for-byte the
ordinary one; the unit tests hold both dialects to that with hypothesis and per escape kind.

How each field is written (generated straight-line code, like the record builder):
- plain text and integers: by the dialect's inline code;
- anything else (request line, status, durations, protocol ...): the encoding of the attributes the
  value gives is cached per distinct value (bounded), computed by running the parser's own record
  builder on a row holding only that value, so the two paths cannot disagree on meaning;
- the time: the encoding of the parsed time, cached per distinct time string.

Formats where fields' attributes could interact (two fields filling one key, `%U%q` synthesising
`url.original`) are not written directly: `DirectEncoder.build` returns None and the ordinary path runs.

The generated loop walks the batch's offsets as a list of OFFSET_HEX_DIGITS hex digits per line
(`offset_hex_list`, made in C for the whole batch), beside the bodies and rows: no index arithmetic
per line. Every line appends exactly one item to `out`, so `len(out)` is the current line's index. A
dialect's field code sends a line it cannot write to the slow path with the `to_slow` statements it
is given; it never writes loop control itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any, Protocol

from logsidecar.fastpath.batch_scan import (
    CONTROL_BYTE,
    escape_marks,
    has_control_bytes,
    lines_needing_escapes,
)
from logsidecar.parse.access import CompiledFormat
from logsidecar.parse.codegen import Emitter
from logsidecar.parse.fields import INT, REQUEST, STATUS, STR, TIME, USER, VALUE, FieldSpec
from logsidecar.parse.line_regex import FAST_QUOTED_TEXT
from logsidecar.parse.request_line import request_attributes
from logsidecar.record import FORMAT, INVALID_UTF8, PARSE_ERROR, LogRecord, utcnow
from logsidecar.stamp import BatchStamp

__all__ = [
    "Dialect",
    "DirectEncoder",
    "HasCompiledFormat",
    "SlowParse",
]

# The fast pattern of a quoted text field: it cannot hold a quote.
QUOTED_FAST = f"({FAST_QUOTED_TEXT})"

# Cache bounds per field; cleared when full (memory stays bounded whatever the traffic). 1024, not
# 4096: on the realistic combined file the request cache hits 52 % of lines instead of 63 %, at the
# same CPU (tail -> JSON 4.79 vs 4.86 CPU s per 1M lines) and 1-2 MiB less RSS (footprint.py).
PIECE_CACHE_MAX = 1024

# The time piece of a time that is not a real instant: such a line takes the slow path, where the
# record builder flags it (`logsidecar.parse_error`, `apache.time.original`).
BAD_TIME = object()

# Slow-path hook: given the indices of lines the fast path left, return their records (parsed,
# not stamped) in the same order.
SlowParse = Callable[[list[int]], list[LogRecord]]


class HasCompiledFormat(Protocol):
    """A parser of a compiled LogFormat (`AccessLogParser`)."""

    @property
    def compiled(self) -> CompiledFormat: ...


class Dialect(Protocol):
    """One output encoding, as the generator needs it. Field code assigns `p<number>` from the
    row variable `var`; `key` is the attribute's name."""

    #: Names of the generated function's per-batch arguments, after `rows, bodies, offsets`.
    batch_arguments: tuple[str, ...]
    #: True when the generated code takes rows of bytes (the batch regex run over the raw bytes of an
    #: ASCII batch: no decoding, no re-encoding of every value), False for rows of str.
    bytes_rows: bool
    #: The piece for an absent time and the severity piece for a format without a status.
    no_time: Any
    default_severity: Any

    def namespace(self) -> dict[str, Any]: ...

    def text_field(
        self, emit: Emitter, number: int, var: str, key: str, quote_free: bool, namespace: dict[str, Any]
    ) -> None: ...

    def int_field(
        self,
        emit: Emitter,
        number: int,
        var: str,
        key: str,
        namespace: dict[str, Any],
        to_slow: Callable[[Emitter], None],
    ) -> None:
        """Code for an integer field; `to_slow(emit)` writes the statements that hand the line to
        the slow path (for a value the dialect does not write itself)."""
        ...

    def attributes_piece(self, attributes: dict[str, Any]) -> Any: ...

    def request_piece(self, line: Any) -> Any:
        """The piece of a fast line's request line (a row value: nothing in it needs escaping or
        unescaping), the attributes `request_attributes` gives encoded; called once per distinct
        request line, and a third of them are one of a kind: it must be cheap."""
        ...

    def severity_piece(self, text: str | None, number: int) -> Any: ...

    def time_piece(self, moment: datetime | None) -> Any: ...

    def line(self, emit: Emitter, pieces: list[str], severity: str, uid_offset: str) -> None:
        """The statement(s) appending the line's encoding to `out` (names: tp, body, the batch
        arguments, the pieces; `uid_offset` is the name of the line's offset hex digits)."""
        ...

    def bodies(self, text: str | None, lines: Sequence[bytes]) -> Sequence[Any]: ...

    def offsets(self, end_offsets: Sequence[int]) -> Sequence[Any]:
        """Each line's offset digits (`offset_hex_list`), as str or bytes as the dialect writes them."""
        ...

    def batch_values(self, observed: datetime, stamp: BatchStamp) -> tuple[Any, ...]: ...

    def unescape(self, value: Any) -> tuple[Any, bool]:
        """`unescape_log_value` on a row value (str or bytes as the rows are)."""
        ...

    def text_value(self, emit: Emitter, number: int, var: str, key: str, namespace: dict[str, Any]) -> None:
        """Code assigning `p<number>` the piece of a text value other than `-` that may hold any
        character (an unescaped value)."""
        ...

    def escaped_bodies(self, lines: Sequence[bytes], indices: Sequence[int]) -> list[Any]:
        """The bodies of the lines at `indices`, as the generated line code takes them."""
        ...

    def escaped_encoding(self, item: Any) -> Any:
        """A line's final encoding from what `encode_escaped` appended for it."""
        ...

    def record_encodings(self, records: list[LogRecord], observed: datetime) -> list[Any]:
        """Each stamped record's final encoding."""
        ...

    def assemble(self, out: list[Any], done: list[int], encodings: list[Any]) -> Any:
        """The batch's encoding: `out` holds the fast lines' pieces; the lines at `done` (in order)
        are written by their final `encodings` instead."""
        ...


# The generated code's name of the current line's offset digits (an item of `offset_hex_list`).
UID_OFFSET = "uid_offset"


def _to_slow(emit: Emitter) -> None:
    """The line goes to the slow path: its index (the count of lines before it: each appends one
    item to `out`) is remembered, its slot in `out` left empty."""
    emit.line("slow.append(len(out))", "append(None)")
    emit.line("continue")


class DirectEncoder:
    """A generated writer for one format in one dialect (see the module docstring)."""

    def __init__(
        self, compiled: CompiledFormat, dialect: Dialect, emit: Emitter, namespace: dict[str, Any]
    ) -> None:
        self.compiled = compiled
        self.dialect = dialect
        self.source = emit.source()
        filename = f"<{type(dialect).__name__} {compiled.format_name}>"
        self._encode_rows = emit.compile("encode_rows", namespace, filename)
        self._encode_escaped = namespace["encode_escaped"]
        self._namespace = namespace

    def request_cache_sizes(self) -> list[int]:
        """How many pieces each request-line cache holds (bounded by PIECE_CACHE_MAX)."""
        return [len(cache) for name, cache in self._namespace.items() if name.startswith("cache")]

    @classmethod
    def build(cls, compiled: CompiledFormat, dialect: Dialect) -> DirectEncoder | None:
        """The writer for the format, or None when the format needs the ordinary path."""
        specs = compiled.fields
        keys = [key for spec in specs if spec.kind != TIME for key in spec.keys]
        if len(keys) != len(set(keys)) or compiled.synthesizes_url_original:
            return None
        namespace: dict[str, Any] = dialect.namespace()
        namespace["default_severity"] = dialect.default_severity
        namespace["unescape"] = dialect.unescape
        namespace["request_attributes"] = request_attributes
        namespace["attributes_piece"] = dialect.attributes_piece
        namespace["row_text"] = as_text
        namespace["INVALID_UTF8"] = INVALID_UTF8
        namespace["INV"] = dialect.attributes_piece({INVALID_UTF8: True})
        namespace["BS"], namespace["DASH"] = ("\\", "-") if not dialect.bytes_rows else (b"\\", b"-")
        namespace["EMPTY_QUOTES"] = '""' if not dialect.bytes_rows else b'""'
        namespace["EMPTY"] = "" if not dialect.bytes_rows else b""
        emit = Emitter()
        _emit_encode_rows(emit, compiled, dialect, namespace, escaped=False)
        _emit_encode_rows(emit, compiled, dialect, namespace, escaped=True)
        return cls(compiled, dialect, emit, namespace)

    def encode(
        self,
        data: bytes,
        text: str | None,
        lines: Sequence[bytes],
        rows: Sequence[tuple[Any, ...] | None],
        observed: datetime,
        stamp: BatchStamp,
        slow_parse: SlowParse,
        marks: bytes | None = None,
    ) -> tuple[Any, int]:
        """The batch's encoding and how many lines did not parse. `data` is the batch's `lines`
        joined by newlines, `text` the same decoded (None for a bytes-rows dialect), `rows` the batch
        regex's rows (one per line, str or bytes as the dialect takes them), `marks` its
        `escape_marks` when the caller has them."""
        dialect = self.dialect
        offsets = dialect.offsets(stamp.end_offsets)
        values = dialect.batch_values(observed, stamp)
        if marks is None:
            marks = escape_marks(data)
        needing_escapes = lines_needing_escapes(data, marks)
        escaped: list[int] = []
        escaped_rows: list[Any] = []
        if needing_escapes:
            rows = list(rows)
            truncated = stamp.truncated
            exact_row, bytes_rows = self.compiled.exact_row, dialect.bytes_rows
            controls = has_control_bytes(marks)
            for index in needing_escapes:
                row = rows[index]
                rows[index] = None
                line = lines[index]
                if index in truncated or (controls and CONTROL_BYTE.search(line)):
                    continue
                if b'\\"' in line:  # the fast row may be split at an escaped quote: the record
                    # path's row is the strict regex's (`AccessWriter.write`'s slow lines)
                    row = exact_row(line.decode())
                    if row is not None and bytes_rows:  # an ASCII batch: encoding changes nothing
                        row = tuple(map(str.encode, row))
                escaped.append(index)
                escaped_rows.append(row)
        out, slow = self._encode_rows(rows, dialect.bodies(text, lines), offsets, *values)
        done: list[int] = []
        encodings: list[Any] = []
        if escaped:
            escaped_out, _ = self._encode_escaped(
                escaped_rows, dialect.escaped_bodies(lines, escaped), [offsets[i] for i in escaped], *values
            )
            finish = dialect.escaped_encoding
            for index, item in zip(escaped, escaped_out, strict=True):
                if item is not None:
                    done.append(index)
                    encodings.append(finish(item))
            if done:
                written = set(done)
                slow = [index for index in slow if index not in written]
        if stamp.truncated:  # the ordinary path adds `logsidecar.truncated` after the stamp
            slow = sorted(set(stamp.truncated).union(slow))
        records = slow_parse(slow) if slow else []
        stamp.apply(records, slow)
        unparsed = sum(PARSE_ERROR in record.attributes for record in records)
        if done:  # both lists are in line order: merge them
            pairs = sorted(
                zip([*done, *slow], [*encodings, *dialect.record_encodings(records, observed)], strict=True)
            )
            return dialect.assemble(out, [i for i, _ in pairs], [e for _, e in pairs]), unparsed
        return dialect.assemble(out, slow, dialect.record_encodings(records, observed)), unparsed


def _emit_encode_rows(
    emit: Emitter, compiled: CompiledFormat, dialect: Dialect, namespace: dict[str, Any], escaped: bool
) -> None:
    """The generated loop: `encode_rows` for fast lines or, `escaped`, `encode_escaped` for lines
    holding Apache escapes (a backslash; no `\\"`, no control character: their fast row is the row
    the record builder takes). The latter undoes escapes per field as the record builder does
    (`access_builder.py`): a text field's value is unescaped when it holds a backslash, the first
    value that is not UTF-8 puts `logsidecar.invalid_utf8` before its own key, a request line with a
    backslash is read by `request_attributes` uncached; any other escapable field holding a
    backslash sends the line to the slow path."""
    specs = compiled.fields
    names = [f"v{number}" for number in range(len(specs))]
    # Fields whose fast pattern cannot hold a quote (on a fast line nothing in them needs escaping).
    quote_free = {n for n, pattern in enumerate(compiled.fast_field_patterns) if pattern == QUOTED_FAST}
    pieces: list[str] = []
    severity = "default_severity"
    time_vars = [
        names[n] for n, spec in enumerate(specs) if spec.kind == TIME and spec in compiled.time_fields
    ]
    function = "encode_escaped" if escaped else "encode_rows"
    with emit.block(f"def {function}(rows, bodies, offsets, {', '.join(dialect.batch_arguments)}):"):
        emit.line("out = []", "append = out.append", "slow = []")
        with emit.block(f"for body, row, {UID_OFFSET} in zip(bodies, rows, offsets):"):
            with emit.block("if row is None or not body or row[-1]:"):  # no fast row: slow path
                _to_slow(emit)
            emit.line(", ".join([*names, "bad"]) + " = row")
            if escaped:
                emit.line("inv = False")
            for number, (var, spec) in enumerate(zip(names, specs, strict=True)):
                if spec.kind == TIME or not spec.keys:
                    continue
                key = spec.keys[0]
                if escaped and spec.kind in (STR, USER):
                    _emit_escaped_text(emit, dialect, number, var, key, spec, namespace)
                elif spec.kind == STR:
                    dialect.text_field(emit, number, var, key, number in quote_free, namespace)
                elif spec.kind == INT:
                    dialect.int_field(emit, number, var, key, namespace, _to_slow)
                else:
                    sets_severity = spec.kind == STATUS and key == "http.response.status_code"
                    if escaped and spec.kind == REQUEST:
                        # As the record builder: an escaped request line is read uncached.
                        with emit.block(f"if BS in {var}:"):
                            emit.line(f"rq = request_attributes(row_text({var}))")
                            with emit.block("if INVALID_UTF8 in rq:"):
                                with emit.block("if inv:"):  # already set by an earlier field
                                    emit.line("del rq[INVALID_UTF8]")
                                emit.line("inv = True")
                            emit.line(f"p{number} = attributes_piece(rq)")
                    elif escaped and spec.escapable:
                        with emit.block(f"if BS in {var}:"):  # not unescaped here: the record path
                            _to_slow(emit)
                    cached = emit.block("else:") if escaped and spec.kind == REQUEST else nullcontext()
                    with cached:
                        _emit_cached_piece(
                            emit, compiled, dialect, namespace, number, var, spec.kind, sets_severity
                        )
                    if sets_severity:
                        emit.line(f"p{number}, sev = p{number}")
                        severity = "sev"
                pieces.append(f"p{number}")
            if time_vars:
                time_key = time_vars[0] if len(time_vars) == 1 else "(" + ", ".join(time_vars) + ",)"
                if "tget" not in namespace:
                    time_cache, time_compute = _time_piece_cache(compiled, dialect)
                    namespace["tget"] = time_cache.get
                    namespace["tpiece"] = time_compute
                    namespace["BAD_TIME"] = BAD_TIME
                emit.line(f"tp = tget({time_key})")
                with emit.block("if tp is None:"):
                    emit.line(f"tp = tpiece({time_key})")
                # A time that is not a real instant is flagged by the record builder: slow path.
                with emit.block("if tp is BAD_TIME:"):
                    _to_slow(emit)
            else:
                namespace["no_time"] = dialect.no_time
                emit.line("tp = no_time")
            dialect.line(emit, pieces, severity, UID_OFFSET)
        emit.line("return out, slow")


def _emit_cached_piece(
    emit: Emitter,
    compiled: CompiledFormat,
    dialect: Dialect,
    namespace: dict[str, Any],
    number: int,
    var: str,
    kind: str,
    sets_severity: bool,
) -> None:
    """`p<number>` from the field's piece cache (shared by both generated loops)."""
    emit.line(f"p{number} = get{number}({var})")
    if kind == REQUEST:
        # Request lines are often unique (half of them miss on the realistic file): the dialect's
        # own code, no record builder, cached right here (no wrapper call per miss).
        if f"cache{number}" not in namespace:
            request_cache: dict[Any, Any] = {}
            namespace[f"cache{number}"] = request_cache
            namespace[f"get{number}"] = request_cache.get
            namespace[f"piece{number}"] = dialect.request_piece
        with emit.block(f"if p{number} is None:"):
            emit.line(f"p{number} = piece{number}({var})")
            with emit.block(f"if len(cache{number}) >= {PIECE_CACHE_MAX}:"):
                emit.line(f"cache{number}.clear()")
            emit.line(f"cache{number}[{var}] = p{number}")
    else:
        if f"get{number}" not in namespace:
            cache, compute = _piece_cache(compiled, dialect, number, sets_severity)
            namespace[f"get{number}"] = cache.get
            namespace[f"piece{number}"] = compute
        with emit.block(f"if p{number} is None:"):
            emit.line(f"p{number} = piece{number}({var})")


def _emit_escaped_text(
    emit: Emitter,
    dialect: Dialect,
    number: int,
    var: str,
    key: str,
    spec: FieldSpec,
    namespace: dict[str, Any],
) -> None:
    """A text or user field of an escaped line: `-` is absent (tested before unescaping, as the
    record builder does: `\\x2d` is a value), a user `""` is the empty name, an escapable value with
    a backslash unescaped, the invalid-UTF-8 flag put before the field's own key when it is the first."""
    escapable = spec.escapable
    with emit.block(f"if {var} == DASH:"):
        emit.line(f"p{number} = EMPTY")
    with emit.block("else:"):
        if spec.kind == USER:  # `""` is how httpd writes an empty user name
            with emit.block(f"if {var} == EMPTY_QUOTES:"):
                emit.line(f"{var} = EMPTY")
        if escapable:
            emit.line("fix = False")
            with emit.block(f"if BS in {var}:"):
                emit.line(f"{var}, ok = unescape({var})")
                with emit.block("if not ok and not inv:"):
                    emit.line("inv = fix = True")
        dialect.text_value(emit, number, var, key, namespace)
        if escapable:
            with emit.block("if fix:"):
                emit.line(f"p{number} = INV + p{number}")


def as_text(value: Any) -> Any:
    """A field value (or a tuple of them) from a bytes row, as the str the record builder takes.
    Bytes rows come from ASCII batches only, so decoding cannot fail or change a character."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, tuple):
        return tuple(as_text(item) for item in value)
    return value


def _piece_cache(
    compiled: CompiledFormat, dialect: Dialect, number: int, sets_severity: bool
) -> tuple[dict[Any, Any], Callable[[Any], Any]]:
    """The cache for field `number` and the function filling it from the parser's own builder:
    value → piece, or (piece, severity piece) for the status that sets the severity."""
    cache: dict[Any, Any] = {}  # keyed by the row's value: str or bytes, as the dialect's rows are
    # Every other field absent: `-`, or '' for a field where `-` is a value.
    blank = ["" if spec.kind == VALUE else "-" for spec in compiled.fields] + [""]

    def compute(value: str | bytes) -> Any:
        row = list(blank)
        row[number] = as_text(value)
        record = compiled.build_rows([tuple(row)], ["-"], utcnow())[0]
        attributes = {key: item for key, item in record.attributes.items() if key != FORMAT}
        piece: Any = dialect.attributes_piece(attributes)
        if sets_severity:
            piece = (piece, dialect.severity_piece(record.severity_text, int(record.severity_number)))
        if len(cache) >= PIECE_CACHE_MAX:
            cache.clear()
        cache[value] = piece
        return piece

    return cache, compute


def _time_piece_cache(
    compiled: CompiledFormat, dialect: Dialect
) -> tuple[dict[Any, Any], Callable[[Any], Any]]:
    cache: dict[Any, Any] = {}
    parse_time = compiled.parse_time

    def compute(value: Any) -> Any:
        text = as_text(value)
        moment = parse_time(text)
        piece = (
            BAD_TIME if moment is None and compiled.bad_time(text) is not None else dialect.time_piece(moment)
        )
        if len(cache) >= PIECE_CACHE_MAX:
            cache.clear()
        cache[value] = piece
        return piece

    return cache, compute
