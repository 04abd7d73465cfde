"""The time zone a container's Apache writes its error-log times in (they carry no offset).

Apache formats them in the zone of its own process: the container's `TZ` environment when set, else
its `/etc/localtime` (a link into zoneinfo, or Debian's `/etc/timezone`), else UTC, which is what a
container without either runs in. Not the zone of the host running `docker attach`: reading a UTC
container's times as the host's Asia/Shanghai would shift every record by 8 hours.
"""

from __future__ import annotations

import io
import tarfile
import zoneinfo
from typing import Any

import docker.errors


def container_timezone(client: Any, attrs: dict[str, Any]) -> tuple[str, str]:
    """(zone name for `--timezone`, where it came from) for the container `attrs` describes."""
    for item in (attrs.get("Config") or {}).get("Env") or []:
        key, _, value = item.partition("=")
        if key == "TZ" and value:
            zone = value.lstrip(":")
            if _known(zone):
                return zone, f"its TZ={value}"
            return "UTC", f"its TZ={value} is no zone name this host knows, so UTC; give --timezone"
    link = _read(client, attrs["Id"], "/etc/localtime", link=True)
    if link and "zoneinfo/" in link:
        zone = link.split("zoneinfo/", 1)[1]
        if _known(zone):
            return zone, f"its /etc/localtime -> {link}"
    named = (_read(client, attrs["Id"], "/etc/timezone") or "").strip()
    if named and _known(named):
        return named, "its /etc/timezone"
    if link is not None or named:
        return "UTC", "its /etc/localtime names no zone this host knows, so UTC; give --timezone"
    return "UTC", "it sets no TZ and has no /etc/localtime"


def _known(zone: str) -> bool:
    if zone.upper() == "UTC":
        return True
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _read(client: Any, container_id: str, path: str, *, link: bool = False) -> str | None:
    """A symlink's target (`link`) or a small text file of the container; None when absent. A regular
    /etc/localtime (a copied zone file) gives "" for `link`: present, but not named."""
    try:
        stream, _stat = client.api.get_archive(container_id, path)
        data = b"".join(stream)
    except docker.errors.APIError:
        return None
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = next(iter(archive.getmembers()), None)
        if member is None:
            return None
        if link:
            return member.linkname if member.issym() else ""
        extracted = archive.extractfile(member)
        return extracted.read(256).decode("utf-8", "replace") if extracted else None
