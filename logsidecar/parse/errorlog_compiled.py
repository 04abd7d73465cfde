"""`compile_errorlogformat(fmt)` compiles an `ErrorLogFormat` string into a parser, following
`server/core.c: parse_errorlog_item` and `server/log.c: do_errorlog_format` (see `_compile_items`).
A line that does not match it but is in httpd's built-in format (httpd writes those while it reads
its configuration, before ErrorLogFormat applies) gets the built-in parser's record, format `error`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from logsidecar.parse.base import FormatError, parse_each, unparsed_record
from logsidecar.parse.error_time import ErrorTimeParser
from logsidecar.parse.errorlog import (
    CLIENT_ADDRESS,
    CLIENT_PORT,
    CODE_FILE,
    CODE_LINE,
    ERROR_CODE,
    LOCAL_ADDRESS,
    LOCAL_PORT,
    MESSAGE,
    MODULE,
    PEER_ADDRESS,
    PEER_PORT,
    PID,
    SERVER_ADDRESS,
    STATUS,
    TID,
    ErrorLogParser,
    ascii_digits,
    split_host_port,
)
from logsidecar.parse.errorlogformat import (
    NEVER_EMPTY,
    ErrorItem,
    normalize_errorlogformat,
    parse_items,
)
from logsidecar.parse.escape import unescape_log_value
from logsidecar.parse.fields import bounded_int, strftime_regex
from logsidecar.parse.severity import apache_severity
from logsidecar.parse.timestamps import parse_strftime
from logsidecar.record import FORMAT, INVALID_UTF8, PARSE_ERROR, TIME_ORIGINAL, LogRecord, decode_text

__all__ = ["ErrorLogFormatParser", "compile_errorlogformat"]

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
    if paren and line.endswith(")") and ascii_digits(line[:-1]):
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


def _directive_regex(item: ErrorItem, has_v: bool = False) -> tuple[str, _Setter]:
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
    raise AssertionError(d)  # parse_items only lets known directives through


def _compile_items(items: list[ErrorItem]) -> tuple[re.Pattern[str], list[tuple[str, _Setter]]]:
    """Items → one regex. httpd writes a format as fields (a field starts at an item flagged as a
    separator); when an item of a field is empty (and has no `-`), or its minimum level is not
    reached, the whole field is left out, except the message (`%M`), which is always written. So
    every field that can be left out becomes an optional group; `%M` stays outside it.

    Linear time: each directive is atomic and guarded by what may follow it (the next literal, or
    how the next field starts, or the end), and so is each optional group: a field takes its first
    match that what follows accepts and is never re-entered (the same rule and the reason as the
    LogFormat compiler's `field_pattern`). Without it, four `%{%Q}t` took 10 s on 400 spaces."""
    fields: list[list[ErrorItem]] = []
    for item in items:
        if item.field_sep or not fields:
            fields.append([])
        fields[-1].append(item)

    has_v = any(item.literal is None and item.directive == "v" for item in items)

    def may_be_left_out(run: list[ErrorItem]) -> bool:
        for item in run:
            if item.literal is not None:
                continue
            if item.min_level:
                return True
            if item.directive not in NEVER_EMPTY and not item.hyphen and not item.required:
                return True
        return False

    # The runs of items in line order, each with whether it may be left out.
    runs: list[tuple[list[ErrorItem], bool]] = []
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
            if item.hyphen and item.directive not in NEVER_EMPTY:
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


def _directive_start(item: ErrorItem) -> str:
    """How a directive's text starts ('' when it may start with anything)."""
    start = {"P": "[0-9]", "T": "[0-9]", "k": "[0-9]", "l": "[a-z]"}.get(item.directive, "")
    if start and item.hyphen:
        return f"(?:{start}|-)"
    return start


class ErrorLogFormatParser:
    """A parser compiled from one `ErrorLogFormat` string (see `compile_errorlogformat`)."""

    format_name = "errorlogformat"

    def __init__(self, fmt: str, timezone: tzinfo = UTC) -> None:
        fmt = normalize_errorlogformat(fmt)
        self.fmt = fmt
        self.timezone = timezone
        items = parse_items(fmt)
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
        return parse_each(lines, self._parse_line, self.format_name)

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
            return unparsed_record(
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
