"""Apache access logs: any mod_log_config LogFormat, compiled into one fast batch parser.

Entry points: `compile_logformat(fmt)` (a bare format, a quoted one, or a pasted
`LogFormat "..." nickname` / `CustomLog file "..."` line) and `preset_parser(name)`.

Presets (upstream mod_log_config / httpd.conf definitions; Debian's apache2.conf differs in that
its `common` and `combined` log `%O`, bytes sent with headers, where upstream logs `%b`, the body
size. Both write a number, so Debian files parse with the upstream preset too; only the meaning of
that one number differs. For exact Debian semantics use `logformat:` with Debian's string):

    common          %h %l %u %t "%r" %>s %b
    combined        %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"
    vhost_combined  %v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"   (Debian's; no upstream one)
    combinedio      %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %I %O
    referer         %{Referer}i -> %U
    agent           %{User-agent}i

Attributes (OpenTelemetry semantic conventions; Apache-only fields under `apache.`). `-` means
absent: the attribute is left out, never zero (except `%X`, whose `-` is a value). A directive
with a status condition (`%400,501{User-agent}i`, `%!200t`) is `-` when the condition is not met.
Values carrying Apache escapes (`\\"`, `\\\\`, `\\xhh`, `\\n` ...) are unescaped and read as UTF-8;
bytes that are not UTF-8 become U+FFFD and the record gets `logsidecar.invalid_utf8` (why: see
`escape.py`); the body keeps the line as written.

    directive          attribute                                  type
    %a                 client.address                             str
    %{c}a              network.peer.address                       str
    %h                 client.address (apache.remote_host if %a is also present)  str
    %{c}h              apache.peer_host                           str
    %A                 network.local.address                      str
    %b %B              http.response.body.size                    int
    %{NAME}C           apache.cookie.NAME                         str
    %D %T %{s|ms|us}T  http.server.request.duration (seconds; the finest unit present wins;
                       negative if the wall clock stepped back during the request)  float
    %^FB               apache.time_to_first_byte (seconds; mod_logio, LogIOTrackTTFB On)  float
    %{VAR}e            apache.env.VAR                             str
    %f                 apache.filename                            str
    %H                 network.protocol.name / .version ("http", "1.1") (if no %r)  str
    %{Referer}i        http.request.header.referer                str
    %{User-Agent}i     user_agent.original                        str
    %{Name}i           http.request.header.<name lowercased>      str
    %k                 apache.keepalive_requests                  int
    %l                 apache.remote_logname                      str
    %L                 apache.request_log_id                      str
    %m                 http.request.method (if no %r)             str
    %{VAR}n            apache.note.VAR                            str
    %{Name}o           http.response.header.<name lowercased>     str
    %p %{canonical}p   server.port                                int
    %{local}p          network.local.port                         int
    %{remote}p         client.port                                int
    %P %{pid}P         process.pid                                int
    %{tid}P %{hextid}P thread.id                                  int
    %q                 url.query (no leading '?'; if no %r, else apache.url_query)  str
    %r                 http.request.method, url.original (the request target), url.path,
                       url.query (without '?', present when the target has a '?'),
                       network.protocol.name, network.protocol.version;
                       a request line that is not `METHOD TARGET [NAME/VERSION]` (TLS bytes,
                       garbage, a refused line httpd cut after its second space: `GET /a b`)
                       is kept whole as apache.request_line                     str
    %R                 apache.handler                             str
    %>s                http.response.status_code                  int
    %s %<s             http.response.status_code, or apache.original_status_code when %>s is present  int
    %t %{fmt}t         the record timestamp (not an attribute); `%{}t %{begin}t %{end}t` are CLF;
                       a time that is not a real instant: apache.time.original   str
    %u                 user.name (may hold spaces: httpd does not escape them)  str
    %U                 url.path (apache.url_path if %r is present); with no %r, url.original = %U%q  str
    %v                 server.address (apache.canonical_server_name if repeated)   str
    %V                 server.address, or apache.server_name when %v is present    str
    %X                 apache.connection_status ("X", "+", "-"; `-` is a value)  str
    %I %O %S           apache.bytes_received / apache.bytes_sent / apache.bytes_transferred  int
    %{Name}^ti %{Name}^to  apache.request_trailer.<name> / apache.response_trailer.<name>  str
    %{SSL_CIPHER}x %{cipher}c  tls.cipher (mod_ssl)                str
    %{VAR}x %{item}c   apache.ssl.VAR / apache.ssl.item (mod_ssl)  str
    (always)           logsidecar.format = the format name ("combined", "logformat" ...)

Header attributes are single strings as Apache wrote them (semantic conventions allow string[];
httpd already joins repeated headers into one value). Two free-text directives with nothing
between them (`%{X}i%{Y}i`) are ambiguous; the later one takes the text.

Record fields: `timestamp` from `%t` (the line's UTC offset kept) or from `%{...}t` pieces
(strftime parts joined and parsed together, `msec_frac`/`usec_frac` added, `sec`/`msec`/`usec`
as UTC; `begin:` times are preferred over `end:`; a strftime time without `%z` is taken as UTC;
strftime pieces that repeat a field are read one by one, the first that parses wins);
a time that matches its pattern but is not a real instant (Feb 30, hour 24, no or a bad zone) gives
no timestamp, `logsidecar.parse_error` = `invalid time in <directive(s)>: not a real instant` and
`apache.time.original` = the text as written (pieces joined by a space; CLF without brackets);
parsed times are cached per distinct string. `severity`: final status 5xx → ERROR (17), 4xx →
WARN (13), anything else, including no status, → INFO (9). `body` is the raw line.
`observed_timestamp` is one datetime per batch.

A line that does not match gets its raw body, no timestamp, severity UNSPECIFIED and
`logsidecar.parse_error` = a short reason naming the first field that failed.

Speed (the design): the format becomes ONE regex with a capture group per field. A batch is
joined with `\\n`, decoded once and run through `re.findall` in MULTILINE mode with
`^(?:FAST|([^\\n]*))$`: every line yields exactly one tuple, and a line the fast pattern rejects
shows up in the last group instead of breaking the framing. FAST uses single-character negations
(`[^"]*+`, `[^ ]++`), which sre scans about twice as fast as character sets; it is not
escape-aware, so lines holding `\\"` (found with one substring test per batch) and lines it
rejects are re-matched with the exact, escape-aware STRICT regex; if a fast match ran across a
newline (fewer rows than lines), the batch is redone line by line with STRICT. Lines STRICT
rejects get one more try with a lenient regex (quoted fields matched lazily, for third-party logs
that do not escape quotes) before being reported as unparsable. Per-line attribute building is
Python source generated for this format (straight-line code, constant keys, no per-field
dispatch), compiled once; request lines and times are parsed once per distinct string (bounded
caches); the cyclic GC is paused while a batch's records are built.
"""

from __future__ import annotations

import dataclasses
import gc
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from functools import partial
from typing import Any

from logsidecar.encoding.otlp_wire import encode_otlp_records
from logsidecar.parse.access_json import json_encoder_for
from logsidecar.parse.access_otlp import otlp_encoder_for
from logsidecar.parse.base import FormatError
from logsidecar.parse.direct import DirectEncoder, SlowParse
from logsidecar.parse.escape import unescape_log_value
from logsidecar.parse.logformat import (
    DURATION,
    HEXINT,
    INT,
    PROTOCOL,
    QUERY,
    REQUEST,
    STATUS,
    STR,
    TIME,
    USER,
    VALUE,
    Directive,
    FieldSpec,
    Literal,
    bounded_duration,
    bounded_int,
    compile_fields,
    field_guard,
    field_pattern,
    field_patterns,
    line_regex,
    literal_text,
    next_is_text,
    normalize_format_text,
    tokenize,
)
from logsidecar.parse.request_line import PROTOCOL_TABLE, protocol_info, request_attributes
from logsidecar.parse.timestamps import TimeCache, parse_clf_time, parse_epoch, parse_strftime
from logsidecar.record import (
    FORMAT,
    INVALID_UTF8,
    PARSE_ERROR,
    TIME_ORIGINAL,
    LogRecord,
    Severity,
    decode_text,
    encode_json_lines,
    utcnow,
)
from logsidecar.stamp import BatchStamp

__all__ = ["PRESETS", "AccessLogParser", "compile_logformat", "preset_parser"]

PRESETS: dict[str, str] = {
    "common": '%h %l %u %t "%r" %>s %b',
    "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"',
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    "combinedio": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %I %O',
    "referer": "%{Referer}i -> %U",
    "agent": "%{User-agent}i",
}

_SEVERITY_BY_CLASS = {
    "5": ("ERROR", int(Severity.ERROR)),
    "4": ("WARN", int(Severity.WARN)),
}
_INFO = ("INFO", int(Severity.INFO))
_REQUEST_CACHE_ENTRIES = 16384


def status_info(text: str) -> tuple[int, str, int]:
    """'404' → (404, 'WARN', 13): the status code with the severity it implies."""
    sev_text, sev_number = _SEVERITY_BY_CLASS.get(text[:1], _INFO) if len(text) == 3 else _INFO
    return int(text), sev_text, sev_number


_STATUS_TABLE = {str(code): status_info(str(code)) for code in range(100, 1000)}


# Positional construction is measurably cheaper in the hot loop; fall back to keywords if
# LogRecord's field order ever changes. Passing `{}` for resource skips the factory call.
_POSITIONAL_FIELDS = ("body", "attributes", "timestamp", "observed_timestamp", "severity_text",
                      "severity_number", "resource")  # fmt: skip
if tuple(f.name for f in dataclasses.fields(LogRecord))[:7] == _POSITIONAL_FIELDS:
    _RECORD_CALL = "LogRecord(body, a, ts, observed, sev_text, sev_number, {})"
else:  # pragma: no cover - only if record.py changes
    _RECORD_CALL = (
        "LogRecord(body=body, attributes=a, timestamp=ts, observed_timestamp=observed,"
        " severity_text=sev_text, severity_number=sev_number)"
    )


class AccessLogParser:
    """A compiled LogFormat. Stateless apart from caches, so safe to reuse across batches."""

    def __init__(self, fmt: str, format_name: str = "logformat", *, timezone: tzinfo = UTC) -> None:
        """`fmt` is a bare LogFormat string (see `compile_logformat` for pasted/quoted ones)."""
        text = fmt
        tokens = tokenize(text)
        if not any(isinstance(t, Directive) for t in tokens):
            raise FormatError(f"LogFormat {text!r} has no % directive: nothing to parse")
        self.format_name = format_name
        self.logformat = text
        self._tokens = tokens
        self._specs = compile_fields(tokens)
        self._timezone = timezone
        strict = line_regex(tokens, self._specs, lenient=False)
        fast = line_regex(tokens, self._specs, lenient=False, fast=True)
        lenient = line_regex(tokens, self._specs, lenient=True)
        try:
            # The last group catches a line the fast pattern rejects, so every line still
            # yields exactly one row (unless a fast match ran across a newline: see parse()).
            self._batch_regex = re.compile(rf"^(?:{fast}|([^\n]*))\r?$", re.MULTILINE)
            self._strict_line = re.compile(rf"(?:{strict})\r?")
            self._lenient_line = re.compile(rf"(?:{lenient})\r?")
        except re.error as exc:  # e.g. a strftime format our translation cannot express
            raise FormatError(f"LogFormat {text!r} cannot be compiled to a regex: {exc}") from exc
        self._prefix_regexes: list[re.Pattern[str] | None] | None = None
        self._time_cache = TimeCache(self._make_time_parser())
        self._request_cache: dict[str, dict[str, Any]] = {}
        self._build = self._generate_builder()
        # Direct writers (built on first use; False: not built yet, None: format not supported).
        self._json_encoder: DirectEncoder | None | bool = False
        self._otlp_encoder: DirectEncoder | None | bool = False
        self._batch_regex_bytes: re.Pattern[bytes] | None | bool = False

    # --- public ------------------------------------------------------------------------------

    def parse(self, lines: Sequence[bytes]) -> list[LogRecord]:
        observed = utcnow()
        if not lines:
            return []
        invalid: list[int] = []
        try:
            text = b"\n".join(lines).decode("utf-8")
        except UnicodeDecodeError:
            bodies_valid = [decode_text(line) for line in lines]
            text = "\n".join(body for body, _ in bodies_valid)
            invalid = [i for i, (_, ok) in enumerate(bodies_valid) if not ok]
        bodies = text.split("\n")
        if len(bodies) != len(lines):  # a "line" held a newline: frame each one alone
            return self._parse_each(lines, observed)
        # Each line allocates a row tuple, a dict and a record, all alive until the batch ends,
        # so the cyclic GC would rescan them over and over (measured: ~30% of parse time).
        # Nothing here creates cycles; pause the collector for the batch only.
        gc_was_enabled = gc.isenabled()
        if gc_was_enabled:
            gc.disable()
        try:
            records = self._parse_framed(text, bodies, observed)
        finally:
            if gc_was_enabled:
                gc.enable()
        for index in invalid:
            records[index].attributes[INVALID_UTF8] = True
        return records

    def encode_json_lines(
        self, lines: Sequence[bytes], stamp: BatchStamp, slow_parse: SlowParse | None = None
    ) -> tuple[bytes, int]:
        """`encode_json_lines` of the parsed, stamped batch, and how many lines did not parse,
        written without building records where the line allows (see `direct.py`). `slow_parse`
        re-parses the lines this parser left unparsed (the `auto` parser passes its own search)."""
        if self._json_encoder is False:
            self._json_encoder = json_encoder_for(self)
        return self._encode_direct(self._json_encoder, lines, stamp, slow_parse, encode_json_lines)  # type: ignore[arg-type]

    def encode_otlp_records(
        self, lines: Sequence[bytes], stamp: BatchStamp, slow_parse: SlowParse | None = None
    ) -> tuple[list[bytes], int]:
        """The OTLP `LogRecord`s of the parsed, stamped batch (each as `LogsRequestEncoder.encode_record`
        writes it), and how many lines did not parse; see `encode_json_lines`."""
        if self._otlp_encoder is False:
            self._otlp_encoder = otlp_encoder_for(self)
        return self._encode_direct(self._otlp_encoder, lines, stamp, slow_parse, encode_otlp_records)  # type: ignore[arg-type]

    def _encode_direct(
        self,
        encoder: DirectEncoder | None,
        lines: Sequence[bytes],
        stamp: BatchStamp,
        slow_parse: SlowParse | None,
        ordinary: Callable[[list[LogRecord]], Any],
    ) -> tuple[Any, int]:
        observed = utcnow()
        data = b"\n".join(lines)
        text: str | None = None
        rows: list[tuple[Any, ...] | None] = []
        framed = bool(lines) and data.count(b"\n") == len(lines) - 1
        if encoder is not None and framed:
            bytes_regex = self._bytes_batch_regex() if encoder.dialect.bytes_rows and data.isascii() else None
            if bytes_regex is not None:
                rows = bytes_regex.findall(data)
            elif not encoder.dialect.bytes_rows:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                else:
                    rows = self._batch_regex.findall(text)
        if encoder is None or not framed or len(rows) != len(lines):
            records = self.parse(lines)
            if slow_parse is not None:
                _reparse_unparsed(records, slow_parse)
            stamp.apply(records)
            return ordinary(records), sum(PARSE_ERROR in r.attributes for r in records)

        def slow(indices: list[int]) -> list[LogRecord]:
            exact_row = self._exact_row
            bodies = [lines[i].decode("utf-8") for i in indices]
            # A bytes row may differ from the str row on a line with \x1c-\x1f (str's \s takes
            # them): such lines are slow lines, matched again here as the str batch regex would
            # (no match ran across a newline, so matching the line alone gives its batch row).
            if text is None:
                text_rows = [self._batch_regex.findall(body)[0] for body in bodies]
            else:
                text_rows = [rows[i] for i in indices]
            picked = [
                exact_row(body) if '\\"' in body else row for row, body in zip(text_rows, bodies, strict=True)
            ]
            records = self._build(picked, bodies, observed)
            if slow_parse is not None:
                _reparse_unparsed(records, slow_parse, indices)
            return records  # type: ignore[no-any-return]

        gc_was_enabled = gc.isenabled()
        if gc_was_enabled:
            gc.disable()
        try:
            return encoder.encode(data, text, lines, rows, observed, stamp, slow)
        finally:
            if gc_was_enabled:
                gc.enable()

    # --- what access_json needs to write JSON the way the record builder would -----------------

    @property
    def field_specs(self) -> list[FieldSpec]:
        return list(self._specs)

    @property
    def fast_field_patterns(self) -> list[str]:
        return field_patterns(self._tokens, self._specs, lenient=False, fast=True)

    @property
    def time_specs(self) -> list[FieldSpec]:
        return self._time_specs()

    @property
    def synthesizes_url_original(self) -> bool:
        """True when one attribute is computed from two fields (`%U%q` without `%r`)."""
        return self._synthesizes_url_original

    def build_rows(self, rows: Sequence[tuple[str, ...] | None], bodies: list[str]) -> list[LogRecord]:
        """Records for regex rows (the generated builder), observed now."""
        return self._build(rows, bodies, utcnow())  # type: ignore[no-any-return]

    def parse_time(self, value: Any) -> datetime | None:
        return self._time_cache.get(value)

    def _bytes_batch_regex(self) -> re.Pattern[bytes] | None:
        """The batch regex over bytes, for ASCII batches (where it matches exactly what the str one
        matches); None when the pattern itself is not ASCII (a literal like `é` in the LogFormat)."""
        if self._batch_regex_bytes is False:
            pattern = self._batch_regex.pattern
            self._batch_regex_bytes = (
                re.compile(pattern.encode(), re.MULTILINE) if pattern.isascii() else None
            )
        return self._batch_regex_bytes  # type: ignore[return-value]

    def _parse_framed(self, text: str, bodies: list[str], observed: datetime) -> list[LogRecord]:
        """Records for `bodies` (the lines of `text`, which is them joined with newlines)."""
        # Every match starts at a line start and ends at a line end, so there is at most one
        # per line; as many rows as lines means each line is exactly one row, in order. Fewer
        # means a fast pattern ran across a newline (an unbalanced quote): redo this batch
        # line by line with the strict regex.
        rows: list[tuple[str, ...] | None] = self._batch_regex.findall(text)
        exact_row = self._exact_row
        if len(rows) != len(bodies):
            rows = [exact_row(body) for body in bodies]
        else:
            # The fast pattern is not escape-aware: lines holding an escaped quote get the
            # strict regex. Found with C-level find/count on the batch text, no per-line loop.
            find, count = text.find, text.count
            position = find('\\"')
            index = line_start = 0
            while position >= 0:
                start = text.rfind("\n", 0, position) + 1
                index += count("\n", line_start, start)
                line_start = start
                rows[index] = exact_row(bodies[index])
                end = find("\n", position)
                if end < 0:
                    break
                position = find('\\"', end)
        return self._build(rows, bodies, observed)  # type: ignore[no-any-return]

    # --- slow paths --------------------------------------------------------------------------

    def _parse_each(self, lines: Sequence[bytes], observed: datetime) -> list[LogRecord]:
        out: list[LogRecord] = []
        for line in lines:
            body, ok = decode_text(line)
            record = self._build([self._exact_row(body)], [body], observed)[0]
            if not ok:
                record.attributes[INVALID_UTF8] = True
            out.append(record)
        return out

    def _exact_row(self, body: str) -> tuple[str, ...] | None:
        """The strict regex's row for one line (shaped like a batch row: fields, then an empty
        'unmatched' slot), or None if it does not match."""
        match = self._strict_line.fullmatch(body)
        return None if match is None else (*match.groups(default=""), "")

    def _unmatched(self, body: str, observed: datetime) -> LogRecord:
        """A line the strict regex rejected: try the lenient one, else report why."""
        if body and body.count('"') <= 16 and len(body) <= 16384:  # bound the lazy backtracking
            match = self._lenient_line.fullmatch(body)
            if match is not None:
                return self._build([(*match.groups(default=""), "")], [body], observed)[0]  # type: ignore[no-any-return]
        return LogRecord(
            body,
            {FORMAT: self.format_name, PARSE_ERROR: self._mismatch_reason(body)},
            None,
            observed,
        )

    def _mismatch_reason(self, body: str) -> str:
        if not body:
            return "empty line"
        if self._prefix_regexes is None:
            self._prefix_regexes = self._compile_prefixes()
        field_number = 0
        for index, token in enumerate(self._tokens):
            if isinstance(token, Directive):
                field_number += 1
            prefix = self._prefix_regexes[index]
            last = index == len(self._tokens) - 1
            if (
                prefix is not None
                and (prefix.fullmatch(body.rstrip("\r")) if last else prefix.match(body)) is None
            ):
                if isinstance(token, Directive):
                    return f"does not match LogFormat at field {field_number} ({token.source})"
                following = next((t for t in self._tokens[index:] if isinstance(t, Directive)), None)
                if following is not None:  # a literal separator failed: blame the field it introduces
                    return f"does not match LogFormat at field {field_number + 1} ({following.source})"
                return f"does not match LogFormat: unexpected text after field {field_number}"
        return f"does not match LogFormat: unexpected text after field {field_number}"

    def _compile_prefixes(self) -> list[re.Pattern[str] | None]:
        """For each token, the strict regex of the format up to and including it. The fields before
        it are guarded by what follows them (see `field_pattern`), as in the line regex; the last
        field is not, so a prefix ending at a field blames that field, not the text after it."""
        fragments: list[str] = []
        specs = iter(self._specs)
        out: list[re.Pattern[str] | None] = []
        tokens = self._tokens
        for index, token in enumerate(tokens):
            if isinstance(token, Literal):
                fragments.append(re.escape(token.text))
                last = re.escape(token.text)
            else:
                before = literal_text(tokens, index - 1)
                nxt = tokens[index + 1] if index + 1 < len(tokens) else None
                after = None if nxt is None else (nxt.text if isinstance(nxt, Literal) else "")
                spec = next(specs)
                text_follows = next_is_text(tokens, index, self._specs)
                last = field_pattern(spec, before, after, False, False, text_follows)  # type: ignore[arg-type]
                fragments.append(
                    field_pattern(
                        spec,
                        before,
                        after,
                        False,
                        False,
                        text_follows,
                        field_guard(tokens, index, self._specs),
                    )  # type: ignore[arg-type]
                )
            try:
                out.append(re.compile("".join(fragments[:-1]) + last))
            except re.error:
                out.append(None)
        return out

    def _request_cached(self, line: str) -> dict[str, Any]:
        cache = self._request_cache
        if len(cache) >= _REQUEST_CACHE_ENTRIES:
            cache.clear()
        value = cache[line] = request_attributes(line)
        return value

    # --- time ----------------------------------------------------------------------------------

    def _time_specs(self) -> list[FieldSpec]:
        times = [s for s in self._specs if s.kind == TIME]
        begin = [s for s in times if not s.time_end]
        return begin or times

    def bad_time(self, values: tuple[str, ...] | str) -> tuple[str, str] | None:
        """For time field text that gave no timestamp: (the parse_error naming the field(s), the
        text as written, pieces joined by a space); None when every piece is `-` (not logged)."""
        texts = (values,) if isinstance(values, str) else values
        written = [
            (spec, text[1:-1] if text[:1] == "[" and text[-1:] == "]" else text)
            for spec, text in zip(self._time_specs(), texts, strict=True)
            if text != "-"
        ]
        if not written:
            return None
        sources = " ".join(spec.directive.source for spec, _ in written)
        return f"invalid time in {sources}: not a real instant", " ".join(text for _, text in written)

    def _make_time_parser(self) -> Callable[[Any], datetime | None]:
        specs = self._time_specs()
        tz = self._timezone
        if len(specs) == 1 and specs[0].time_kind == "clf":
            return parse_clf_time
        single = len(specs) == 1  # the builder passes the value itself, not a 1-tuple

        def parse_composite(values: tuple[str, ...] | str) -> datetime | None:
            if single:
                values = (values,)  # type: ignore[assignment]
            base: datetime | None = None
            micro: int | None = None
            formats: list[str] = []
            texts: list[str] = []
            for spec, value in zip(specs, values, strict=True):
                kind = spec.time_kind
                if value == "-" and kind != "strftime":
                    continue
                if kind == "clf":
                    base = base or parse_clf_time(value)
                elif kind == "strftime":
                    formats.append(spec.time_format)
                    texts.append(value)
                elif kind in ("sec", "msec", "usec"):
                    base = base or parse_epoch(value, kind)
                elif kind == "msec_frac" and value.isdigit():
                    micro = int(value) * 1000
                elif kind == "usec_frac" and value.isdigit():
                    micro = int(value)
            if base is None and formats:
                # Pieces are read together (`%{%d/%b/%Y}t %{%T}t` is one time); when they repeat a
                # field (`%{%F %T}t ... %{end:%F %T}t`), strptime cannot: the first piece that
                # parses alone gives the time.
                base = parse_strftime("\x1f".join(texts), "\x1f".join(formats), tz)
                if base is None and len(formats) > 1:
                    base = next(
                        (t for t in map(partial(parse_strftime, default_tz=tz), texts, formats) if t),
                        None,
                    )
            if base is not None and micro is not None and micro < 1_000_000:
                base = base.replace(microsecond=micro)
            return base

        return parse_composite

    # --- code generation -----------------------------------------------------------------------

    def _generate_builder(
        self,
    ) -> Callable[[Sequence[tuple[str, ...] | None], list[str], datetime], list[LogRecord]]:
        """Write the per-batch record builder for this format as Python source and compile it.
        Keys are embedded with repr(), so any header name is safe; no user text becomes code."""
        names: list[str] = []
        body: list[str] = []
        emit = body.append
        escapes_possible = False
        time_vars: list[str] = []
        time_specs = self._time_specs()
        for number, spec in enumerate(self._specs):
            var = f"v{number}"
            names.append(var)
            if spec.kind == TIME:
                if spec in time_specs:
                    time_vars.append(var)
                continue
            if not spec.keys:
                continue
            escapes_possible = escapes_possible or spec.escapable
            key = spec.keys[0]
            unescape = (
                f"        if esc and '\\\\' in {var}:\n"
                f"            {var}, ok = unescape({var})\n"
                f"            if not ok:\n"
                f"                a[INVALID_UTF8] = True\n"
                if spec.escapable
                else ""
            )
            if spec.kind == STR:
                emit(f"    if {var} != '-':\n{unescape}        a[{key!r}] = {var}")
            elif spec.kind == USER:  # `""` is how httpd writes an empty user name
                emit(
                    f"    if {var} == '\"\"':\n        a[{key!r}] = ''\n"
                    f"    elif {var} != '-':\n{unescape}"
                    f"        a[{key!r}] = {var}"
                )
            elif spec.kind == VALUE:  # never empty in a matched line; '' only in direct.py's blank rows
                emit(f"    if {var}:\n        a[{key!r}] = {var}")
            elif spec.kind == INT:  # 18 digits always fit in 64 bits; longer ones are checked
                emit(
                    f"    if {var} != '-':\n        a[{key!r}] = int({var}) if len({var}) < 19 else bounded_int({var})"
                )
            elif spec.kind == HEXINT:
                emit(
                    f"    if {var} != '-':\n"
                    f"        a[{key!r}] = int({var}, 16) if len({var}) < 16 else bounded_int({var}, 16)"
                )
            elif spec.kind == DURATION:
                divisor = round(1 / spec.scale)
                # int / int is exact for the digits a duration has; beyond 64 bits they stay text
                expr = (
                    f"(float({var}) if len({var}) < 19 else bounded_duration({var}, 1))"
                    if divisor == 1
                    else f"(int({var}) / {divisor} if len({var}) < 19 else bounded_duration({var}, {divisor}))"
                )
                emit(f"    if {var} != '-':\n        a[{key!r}] = {expr}")
            elif spec.kind == QUERY:
                emit(
                    f"    if {var} and {var} != '-':\n{unescape}"
                    f"        a[{key!r}] = {var}[1:] if {var}[0] == '?' else {var}"
                )
            elif spec.kind == STATUS:
                emit(
                    f"    if {var} != '-':\n        st = status_get({var}) or status_info({var})\n        a[{key!r}] = st[0]"
                )
                if key == "http.response.status_code":
                    emit("        sev_text = st[1]\n        sev_number = st[2]")
            elif spec.kind == PROTOCOL:
                emit(
                    f"    if {var} != '-':\n        pr = proto_get({var}) or protocol_info({var})\n"
                    f"        if pr:\n            a['network.protocol.name'] = pr[0]\n"
                    f"            if pr[1]:\n                a['network.protocol.version'] = pr[1]"
                )
            elif spec.kind == REQUEST:
                emit(
                    f"    if {var} != '-':\n"
                    f"        if esc and '\\\\' in {var}:\n"
                    f"            a.update(request_attributes({var}))\n"
                    f"        else:\n"
                    f"            rq = request_get({var})\n"
                    f"            if rq is None:\n"
                    f"                rq = request_cached({var})\n"
                    f"            a.update(rq)"
                )
                escapes_possible = True
        # %U%q without %r: synthesize url.original, as the request line would have given it.
        claimed = {k for s in self._specs for k in s.keys}
        self._synthesizes_url_original = "url.original" not in claimed and any(
            s.directive.name == "U" and s.keys == ("url.path",) for s in self._specs
        )
        if self._synthesizes_url_original:
            emit(
                "    if 'url.path' in a:\n"
                "        a['url.original'] = a['url.path'] + '?' + a['url.query'] if 'url.query' in a else a['url.path']"
            )
        if not time_vars:
            time_code = "    ts = None"
        else:
            key = time_vars[0] if len(time_vars) == 1 else "(" + ", ".join(time_vars) + ",)"
            time_code = (
                f"    ts = time_get({key})\n    if ts is None:\n        ts = time_parse({key})\n"
                f"        if ts is None:\n            bt = bad_time({key})\n            if bt is not None:\n"
                f"                a[PARSE_ERROR] = bt[0]\n                a[TIME_ORIGINAL] = bt[1]"
            )
        names.append("bad")
        unpack = "    " + ", ".join(names) + " = row"
        source = "\n".join(
            [
                "def build(rows, bodies, observed):",
                "  out = []",
                "  append = out.append",
                "  for body, row in zip(bodies, rows):",
                "    if row is None:",
                "        append(unmatched(body, observed))",
                "        continue",
                unpack,
                "    if bad or not body:",
                "        row = exact_row(body)",
                "        if row is None:",
                "            append(unmatched(body, observed))",
                "            continue",
                "    " + unpack,
                "    a = {FORMAT: format_name}",
                "    sev_text = 'INFO'",
                "    sev_number = 9",
                ("    esc = '\\\\' in body" if escapes_possible else ""),
                *body,
                time_code,
                "    append(" + _RECORD_CALL + ")",
                "  return out",
            ]
        )
        namespace: dict[str, Any] = {
            "FORMAT": FORMAT,
            "INVALID_UTF8": INVALID_UTF8,
            "PARSE_ERROR": PARSE_ERROR,
            "TIME_ORIGINAL": TIME_ORIGINAL,
            "bad_time": self.bad_time,
            "format_name": self.format_name,
            "LogRecord": LogRecord,
            "unescape": unescape_log_value,
            "status_get": _STATUS_TABLE.get,
            "bounded_int": bounded_int,
            "bounded_duration": bounded_duration,
            "status_info": status_info,
            "proto_get": PROTOCOL_TABLE.get,
            "protocol_info": protocol_info,
            "time_get": self._time_cache.mapping.get,
            "time_parse": self._time_cache.get,
            "unmatched": self._unmatched,
            "exact_row": self._exact_row,
            "request_attributes": request_attributes,
            "request_get": self._request_cache.get,
            "request_cached": self._request_cached,
        }
        self.builder_source = source
        exec(compile(source, f"<logformat {self.format_name}>", "exec"), namespace)  # noqa: S102
        return namespace["build"]  # type: ignore[no-any-return]


def _reparse_unparsed(
    records: list[LogRecord], slow_parse: SlowParse, indices: Sequence[int] | None = None
) -> None:
    """Give the lines `records` left unparsed to `slow_parse` (in place). `indices` are the batch
    indices of `records` (default: 0..n-1)."""
    unparsed = [n for n, record in enumerate(records) if PARSE_ERROR in record.attributes]
    if not unparsed:
        return
    where = list(indices) if indices is not None else list(range(len(records)))
    observed = records[unparsed[0]].observed_timestamp
    for n, record in zip(unparsed, slow_parse([where[n] for n in unparsed]), strict=True):
        record.observed_timestamp = observed
        records[n] = record


def compile_logformat(fmt: str, *, format_name: str = "logformat", timezone: tzinfo = UTC) -> AccessLogParser:
    """Compile any LogFormat string (bare, quoted, or a pasted `LogFormat`/`CustomLog` line).
    Raises FormatError pointing at the bad directive. `timezone` applies to `%{...}t` times
    written without an offset."""
    if not fmt.strip():
        raise FormatError("empty LogFormat: expected something like '%h %l %u %t \"%r\" %>s %b'")
    text = normalize_format_text(fmt)
    if text.lower() in PRESETS:  # `CustomLog logs/access_log combined` names a preset nickname
        return AccessLogParser(PRESETS[text.lower()], format_name, timezone=timezone)
    return AccessLogParser(text, format_name, timezone=timezone)


def preset_parser(name: str) -> AccessLogParser:
    """A parser for one of Apache's preset formats (see PRESETS)."""
    key = name.strip().lower()
    if key not in PRESETS:
        raise FormatError(f"unknown access-log preset {name!r}; expected one of: {', '.join(PRESETS)}")
    return AccessLogParser(PRESETS[key], key)
