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
dispatch; `access_builder.py`, printed by `logsidecar parse --explain FORMAT`), compiled once;
request lines and times are parsed once per distinct string (bounded caches); the cyclic GC is
paused while a batch's records are built. Writers straight to wire bytes are in `fastpath/`: they
use only `AccessLogParser.compiled`.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from logsidecar.parse.access_builder import Builder, generate_builder, status_info, synthesizes_url_original
from logsidecar.parse.access_time import bad_time, time_parser, time_specs
from logsidecar.parse.base import FormatError
from logsidecar.parse.fields import FieldSpec, compile_fields
from logsidecar.parse.line_regex import field_patterns, line_regex
from logsidecar.parse.logformat import Directive, normalize_format_text, tokenize
from logsidecar.parse.mismatch import MismatchReasons
from logsidecar.parse.request_line import request_attributes
from logsidecar.parse.timestamps import TimeCache
from logsidecar.record import FORMAT, INVALID_UTF8, PARSE_ERROR, LogRecord, decode_text, utcnow

__all__ = [
    "PRESETS",
    "AccessLogParser",
    "CompiledFormat",
    "compile_logformat",
    "preset_parser",
    "status_info",
]

PRESETS: dict[str, str] = {
    "common": '%h %l %u %t "%r" %>s %b',
    "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"',
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    "combinedio": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %I %O',
    "referer": "%{Referer}i -> %U",
    "agent": "%{User-agent}i",
}

_REQUEST_CACHE_ENTRIES = 16384
# The lenient regex matches quoted text lazily: it is tried only on lines small enough, in quotes
# and in length, to bound its backtracking.
_LENIENT_MAX_QUOTES = 16
_LENIENT_MAX_CHARS = 16384


@dataclass(frozen=True, slots=True)
class CompiledFormat:
    """What a compiled LogFormat offers code built on it (the fast-path writers of `fastpath/`,
    `parse --explain`): its regexes, its fields and the converters its record builder uses."""

    format_name: str
    logformat: str
    fields: tuple[FieldSpec, ...]
    #: Each field's pattern in the fast regex (`([^"]*+)` for a quoted one: it holds no quote).
    fast_field_patterns: tuple[str, ...]
    #: The fields that give the record time (see `access_time.time_specs`).
    time_fields: tuple[FieldSpec, ...]
    #: True when one attribute is computed from two fields (`%U%q` without `%r`).
    synthesizes_url_original: bool
    #: One row per line of a batch (see the module docstring): the fields, then the unmatched slot.
    batch_regex: re.Pattern[str]
    strict_regex: re.Pattern[str]
    #: The strict regex's row for one line, or None when it does not match.
    exact_row: Callable[[str], tuple[str, ...] | None]
    #: The generated record builder: (rows, bodies, observed) -> records, and its source.
    build_rows: Builder
    builder_source: str
    #: Time text (a value, or a tuple for several time fields) -> datetime, cached.
    parse_time: Callable[[Any], datetime | None]
    #: Time text that gave no timestamp -> (parse_error, apache.time.original), None if all `-`.
    bad_time: Callable[[Any], tuple[str, str] | None]
    #: Code others generate from this format (the fast-path writers), built once and kept as long
    #: as the format: keyed by what built it.
    derived: dict[str, Any] = field(default_factory=dict, compare=False)


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
        # False: a rejected line gets a bare reason, not the field it failed at (finding that field
        # is most of the cost of a rejection); `auto` turns it off for candidates it only tries.
        self.explain_rejections = True
        specs = compile_fields(tokens)
        strict = line_regex(tokens, specs, lenient=False)
        fast = line_regex(tokens, specs, lenient=False, fast=True)
        lenient = line_regex(tokens, specs, lenient=True)
        try:
            # The last group catches a line the fast pattern rejects, so every line still
            # yields exactly one row (unless a fast match ran across a newline: see parse()).
            self._batch_regex = re.compile(rf"^(?:{fast}|([^\n]*))\r?$", re.MULTILINE)
            self._strict_line = re.compile(rf"(?:{strict})\r?")
            self._lenient_line = re.compile(rf"(?:{lenient})\r?")
        except re.error as exc:  # e.g. a strftime format our translation cannot express
            raise FormatError(f"LogFormat {text!r} cannot be compiled to a regex: {exc}") from exc
        self._mismatch = MismatchReasons(tokens, specs)
        times = time_specs(specs)
        self._time_cache = TimeCache(time_parser(times, timezone))
        self._request_cache: dict[str, dict[str, Any]] = {}

        def bad(values: tuple[str, ...] | str) -> tuple[str, str] | None:
            return bad_time(times, values)

        self._build, self.builder_source = generate_builder(
            specs,
            times,
            format_name,
            {
                "bad_time": bad,
                "time_get": self._time_cache.mapping.get,
                "time_parse": self._time_cache.get,
                "unmatched": self._unmatched,
                "exact_row": self._exact_row,
                "request_get": self._request_cache.get,
                "request_cached": self._request_cached,
            },
        )
        self.compiled = CompiledFormat(
            format_name=format_name,
            logformat=text,
            fields=tuple(specs),
            fast_field_patterns=tuple(field_patterns(tokens, specs, lenient=False, fast=True)),
            time_fields=tuple(times),
            synthesizes_url_original=synthesizes_url_original(specs),
            batch_regex=self._batch_regex,
            strict_regex=self._strict_line,
            exact_row=self._exact_row,
            build_rows=self._build,
            builder_source=self.builder_source,
            parse_time=self._time_cache.get,
            bad_time=bad,
        )

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
        if body and body.count('"') <= _LENIENT_MAX_QUOTES and len(body) <= _LENIENT_MAX_CHARS:
            match = self._lenient_line.fullmatch(body)
            if match is not None:
                return self._build([(*match.groups(default=""), "")], [body], observed)[0]  # type: ignore[no-any-return]
        reason = self._mismatch.reason(body) if self.explain_rejections else "does not match LogFormat"
        return LogRecord(body, {FORMAT: self.format_name, PARSE_ERROR: reason}, None, observed)

    def _request_cached(self, line: str) -> dict[str, Any]:
        cache = self._request_cache
        if len(cache) >= _REQUEST_CACHE_ENTRIES:
            cache.clear()
        value = cache[line] = request_attributes(line)
        return value


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
