"""Values with units, and the small text syntaxes of settings: durations, sizes, HOST:PORT, time
zones, `KEY=VALUE` lists. Pure functions; each raises ValueError with a message fit for the user.

Durations are float seconds ("500ms", "30s", "5m", "24h", "7d", "1h30m" or a number of seconds);
sizes are int bytes ("1MiB", "64KiB", "1MB", "512k" or a number of bytes). `Duration`, `Size`,
`TimezoneName`, `HttpAddr` and `ReadableFile` are the pydantic types built on them (their error is
shown as is); the command line parses with the same functions (`cli.params`).
"""

from __future__ import annotations

import re
from datetime import tzinfo
from typing import Annotated, Any
from urllib.parse import unquote

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

from logsidecar.settings.values import parse_http_addr, parse_timezone

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3,
}  # fmt: skip


# The zone of times written without an offset (the error log), for `tail` and `parse` alike: the
# machine's, as Apache itself writes them in its local time.
DEFAULT_TIMEZONE = "local"


def parse_duration(value: str | float) -> float:
    """'500ms', '30s', '5m', '24h', '7d', '1h30m' or a number of seconds -> seconds (>= 0)."""
    if isinstance(value, bool):
        raise ValueError(
            f"invalid duration {value!r}; expected a number and a unit (ms, s, m, h, d), e.g. '30s'"
        )
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            if not text or _DURATION_PART.sub("", text):
                raise ValueError(
                    f"invalid duration {value!r}; expected a number and a unit (ms, s, m, h, d), "
                    "e.g. '30s', '5m', '24h'"
                ) from None
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    if seconds < 0 or seconds != seconds:  # negative or NaN
        raise ValueError(f"invalid duration {value!r}; must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 86400 -> '1d', 90 -> '1m30s', 0.25 -> '250ms'."""
    if seconds == 0:
        return "0s"
    millis = round(seconds * 1000)
    if abs(millis - seconds * 1000) > 1e-6 or millis % 1000:
        return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"
    rest, parts = millis // 1000, []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def parse_size(value: str | float) -> int:
    """'1MiB', '64KiB', '1MB', '512k' or a number of bytes -> bytes (> 0)."""
    if isinstance(value, bool):
        raise ValueError(
            f"invalid size {value!r}; expected a number and a unit (B, KB, MB, GB, KiB, MiB, GiB)"
        )
    if isinstance(value, int | float):
        size = int(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(
                f"invalid size {value!r}; expected a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. '1MiB'"
            )
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if size <= 0:
        raise ValueError(f"invalid size {value!r}; must be greater than 0")
    return size


def format_size(size: int) -> str:
    """The shortest exact spelling in binary units: 1048576 -> '1MiB', 1500 -> '1500B'."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def custom(validate: Any) -> Any:
    """Run `validate`, turning its ValueError into an error whose message is shown as is."""

    def run(value: Any) -> Any:
        try:
            return validate(value)
        except ValueError as exc:
            raise PydanticCustomError("logsidecar", str(exc)) from None

    return run


def _as_duration(value: Any) -> float:
    if not isinstance(value, str | int | float):
        raise ValueError("expected a duration such as '30s', '5m' or '24h'")
    return parse_duration(value)


def _as_size(value: Any) -> int:
    if not isinstance(value, str | int | float):
        raise ValueError("expected a size such as '1MiB'")
    return parse_size(value)


def _as_timezone(value: Any) -> str:
    if isinstance(value, tzinfo):
        return timezone_name(value)
    if not isinstance(value, str):
        raise ValueError("expected a timezone name such as 'UTC' or 'Europe/Paris'")
    parse_timezone(value)
    return value.strip()


def check_readable_file(text: str) -> str:
    """A path to a file we can open for reading (a CA bundle, a key), or ValueError saying why."""
    path = text.strip()
    try:
        with open(path, "rb"):
            pass
    except IsADirectoryError:
        raise ValueError(f"{path!r} is a directory; expected a file") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    return path


def _as_readable_file(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected the path of a file")
    return check_readable_file(value)


def _as_http_addr(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9464")
    host, port = parse_http_addr(value)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


Duration = Annotated[
    float, BeforeValidator(custom(_as_duration)), PlainSerializer(format_duration, when_used="json")
]
Size = Annotated[int, BeforeValidator(custom(_as_size))]
TimezoneName = Annotated[str, BeforeValidator(custom(_as_timezone))]
HttpAddr = Annotated[str, BeforeValidator(custom(_as_http_addr))]
ReadableFile = Annotated[str, BeforeValidator(custom(_as_readable_file))]


def timezone_name(tz: tzinfo) -> str:
    key = getattr(tz, "key", None)
    if key:
        return str(key)
    offset = tz.utcoffset(None)
    if offset is None or offset.total_seconds() == 0:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def split_words(text: str) -> list[str]:
    """`a,b c` -> ["a", "b", "c"]: how list-valued environment variables are written."""
    return [part for part in re.split(r"[,\s]+", text) if part]


def split_key_value(member: str) -> tuple[str, str] | None:
    """`KEY=VALUE` -> (key, value), stripped; None when there is no `=` or no key."""
    key, sep, value = member.partition("=")
    if not sep or not key.strip():
        return None
    return key.strip(), value.strip()


def key_values(text: str, *, percent_encoded: bool = False) -> tuple[dict[str, str], int]:
    """`k1=v1,k2=v2` -> ({k1: v1, k2: v2}, number of malformed members). Percent-encoded keys and
    values (W3C Baggage style, what the OTel specification says for its variables) are decoded
    when `percent_encoded`. A malformed member is counted, never quoted: values may be secrets."""
    result: dict[str, str] = {}
    malformed = 0
    for member in text.split(","):
        if not member.strip():
            continue
        pair = split_key_value(member)
        if pair is None:
            malformed += 1
            continue
        key, value = pair
        result[unquote(key) if percent_encoded else key] = unquote(value) if percent_encoded else value
    return result, malformed
