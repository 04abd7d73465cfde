"""Apache error-log time strings → offset-aware datetimes (`ErrorTimeParser`).

Time zone: error-log times carry no UTC offset; they are the httpd process's local time. They are
interpreted in the parser's `timezone` (UTC when none is given; the commands pass `--timezone`,
local by default; a `zoneinfo.ZoneInfo` such as `ZoneInfo("Europe/Berlin")` matches the httpd
container's TZ) and returned offset-aware. With a
zoneinfo zone DST is right: each time gets the offset in force at that wall time. In the repeated
hour when DST ends the first pass is read as summer time (fold=0); once a later line steps back in
wall time within that hour, it is read as the second pass (fold=1), so times stay monotonic. Time
strings are parsed once per distinct second (a bounded cache); the fraction is added per line.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

from logsidecar.parse.timestamps import fixed_offset

__all__ = ["ErrorTimeParser"]

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
