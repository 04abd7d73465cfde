"""Apache httpd error log → LogRecords: the built-in formats (`ErrorLogFormat` strings: `errorlog_compiled.py`).

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

Times: `error_time.py`. Invariants (the Parser contract): exactly one record per input line, in order; never raises on
input; a line that does not match keeps its raw body and gets `logsidecar.parse_error`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from logsidecar.parse.base import parse_each, unparsed_record
from logsidecar.parse.error_time import ErrorTimeParser
from logsidecar.parse.escape import unescape_log_value
from logsidecar.parse.fields import bounded_int
from logsidecar.parse.severity import APACHE_LEVELS
from logsidecar.record import (
    FORMAT,
    INVALID_UTF8,
    PARSE_ERROR,
    TIME_ORIGINAL,
    LogRecord,
    decode_text,
)

__all__ = ["ErrorLogParser", "ascii_digits", "split_host_port", "unparsed_record"]

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


def split_host_port(value: str, *, has_port: bool = True) -> tuple[str, int | str | None]:
    """`1.2.3.4:80` / `::1:80` (httpd's IPv6 form) / `[::1]:80` → (address, port). When
    `has_port` is False only the bracketed form is split (2.2 lines carry no port). A port beyond
    64 bits stays text (`bounded_int`)."""
    if value.startswith("["):
        end = value.find("]")
        if end > 0:
            rest = value[end + 1 :]
            if rest.startswith(":") and ascii_digits(rest[1:]):
                return value[1:end], bounded_int(rest[1:])
            return value[1:end], None
    if has_port:
        host, colon, port = value.rpartition(":")
        if colon and host and ascii_digits(port):
            # An IPv6 host must still be an address once the port is cut off: `2001:db8::5`
            # written without a port (mod_security's own "[client ip]") is not split.
            if ":" in host and not _is_ip_address(host):
                return value, None
            return host, bounded_int(port)
    return value, None


def ascii_digits(text: str) -> bool:
    """ASCII digits only (`str.isdigit` also takes `７` and `²`)."""
    return text.isascii() and text.isdigit()


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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
        return parse_each(lines, self._parse_line, self.format_name)

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
            return unparsed_record(text, valid, reason, self.format_name, observed)
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
