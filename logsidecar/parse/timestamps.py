"""Time parsing for Apache logs, shared by the access-log and error-log parsers.

Public API (pure functions plus one small cache type):

- `parse_clf_time(text)`: the access log's `%t` body, `10/Oct/2000:13:55:36 -0700` (brackets
  optional), into an offset-aware datetime that keeps the line's UTC offset. None if malformed.
- `parse_error_log_time(text, default_tz)`: the error log's `Wed Oct 11 14:32:52.123456 2000`
  (2.4, optional microseconds) or `Wed Oct 11 14:32:52 2000` (2.2). The error log carries no
  offset, so `default_tz` is attached. None if malformed.
- `parse_epoch(text, unit)`: `sec` / `msec` / `usec` since the Epoch (Apache `%{sec}t` ...) → UTC.
- `parse_strftime(text, fmt, default_tz)`: a value written with an Apache/C strftime format
  (`%{%d/%b/%Y %T}t`); C-only conversions (`%T %D %F %R %e %h`) are expanded for Python. If the
  format has no `%z`, `default_tz` is attached. None if it does not parse.
- `TimeCache`: memoises one of the above per distinct string. A busy server writes the same
  second thousands of times, so a dict hit replaces the parse; the cache is bounded (cleared when
  full, which is cheap and keeps memory flat under a clock that only moves forward).
- `fixed_offset(text)`: `+0200` / `-0730` / `Z` → a cached `timezone`.

Invariants: every returned datetime is offset-aware; nothing here raises on malformed input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo

__all__ = [
    "MONTHS",
    "TimeCache",
    "fixed_offset",
    "parse_clf_time",
    "parse_epoch",
    "parse_error_log_time",
    "parse_strftime",
    "strftime_for_python",
]

MONTHS = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
    "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}  # fmt: skip

_OFFSETS: dict[str, tzinfo] = {"Z": UTC, "+0000": UTC, "-0000": UTC}


def fixed_offset(text: str) -> tzinfo | None:
    """`+hhmm`, `-hhmm` (or `+hh:mm`, `Z`) → a shared timezone object; None if malformed."""
    tz = _OFFSETS.get(text)
    if tz is not None:
        return tz
    digits = text[1:].replace(":", "")
    if (
        len(text) < 5
        or text[0] not in "+-"
        or len(digits) != 4
        or not (digits.isascii() and digits.isdigit())
    ):
        return None
    minutes = int(digits[:2]) * 60 + int(digits[2:])
    if minutes >= 24 * 60:
        return None
    tz = timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))
    if len(_OFFSETS) < 1024:
        _OFFSETS[text] = tz
    return tz


def parse_clf_time(text: str) -> datetime | None:
    """`[10/Oct/2000:13:55:36 -0700]` or without brackets → aware datetime, offset kept."""
    if text[:1] == "[" and text[-1:] == "]":
        text = text[1:-1]
    # Fixed layout: dd/Mon/yyyy:HH:MM:SS +zzzz (26 characters); ASCII (int() takes `７` too).
    if (
        len(text) != 26
        or not text.isascii()
        or text[2] != "/"
        or text[6] != "/"
        or text[11] != ":"
        or text[20] != " "
    ):
        return None
    month = MONTHS.get(text[3:6])
    tz = fixed_offset(text[21:])
    if month is None or tz is None:
        return None
    try:
        return datetime(
            int(text[7:11]), month, int(text[0:2]),
            int(text[12:14]), int(text[15:17]), int(text[18:20]), 0, tz,
        )  # fmt: skip
    except ValueError:
        return None


def parse_error_log_time(text: str, default_tz: tzinfo = UTC) -> datetime | None:
    """`Wed Oct 11 14:32:52.123456 2000` (2.4) or without the fraction (2.2) → aware datetime."""
    if text[:1] == "[" and text[-1:] == "]":
        text = text[1:-1]
    parts = text.split()
    if len(parts) != 5:
        return None
    _weekday, mon, day, clock, year = parts
    month = MONTHS.get(mon)
    if month is None:
        return None
    hms, _, frac = clock.partition(".")
    fields = hms.split(":")
    if not text.isascii() or len(fields) != 3 or (frac and not frac.isdigit()):
        return None
    try:
        micro = int(frac.ljust(6, "0")[:6]) if frac else 0
        return datetime(
            int(year), month, int(day), int(fields[0]), int(fields[1]), int(fields[2]), micro, default_tz
        )
    except ValueError:
        return None


_EPOCH_DIVISORS = {"sec": 1, "msec": 1_000, "usec": 1_000_000}


def parse_epoch(text: str, unit: str = "sec") -> datetime | None:
    """Seconds / milliseconds / microseconds since the Epoch → UTC datetime."""
    divisor = _EPOCH_DIVISORS.get(unit)
    if divisor is None or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    try:
        return datetime.fromtimestamp(value // divisor, UTC).replace(
            microsecond=(value % divisor) * (1_000_000 // divisor)
        )
    except (OverflowError, ValueError, OSError):
        return None


# C strftime conversions Python's strptime lacks, expanded to ones it has.
_C_EXPANSIONS = {
    "T": "%H:%M:%S",
    "D": "%m/%d/%y",
    "F": "%Y-%m-%d",
    "R": "%H:%M",
    "e": "%d",
    "h": "%b",
    "r": "%I:%M:%S %p",
}


def strftime_for_python(fmt: str) -> str:
    """Rewrite an Apache/C strftime format so that `datetime.strptime` understands it."""
    out: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            code = fmt[i + 1]
            out.append(_C_EXPANSIONS.get(code, "%" + code))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_strftime(text: str, fmt: str, default_tz: tzinfo = UTC) -> datetime | None:
    """Parse `text` written with C strftime format `fmt`; attach `default_tz` when no offset."""
    try:
        value = datetime.strptime(text, strftime_for_python(fmt))
    except (ValueError, re.error):  # re.error: a format repeating a field (`%Y ... %Y`)
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=default_tz)
    return value


class TimeCache:
    """Memoise a text → datetime parser per distinct string (bounded; cleared when full)."""

    __slots__ = ("_parse", "_cache", "_max_entries")

    def __init__(self, parse: Callable[[str], datetime | None], max_entries: int = 4096) -> None:
        self._parse = parse
        self._cache: dict[str, datetime | None] = {}
        self._max_entries = max_entries

    def get(self, text: str) -> datetime | None:
        try:
            return self._cache[text]
        except KeyError:
            pass
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        value = self._cache[text] = self._parse(text)
        return value

    __call__ = get

    @property
    def mapping(self) -> dict[str, datetime | None]:
        """The live dict, for hot loops that want `mapping.get(text)` and fall back to `get`."""
        return self._cache
