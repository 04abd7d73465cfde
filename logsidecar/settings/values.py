"""The syntaxes of setting values that the running process reads too: time zones ('local', 'UTC',
an offset or an IANA name) and HOST:PORT. Apart from `settings.units` (which builds the pydantic
types on them) so that the runtime (`logsidecar.runtime`) parses them without loading pydantic."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import tzinfo


def parse_timezone(text: str, env: Mapping[str, str] | None = None) -> tzinfo:
    """'local', 'UTC', '+02:00' / '-0730', or an IANA name like 'Europe/Paris'.

    'local' is the zone named by TZ (in `env`, default os.environ), else /etc/localtime: a real zone
    with its DST rules, not today's fixed offset (error-log times from last winter must stay right)."""
    from datetime import UTC, datetime, timedelta, timezone
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = text.strip()
    if name.lower() == "local":
        tz_name = (os.environ if env is None else env).get("TZ", "").lstrip(":")
        if tz_name:
            try:
                return ZoneInfo(tz_name)
            except (ZoneInfoNotFoundError, ValueError):
                pass
        try:
            with open("/etc/localtime", "rb") as handle:
                return ZoneInfo.from_file(handle, key="localtime")
        except (OSError, ValueError):
            return datetime.now().astimezone().tzinfo or UTC
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    match = re.fullmatch(r"([+-])(\d\d):?(\d\d)", name)
    if match:
        sign = 1 if match.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {text!r}; expected local, UTC, an offset like +02:00 or a name like Europe/Paris"
        ) from None


def parse_http_addr(text: str) -> tuple[str, int]:
    """'127.0.0.1:9464', '[::1]:9464', 'localhost:9464', ':9464' or '9464' (both loopback) -> (host, port)."""
    raw = text.strip()
    if raw.isdigit():
        raw = ":" + raw
    match = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]\s]*))?:?(\d+)", raw)
    if not match or ":" not in raw:
        raise ValueError(f"invalid address {text!r}; expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464")
    host = match.group(1) or match.group(2) or "127.0.0.1"
    port = int(match.group(3))
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid address {text!r}; port must be between 0 and 65535")
    return host, port
