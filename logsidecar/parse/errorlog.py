"""Apache httpd error log → LogRecords: the built-in formats and compiled `ErrorLogFormat` strings.

`ErrorLogParser` reads what httpd writes when no `ErrorLogFormat` is configured, deciding per line:

  2.4  [Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 1234:tid 5678] [client 1.2.3.4:5678] AH00128: File does not exist: /x, referer: http://a/b
  2.2  [Wed Oct 11 14:32:52 2000] [error] [client 1.2.3.4] File does not exist: /x
  startup (written before the log is set up, no time and no level)
       AH00558: apache2: Could not reliably determine the server's fully qualified domain name ...
  raw  (what a module, a CGI script or a library wrote to httpd's stderr, which is the error log)
       PHP Warning:  Undefined variable $x in /var/www/a.php on line 3

The 2.4 prefix, in the order `server/log.c: do_errorlog_default` writes it: time, `[module:level]`
(module may be empty: `[:error]`), `[pid P]` or `[pid P:tid T]`, at debug and more verbose the
source `file.c(123): `, an APR status `(111)Connection refused: `, `[client ip:port] ` or
`[remote ip:port] ` (remote = a backend connection, e.g. mod_proxy; a status written after the
client is accepted too), then the message, then
`, referer: <Referer header>` when the request had one. httpd writes IPv6 peers without brackets
(`[client ::1:5678]`): the port is after the last colon. `[client [::1]:5678]` is accepted too. In
2.2 lines the client has no port, so it is never split there.

Attributes: apache.module, process.pid, thread.id, code.file.path + code.line.number,
apache.status, client.address + client.port ([client]), network.peer.address + network.peer.port
([remote]), apache.error.code (`AH00128`), apache.message (the message without the prefix fields
and without the referer suffix, exactly as written, Apache's `\\xhh` escaping kept so it stays a
substring of the body), http.request.header.referer. `severity_text` is the level as written
("error", "trace3"); `severity_number` comes from `severity.apache_severity`. The body is the raw line.

Lines without the `[time] [level]` header (startup and raw lines above, and the lines that follow
them) have no time and no severity; they are flagged `logsidecar.parse_error` = "no [time] [level]
header" (a startup line keeps its `apache.error.code` and `apache.message`). A time that is not a
real instant (Feb 30, hour 24) gives no timestamp, `logsidecar.parse_error` = "invalid time in
[time]: not a real instant" and the text as written in `apache.time.original`; the rest of the
line is parsed as usual. The same holds for compiled formats, with the directive named (`%{cu}t`).

Time zone: error-log times carry no UTC offset; they are the httpd process's local time. They are
interpreted in the parser's `timezone` (default UTC; pass a `zoneinfo.ZoneInfo` such as
`ZoneInfo("Europe/Berlin")` to match the httpd container's TZ) and returned offset-aware. With a
zoneinfo zone DST is right: each time gets the offset in force at that wall time. In the repeated
hour when DST ends the first pass is read as summer time (fold=0); once a later line steps back in
wall time within that hour, it is read as the second pass (fold=1), so times stay monotonic. Time
strings are parsed once per distinct second (a bounded cache); the fraction is added per line.

`compile_errorlogformat(fmt)` compiles an `ErrorLogFormat` string into a parser, following
`server/core.c: parse_errorlog_item` and `server/log.c: do_errorlog_format` (see `_compile_items`).
A line that does not match it but is in httpd's built-in format (httpd writes those while it reads
its configuration, before ErrorLogFormat applies) gets the built-in parser's record, format `error`.

Invariants (the Parser contract): exactly one record per input line, in order; never raises on
input; a line that does not match keeps its raw body and gets `logsidecar.parse_error`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from logsidecar.parse.base import FormatError
from logsidecar.parse.escape import unescape_log_value
from logsidecar.parse.fields import bounded_int, strftime_regex
from logsidecar.parse.severity import APACHE_LEVELS, apache_severity
from logsidecar.parse.timestamps import fixed_offset, parse_strftime
from logsidecar.record import (
    FORMAT,
    INVALID_UTF8,
    PARSE_ERROR,
    TIME_ORIGINAL,
    LogRecord,
    decode_text,
    utcnow,
)

__all__ = [
    "DIRECTIVE_LETTERS",
    "ErrorLogParser",
    "ErrorTimeParser",
    "compile_errorlogformat",
    "normalize_errorlogformat",
    "split_host_port",
]

# Attribute names (OpenTelemetry semantic conventions where one exists, `apache.` otherwise).
MODULE = "apache.module"
ERROR_CODE = "apache.error.code"
MESSAGE = "apache.message"
STATUS = "apache.status"
PID = "process.pid"
TID = "thread.id"
CLIENT_ADDRESS = "client.address"
CLIENT_PORT = "client.port"
PEER_ADDRESS = "network.peer.address"
PEER_PORT = "network.peer.port"
LOCAL_ADDRESS = "network.local.address"
LOCAL_PORT = "network.local.port"
REFERER = "http.request.header.referer"
CODE_FILE = "code.file.path"
CODE_LINE = "code.line.number"
SERVER_ADDRESS = "server.address"

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
# "Wed Oct 11 14:32:52 2000" (fraction removed before matching); the day may be space padded.
_CTIME = re.compile(
    r"[A-Z][a-z]{2} ([A-Z][a-z]{2}) +([0-9]{1,2}) +([0-9]{1,2}):([0-9]{2}):([0-9]{2}) ([0-9]{4})"
)
# "2000-10-11 14:32:52" (%{c}t, compact).
_COMPACT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_CACHE_LIMIT = 4096
# Lines may arrive a little out of order (several processes write one file): within this slack a
# step back in wall time is not taken as the second pass of a repeated DST hour.
_FOLD_SLACK_S = 60.0


class ErrorTimeParser:
    """Apache error-log time strings → offset-aware datetimes in a given zone. Stateful (DST
    fold tracking, cache), so one per parser, and a parser per file."""

    __slots__ = ("timezone", "_cache", "_last_ts", "_by_offset")

    def __init__(self, timezone: tzinfo = UTC) -> None:
        self.timezone = timezone
        # second-resolution key → (datetime with fold=0, whether that wall time is ambiguous)
        self._cache: dict[str, tuple[datetime, bool] | None] = {}
        self._last_ts: float | None = None
        # Times written with their own offset (`%{z}t`), parsed in that fixed offset.
        self._by_offset: dict[str, ErrorTimeParser] = {}

    def parse(self, text: str) -> datetime | None:
        """`Wed Oct 11 14:32:52[.123456] 2000` or `2000-10-11 14:32:52[.123456]`, either optionally
        followed by ` +hhmm` (`%{z}t`: then that offset, not the parser's zone) → datetime; None
        when the text is not such a time."""
        if len(text) > 6 and text[-6] == " " and text[-5] in "+-":
            zone = self._by_offset.get(text[-5:])
            if zone is None:
                offset = fixed_offset(text[-5:])
                if offset is None or len(self._by_offset) >= 64:
                    return None if offset is None else ErrorTimeParser(offset).parse(text[:-6])
                zone = self._by_offset[text[-5:]] = ErrorTimeParser(offset)
            return zone.parse(text[:-6])
        if len(text) == 31 and text[19] == "." and text[26] == " ":
            # Fast path, the 2.4 default: "Wed Oct 11 14:32:52.123456 2000".
            key = text[:19] + text[26:]
            fraction = text[20:26]
            if not (fraction.isascii() and fraction.isdigit()):
                return None
        else:
            key, dot, rest = text.partition(".")
            fraction = ""
            if dot:
                fraction, space, year = rest.partition(" ")
                if space:
                    key = key + " " + year
                if not (fraction.isascii() and fraction.isdigit()) or len(fraction) > 6:
                    return None
        try:
            entry = self._cache[key]
        except KeyError:
            entry = self._build(key)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = entry
        if entry is None:
            return None
        value, ambiguous = entry
        if fraction:
            value = value.replace(
                microsecond=int(fraction) if len(fraction) == 6 else int(fraction.ljust(6, "0"))
            )
        if ambiguous:
            value = self._resolve_fold(value)
        else:
            self._last_ts = None if self._last_ts is None else value.timestamp()
        return value

    def _resolve_fold(self, value: datetime) -> datetime:
        first = value.timestamp()
        last = self._last_ts
        if last is not None and first < last - _FOLD_SLACK_S:
            second = value.replace(fold=1)
            if second.timestamp() >= last - _FOLD_SLACK_S:
                value = second
                first = second.timestamp()
        self._last_ts = first if last is None else max(first, last)
        return value

    def _build(self, key: str) -> tuple[datetime, bool] | None:
        match = _CTIME.fullmatch(key)
        try:
            if match is not None:
                mon, day, hour, minute, second, year = match.groups()
                month = _MONTHS.get(mon)
                if month is None:
                    return None
                value = datetime(
                    int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=self.timezone
                )
            else:
                match = _COMPACT.fullmatch(key)
                if match is None:
                    return None
                y, mo, d, h, mi, s = (int(g) for g in match.groups())
                value = datetime(y, mo, d, h, mi, s, tzinfo=self.timezone)
        except ValueError:  # Feb 30, hour 25 ...
            return None
        ambiguous = value.utcoffset() != value.replace(fold=1).utcoffset()
        if ambiguous:
            # Start tracking wall-time order only where it matters (the repeated hour).
            self._last_ts = self._last_ts if self._last_ts is not None else value.timestamp()
        return value, ambiguous


def split_host_port(value: str, *, has_port: bool = True) -> tuple[str, int | str | None]:
    """`1.2.3.4:80` / `::1:80` (httpd's IPv6 form) / `[::1]:80` → (address, port). When
    `has_port` is False only the bracketed form is split (2.2 lines carry no port). A port beyond
    64 bits stays text (`bounded_int`)."""
    if value.startswith("["):
        end = value.find("]")
        if end > 0:
            rest = value[end + 1 :]
            if rest.startswith(":") and _digits(rest[1:]):
                return value[1:end], bounded_int(rest[1:])
            return value[1:end], None
    if has_port:
        host, colon, port = value.rpartition(":")
        if colon and host and _digits(port):
            # An IPv6 host must still be an address once the port is cut off: `2001:db8::5`
            # written without a port (mod_security's own "[client ip]") is not split.
            if ":" in host and not _is_ip_address(host):
                return value, None
            return host, bounded_int(port)
    return value, None


def _digits(text: str) -> bool:
    """ASCII digits only (`str.isdigit` also takes `７` and `²`)."""
    return text.isascii() and text.isdigit()


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _unparsed(text: str, valid_utf8: bool, reason: str, format_name: str, observed: datetime) -> LogRecord:
    attributes: dict[str, Any] = {FORMAT: format_name, PARSE_ERROR: reason}
    if not valid_utf8:
        attributes[INVALID_UTF8] = True
    return LogRecord(body=text, attributes=attributes, observed_timestamp=observed)


# --- the built-in formats ----------------------------------------------------------------------

_DEFAULT_LINE = re.compile(
    r"\[(?P<time>[^\]]*)\] "
    r"\[(?:(?P<module>[^\]:]*):)?(?P<level>emerg|alert|crit|error|warn|notice|info|debug|trace[1-8])\] "
    r"(?:\[pid (?P<pid>[0-9]+)(?::tid (?P<tid>[0-9]+))?\] )?"
    r"(?:(?P<file>[^\s()\[\]]+)\((?P<line>[0-9]+)\): )?"
    r"(?:(?P<status>\((?:OS |EAI |os 0x)?-?[0-9a-f]+\)[^:\[]*): )?"
    r"(?:\[(?P<peer>client|remote) (?P<addr>\[[^\]]*\](?::[0-9]+)?|[^\]\s]+)\] )?"
    # httpd writes the status before the client; accept it after the client too (hand-made lines)
    r"(?:(?P<status2>\((?:OS |EAI |os 0x)?-?[0-9a-f]+\)[^:\[]*): )?"
    r"(?:(?P<code>AH[0-9]{5}): ?)?"
    r"(?P<message>.*)",
    re.DOTALL,
)
_STARTUP_LINE = re.compile(r"(?P<code>AH[0-9]{5}): (?P<message>.*)", re.DOTALL)
_LOOKS_LIKE_HEADER = re.compile(r"\[[^\]]*\] \[")
# `logsidecar.parse_error` of lines that lack what every error-log record should have.
NO_HEADER = "no [time] [level] header"
BAD_HEADER = "unrecognised [time] [level] header"
BAD_TIME = "invalid time in [time]: not a real instant"
_REFERER_SUFFIX = ", referer: "
_SEVERITY_NUMBERS = {level: int(severity) for level, severity in APACHE_LEVELS.items()}


class ErrorLogParser:
    """httpd's built-in error-log formats (2.4 default, 2.2, startup lines), detected per line."""

    format_name = "error"

    def __init__(self, timezone: tzinfo = UTC) -> None:
        self.timezone = timezone
        self._times = ErrorTimeParser(timezone)

    def parse(self, lines: Sequence[bytes]) -> list[LogRecord]:
        observed = utcnow()
        parse_line = self._parse_line
        records: list[LogRecord] = []
        append = records.append
        for raw in lines:
            try:
                append(parse_line(raw, observed))
            except Exception as exc:  # noqa: BLE001 - the contract: never raise on input
                text, valid = decode_text(raw)
                append(
                    _unparsed(
                        text, valid, f"internal error: {type(exc).__name__}", self.format_name, observed
                    )
                )
        return records

    def parse_line(self, raw: bytes) -> LogRecord:
        """One line (convenience for tests and detection)."""
        return self.parse([raw])[0]

    def _parse_line(self, raw: bytes, observed: datetime) -> LogRecord:
        # Hot path: one regex, tuple unpacking, no per-field helper calls.
        try:
            text = raw.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            text, valid = decode_text(raw)
        match = _DEFAULT_LINE.match(text)
        if match is None:
            return self._parse_other(text, valid, observed)
        time_text, module, level, pid, tid, file, line, status, peer, addr, status2, code, message = (
            match.groups()
        )
        timestamp = self._times.parse(time_text)
        attributes: dict[str, Any] = {FORMAT: self.format_name}
        if timestamp is None:
            attributes[PARSE_ERROR] = BAD_TIME
            attributes[TIME_ORIGINAL] = time_text
        if module:
            attributes[MODULE] = module
        if pid is not None:
            # 18 digits always fit in 64 bits; longer ones are checked (and kept as text beyond)
            attributes[PID] = int(pid) if len(pid) < 19 else bounded_int(pid)
            if tid is not None:
                attributes[TID] = int(tid) if len(tid) < 19 else bounded_int(tid)
        if file is not None:
            attributes[CODE_FILE] = file
            attributes[CODE_LINE] = int(line) if len(line) < 19 else bounded_int(line)
        if status is not None or status2 is not None:
            attributes[STATUS] = status or status2
        if peer is not None:
            # 2.4 (`[module:level]`) always writes ip:port; 2.2 (`[level]`) writes the ip alone.
            address, port = split_host_port(addr, has_port=module is not None)
            if peer == "client":
                attributes[CLIENT_ADDRESS] = address
                if port is not None:
                    attributes[CLIENT_PORT] = port
            else:
                attributes[PEER_ADDRESS] = address
                if port is not None:
                    attributes[PEER_PORT] = port
        if code is not None:
            attributes[ERROR_CODE] = code
        cut = message.find(_REFERER_SUFFIX)
        if cut >= 0:
            _set_message(attributes, message)
        elif message:
            attributes[MESSAGE] = message
        if not valid:
            attributes[INVALID_UTF8] = True
        return LogRecord(
            body=text,
            attributes=attributes,
            timestamp=timestamp,
            observed_timestamp=observed,
            severity_text=level,
            severity_number=_SEVERITY_NUMBERS[level],
        )

    def _parse_other(self, text: str, valid: bool, observed: datetime) -> LogRecord:
        """A line without the `[time] [level]` header: a startup message (`AH00558: ...`, written
        before the log is set up: its code and message are kept), output a module, a CGI script
        or a library wrote raw to the error log (httpd's stderr), the next lines of such
        output, or anything else. Flagged either way: it has no time and no severity."""
        startup = _STARTUP_LINE.match(text)
        if startup is None:
            reason = BAD_HEADER if _LOOKS_LIKE_HEADER.match(text) else NO_HEADER
            return _unparsed(text, valid, reason, self.format_name, observed)
        attributes: dict[str, Any] = {
            FORMAT: self.format_name,
            PARSE_ERROR: NO_HEADER,
            ERROR_CODE: startup["code"],
        }
        _set_message(attributes, startup["message"])
        if not valid:
            attributes[INVALID_UTF8] = True
        return LogRecord(body=text, attributes=attributes, observed_timestamp=observed)


def _set_message(attributes: dict[str, Any], message: str) -> None:
    # The referer suffix is split at its first occurrence: the referer is one header value that
    # httpd appends last, so everything after the first ", referer: " belongs to it.
    cut = message.find(_REFERER_SUFFIX)
    if cut >= 0:
        referer = message[cut + len(_REFERER_SUFFIX) :]
        message = message[:cut]
        if referer:
            # httpd escapes the header value (`\\`, `\xhh`) in the error log; the attribute carries the
            # value as the client sent it, the same as the access parser gives for this request.
            referer, valid = unescape_log_value(referer)
            attributes[REFERER] = referer
            if not valid:
                attributes[INVALID_UTF8] = True
    if message:
        attributes[MESSAGE] = message


# --- ErrorLogFormat compiler -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    """One parsed ErrorLogFormat item: a literal or a `%` directive (as in httpd's
    `ap_errorlog_format_item`)."""

    literal: str | None  # text for literals, None for directives
    directive: str = ""  # the letter: a A e E F i k l L m M n P t T v V
    arg: str | None = None  # the `{...}` argument
    field_sep: bool = False  # starts a new field (a literal starting with a space, or `% `)
    required: bool = False  # `%+x`: httpd drops the whole line when empty
    hyphen: bool = False  # `%-x`: httpd writes `-` when empty
    min_level: int = 0  # `%7x`: only written at this level (debug = 7) or more verbose
    position: int = 0  # index in the format string, for error messages


#: The ErrorLogFormat directive letters httpd 2.4 knows.
DIRECTIVE_LETTERS = frozenset("aAeEFikLlmMnPtTvV")
_ASCII_DIGITS = frozenset("0123456789")
# Directives httpd always writes (never empty): a field made only of these and literals is never dropped.
_NEVER_EMPTY = frozenset("PtM")


def _format_error(fmt: str, position: int, message: str) -> FormatError:
    pointer = " " * position + "^"
    return FormatError(f"{message} at position {position} of ErrorLogFormat:\n  {fmt}\n  {pointer}")


def _parse_items(fmt: str) -> list[_Item]:
    """Tokenise like httpd's `parse_errorlog_item` / `parse_errorlog_misc_string`: a literal
    ends at `%` or at a non-leading space (so every space starts a new field); `\\ ` is a space
    that does not; `\\n \\r \\t` are control characters; `% ` is an empty field separator."""
    items: list[_Item] = []
    i = 0
    n = len(fmt)
    pending_sep = False
    while i < n:
        start = i
        if fmt[i] != "%":
            field_sep = pending_sep or fmt[i] == " "
            pending_sep = False
            chars: list[str] = []
            at_start = True
            while i < n and fmt[i] != "%" and (fmt[i] != " " or at_start):
                c = fmt[i]
                if c != "\\":
                    if c != " ":
                        at_start = False
                    chars.append(c)
                    i += 1
                    continue
                i += 1
                if i >= n:
                    chars.append("\\")
                    break
                esc = fmt[i]
                chars.append({"n": "\n", "r": "\r", "t": "\t"}.get(esc, esc))
                i += 1
            items.append(_Item(literal="".join(chars), field_sep=field_sep, position=start))
            continue
        i += 1  # past '%'
        if i < n and fmt[i] == " ":
            pending_sep = True
            i += 1
            continue
        if i < n and fmt[i] == "%":
            items.append(_Item(literal="%", field_sep=pending_sep, position=start))
            pending_sep = False
            i += 1
            continue
        arg: str | None = None
        required = hyphen = False
        min_level = 0
        while True:
            if i >= n:
                raise _format_error(fmt, start, "directive runs off the end of the format (missing letter)")
            c = fmt[i]
            if c == "{":
                end = fmt.find("}", i + 1)
                if end < 0:
                    raise _format_error(fmt, i, "'{' without a closing '}'")
                arg = fmt[i + 1 : end]
                i = end + 1
            elif c == "+":
                required = True
                i += 1
            elif c == "-":
                hyphen = True
                i += 1
            elif c in _ASCII_DIGITS:
                j = i
                while j < n and fmt[j] in _ASCII_DIGITS:
                    j += 1
                min_level = int(fmt[i:j])
                i = j
            elif c in DIRECTIVE_LETTERS:
                items.append(
                    _Item(
                        literal=None,
                        directive=c,
                        arg=arg,
                        field_sep=pending_sep,
                        required=required,
                        hyphen=hyphen,
                        min_level=min_level,
                        position=start,
                    )
                )
                pending_sep = False
                i += 1
                break
            else:
                raise _format_error(fmt, i, f"unrecognized ErrorLogFormat directive %{c}")
    return items


# Setter signature: (value, attributes, record-state dict for time/level) -> None
_Setter = Callable[[str, dict[str, Any], dict[str, Any]], None]


def _time_pattern(arg: str | None) -> str:
    """As `log_ctime` in server/log.c: an argument holding `%` is a strftime format; otherwise its
    letters are options, `u` (microseconds), `c` (compact, ISO-like) and `z` (the UTC offset
    appended), in any order, other letters ignored."""
    options = arg or ""
    if "%" in options:
        return strftime_regex(options)
    usec = r"\.[0-9]{6}" if "u" in options else ""
    zone = r" [+-][0-9]{4}" if "z" in options else ""
    if "c" in options:
        return r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}" + usec + zone
    return r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}" + usec + r" [0-9]{4}" + zone


def _address_setter(address_key: str, port_key: str) -> _Setter:
    def set_address(value: str, attributes: dict[str, Any], state: dict[str, Any]) -> None:
        address, port = split_host_port(value)
        attributes[address_key] = address
        if port is not None:
            attributes[port_key] = port

    return set_address


def _str_setter(key: str) -> _Setter:
    def set_str(value: str, attributes: dict[str, Any], state: dict[str, Any]) -> None:
        attributes[key] = value

    return set_str


def _escaped_setter(key: str) -> _Setter:
    """For `%{..}e %{..}i %{..}n`: httpd writes them through `ap_escape_errorlog_item`; the
    attribute is the value as sent (as the access-log parser gives it, and the referer here)."""

    def set_escaped(value: str, attributes: dict[str, Any], state: dict[str, Any]) -> None:
        if "\\" in value:
            value, valid = unescape_log_value(value)
            if not valid:
                attributes[INVALID_UTF8] = True
        attributes[key] = value

    return set_escaped


def _int_setter(key: str) -> _Setter:
    def set_int(value: str, attributes: dict[str, Any], state: dict[str, Any]) -> None:
        attributes[key] = bounded_int(value)

    return set_int


def _set_file_line(value: str, attributes: dict[str, Any], state: dict[str, Any]) -> None:
    name, paren, line = value.rpartition("(")
    if paren and line.endswith(")") and _digits(line[:-1]):
        attributes[CODE_FILE] = name
        attributes[CODE_LINE] = bounded_int(line[:-1])
    else:
        attributes[CODE_FILE] = value


def _set_level(value: str, attributes: dict[str, Any], state: dict[str, Any]) -> None:
    state["level"] = value


def _time_setter(arg: str | None) -> _Setter:
    source = "%t" if arg is None else f"%{{{arg}}}t"
    strftime_format = arg if arg is not None and "%" in arg else None

    def set_time(value: str, attributes: dict[str, Any], state: dict[str, Any]) -> None:
        state.setdefault("time", (value, source, strftime_format))

    return set_time


def _set_message_item(value: str, attributes: dict[str, Any], state: dict[str, Any]) -> None:
    # httpd puts the AH code at the start of the message text (APLOGNO); split it off as the
    # default format's parser does.
    match = _ERROR_CODE_PREFIX.match(value)
    if match is not None:
        attributes[ERROR_CODE] = match[1]
        value = value[match.end() :]
    if value:
        attributes[MESSAGE] = value


_ERROR_CODE_PREFIX = re.compile(r"(AH[0-9]{5}): ?")
_TOKEN = r"\S+?"
_TEXT = r".+?"


def _header_attribute(name: str) -> str:
    lowered = name.lower()
    if lowered == "user-agent":
        return "user_agent.original"
    return f"http.request.header.{lowered}"


def _directive_regex(item: _Item, has_v: bool = False) -> tuple[str, _Setter]:
    """The regex (without group) and the attribute setter for one directive. Names match the
    access-log parser's: %v is server.address, and %V too unless %v is also present."""
    d, arg = item.directive, item.arg
    if d == "a":
        if arg == "c":
            return _TOKEN, _address_setter(PEER_ADDRESS, PEER_PORT)
        return _TOKEN, _address_setter(CLIENT_ADDRESS, CLIENT_PORT)
    if d == "A":
        return _TOKEN, _address_setter(LOCAL_ADDRESS, LOCAL_PORT)
    if d == "e":
        return _TEXT, _escaped_setter(f"apache.env.{arg or ''}")
    if d == "E":
        # "(%d)strerror", "(OS %d)...", "(EAI %d)...", "(os 0x%08x)..." (log_apr_status)
        return r"\((?:OS |EAI |os 0x)?-?[0-9a-fA-F]+\).*?", _str_setter(STATUS)
    if d == "F":
        return _TOKEN, _set_file_line
    if d == "i":
        return _TEXT, _escaped_setter(_header_attribute(arg or ""))
    if d == "k":
        return "[0-9]+", _int_setter("apache.keepalives")
    if d == "l":
        return r"(?:emerg|alert|crit|error|warn|notice|info|debug|trace[1-8])", _set_level
    if d == "L":
        if arg is not None and arg.lower() == "c":
            return _TOKEN, _str_setter("apache.connection.log_id")
        return _TOKEN, _str_setter("apache.log_id")
    if d == "m":
        return _TOKEN, _str_setter(MODULE)
    if d == "M":
        return r".*?", _set_message_item
    if d == "n":
        return _TEXT, _escaped_setter(f"apache.note.{arg or ''}")
    if d == "P":
        return "[0-9]+", _int_setter(PID)
    if d == "t":
        return _time_pattern(arg), _time_setter(arg)
    if d == "T":
        return "[0-9]+", _int_setter(TID)
    if d == "v":
        return _TOKEN, _str_setter(SERVER_ADDRESS)
    if d == "V":
        return _TOKEN, _str_setter("apache.server_name" if has_v else SERVER_ADDRESS)
    raise AssertionError(d)  # _parse_items only lets known directives through


def _compile_items(items: list[_Item]) -> tuple[re.Pattern[str], list[tuple[str, _Setter]]]:
    """Items → one regex. httpd writes a format as fields (a field starts at an item flagged as a
    separator); when an item of a field is empty (and has no `-`), or its minimum level is not
    reached, the whole field is left out, except the message (`%M`), which is always written. So
    every field that can be left out becomes an optional group; `%M` stays outside it.

    Linear time: each directive is atomic and guarded by what may follow it (the next literal, or
    how the next field starts, or the end), and so is each optional group: a field takes its first
    match that what follows accepts and is never re-entered (the same rule and the reason as the
    LogFormat compiler's `field_pattern`). Without it, four `%{%Q}t` took 10 s on 400 spaces."""
    fields: list[list[_Item]] = []
    for item in items:
        if item.field_sep or not fields:
            fields.append([])
        fields[-1].append(item)

    has_v = any(item.literal is None and item.directive == "v" for item in items)

    def may_be_left_out(run: list[_Item]) -> bool:
        for item in run:
            if item.literal is not None:
                continue
            if item.min_level:
                return True
            if item.directive not in _NEVER_EMPTY and not item.hyphen and not item.required:
                return True
        return False

    # The runs of items in line order, each with whether it may be left out.
    runs: list[tuple[list[_Item], bool]] = []
    for field_items in fields:
        message_at = next((k for k, it in enumerate(field_items) if it.directive == "M"), None)
        optional = may_be_left_out(field_items)
        if message_at is None:
            runs.append((field_items, optional))
            continue
        before, message, after = (
            field_items[:message_at],
            field_items[message_at],
            field_items[message_at + 1 :],
        )
        for run, is_message in ((before, False), ([message], True), (after, False)):
            if run:
                runs.append((run, optional and not is_message))

    def start_of(index: int) -> str:
        """How the text from run `index` on starts ('' when it may start with anything)."""
        if index >= len(runs):
            return r"\Z"
        run, optional = runs[index]
        first = run[0]
        start = re.escape(first.literal) if first.literal is not None else _directive_start(first)
        if optional:
            rest = start_of(index + 1)
            return f"(?:{start}|{rest})" if start and rest else ""
        return start

    setters: list[tuple[str, _Setter]] = []
    parts: list[str] = []
    for run_index, (run, optional) in enumerate(runs):
        out = []
        for position, item in enumerate(run):
            if item.literal is not None:
                out.append(re.escape(item.literal))
                continue
            pattern, setter = _directive_regex(item, has_v)
            if item.hyphen and item.directive not in _NEVER_EMPTY:
                pattern = f"(?:-|{pattern})"
            if position + 1 < len(run):
                following = run[position + 1]
                guard = (
                    re.escape(following.literal)
                    if following.literal is not None
                    else _directive_start(following)
                )
            else:
                guard = start_of(run_index + 1)
            name = f"g{len(setters)}"
            setters.append((name, setter))
            out.append(f"(?>(?P<{name}>{pattern})(?={guard}))")
        rendered = "".join(out)
        parts.append(f"(?>(?:{rendered})?)" if optional else rendered)
    return re.compile("".join(parts), re.DOTALL), setters


def _directive_start(item: _Item) -> str:
    """How a directive's text starts ('' when it may start with anything)."""
    start = {"P": "[0-9]", "T": "[0-9]", "k": "[0-9]", "l": "[a-z]"}.get(item.directive, "")
    if start and item.hyphen:
        return f"(?:{start}|-)"
    return start


def normalize_errorlogformat(text: str) -> str:
    """Accept what users paste: a bare format, a quoted one (httpd.conf quoting: inside the
    quotes `\\"` is a quote, every other backslash stays for the format itself), or a whole
    `ErrorLogFormat "..."` line. The once-per-connection/request forms (`ErrorLogFormat
    connection|request "..."`) describe extra lines, not the error line: rejected."""
    text = text.strip()
    head, _, rest = text.partition(" ")
    if head.lower() == "errorlogformat":
        text = rest.strip()
        keyword = text.partition(" ")[0]
        if keyword.lower() in ("connection", "request"):
            raise FormatError(
                f"ErrorLogFormat {keyword} describes the once-per-{keyword.lower()} extra lines; "
                "give the main ErrorLogFormat (the one without a keyword)"
            )
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        quote = text[0]
        text = text[1:-1].replace("\\" + quote, quote)
    return text


class ErrorLogFormatParser:
    """A parser compiled from one `ErrorLogFormat` string (see `compile_errorlogformat`)."""

    format_name = "errorlogformat"

    def __init__(self, fmt: str, timezone: tzinfo = UTC) -> None:
        fmt = normalize_errorlogformat(fmt)
        self.fmt = fmt
        self.timezone = timezone
        items = _parse_items(fmt)
        if not items:
            raise FormatError("empty ErrorLogFormat")
        self._regex, self._setters = _compile_items(items)
        self._times = ErrorTimeParser(timezone)
        self._builtin = ErrorLogParser(timezone)

    @property
    def pattern(self) -> str:
        """The compiled regular expression (for `--dry-run` style diagnostics)."""
        return self._regex.pattern

    def parse(self, lines: Sequence[bytes]) -> list[LogRecord]:
        observed = utcnow()
        records: list[LogRecord] = []
        for raw in lines:
            try:
                records.append(self._parse_line(raw, observed))
            except Exception as exc:  # noqa: BLE001 - the contract: never raise on input
                text, valid = decode_text(raw)
                records.append(
                    _unparsed(
                        text, valid, f"internal error: {type(exc).__name__}", self.format_name, observed
                    )
                )
        return records

    def _parse_line(self, raw: bytes, observed: datetime) -> LogRecord:
        text, valid = decode_text(raw)
        match = self._regex.fullmatch(text)
        if match is None:
            # httpd writes what it logs while reading its configuration, before ErrorLogFormat
            # applies, in the built-in format: such lines get the `error` parser's record.
            builtin = self._builtin.parse_line(raw)
            if PARSE_ERROR not in builtin.attributes:
                builtin.observed_timestamp = observed
                return builtin
            return _unparsed(
                text, valid, "line does not match the ErrorLogFormat", self.format_name, observed
            )
        attributes: dict[str, Any] = {FORMAT: self.format_name}
        state: dict[str, Any] = {}
        for name, setter in self._setters:
            value = match[name]
            if value is None or value == "-" or value == "":
                continue
            setter(value, attributes, state)
        if not valid:
            attributes[INVALID_UTF8] = True
        record = LogRecord(body=text, attributes=attributes, observed_timestamp=observed)
        time_item = state.get("time")
        if time_item is not None:
            time_text, source, strftime_format = time_item
            if strftime_format is None:
                timestamp = self._times.parse(time_text)
            else:
                timestamp = parse_strftime(time_text, strftime_format, self.timezone)
            if timestamp is None:
                attributes[PARSE_ERROR] = f"invalid time in {source}: not a real instant"
                attributes[TIME_ORIGINAL] = time_text
            record.timestamp = timestamp
        level = state.get("level")
        if level is not None:
            record.severity_text = level
            record.severity_number = apache_severity(level)
        return record


def compile_errorlogformat(fmt: str, timezone: tzinfo = UTC) -> ErrorLogFormatParser:
    """Compile an `ErrorLogFormat` string (httpd 2.4 syntax: `%a %A %{name}e %E %F %{name}i %k %l
    %L %{c}L %{C}L %m %M %{name}n %P %T %{g}T %t %{u}t %{c}t %{cu}t %{z}t %{cuz}t %{strftime
    format}t %v %V %%`, the modifiers
    `%-x` (`-` when empty), `%+x` (line dropped when empty), `%Nx` (only at log level N or more
    verbose), `% ` (field separator) and `\\ ` (a space inside a field)). Raises FormatError
    naming the bad directive and its position."""
    return ErrorLogFormatParser(fmt, timezone=timezone)
