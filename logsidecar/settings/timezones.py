"""Time zones by name: 'local', 'UTC', an offset or an IANA name. Apart from `settings.units` (which
builds pydantic types) so that the running process (`logsidecar.runtime`) reads a zone without
loading pydantic."""

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
