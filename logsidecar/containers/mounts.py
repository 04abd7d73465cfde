"""Where a container's log directory lives on the host.

Docker lists every mount of a container in `.Mounts`, including the ones it inherited through
`volumes_from` (however many hops: the engine copies the mount specs when the container is created).
A log directory inside the container maps to the host through the mount whose destination is its
longest prefix: a bind mount's source, or a named/anonymous volume's mountpoint
(`/var/lib/docker/volumes/NAME/_data`). A directory on no mount lives in the container's writable
layer: not something to tail from outside, and the message says what to change.

The container can write anything into that directory, symlinks included, and `docker attach` reads it
on the host, often as root: `escaping_log_dir` refuses a log directory that a symlink inside the mount
leads out of it, and the tailer's file-opening policy (`tail.open_policy`, `--follow-symlinks within`)
keeps every followed file inside it. `stdout_symlinks` finds the logs a container sends to its stdout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from logsidecar.tail.open_policy import is_inside, stream_link


class NotOnMount(Exception):
    """The log directory is not on a bind mount or a volume; the message explains the fix."""


@dataclass(frozen=True, slots=True)
class HostLocation:
    container_dir: str  # the directory as the container sees it
    host_dir: str  # the same directory on the host
    mount_type: str  # "bind" or "volume"
    volume_name: str | None
    mount_destination: str
    read_write: bool
    mount_source: str = ""  # the mount's host directory (a volume's _data): the bound of host_dir


def resolve_log_dir(container_attrs: dict[str, Any], container_dir: str) -> HostLocation:
    """Map `container_dir` to a host directory through the container's mounts."""
    wanted = PurePosixPath(container_dir)
    best: dict[str, Any] | None = None
    for mount in container_attrs.get("Mounts") or []:
        dest = PurePosixPath(mount.get("Destination", ""))
        if mount.get("Type") not in ("bind", "volume"):
            continue
        if wanted == dest or dest in wanted.parents:
            if best is None or len(str(dest)) > len(best["Destination"]):
                best = mount
    name = container_attrs.get("Name", "").lstrip("/") or container_attrs.get("Id", "")[:12]
    if best is None:
        raise NotOnMount(
            f"container {name} has no volume or bind mount covering {container_dir}: files written there stay "
            "in the container's writable layer (or the server logs to stdout, see `docker logs`). "
            f"Mount a volume at {container_dir} (docker run -v apache-logs:{container_dir} ..., or compose "
            "`volumes:`) and point CustomLog/ErrorLog at files in it."
        )
    rel = wanted.relative_to(best["Destination"])
    host_dir = os.path.normpath(os.path.join(best["Source"], str(rel)))
    return HostLocation(
        container_dir=container_dir,
        host_dir=host_dir,
        mount_type=best["Type"],
        volume_name=best.get("Name"),
        mount_destination=best["Destination"],
        read_write=bool(best.get("RW", True)),
        mount_source=best["Source"],
    )


def escaping_log_dir(location: HostLocation) -> str | None:
    """Where the host log directory really leads when a symlink inside the mount (planted by the
    container: `logs -> /etc`) takes it out of the mount; None when it stays inside."""
    real = os.path.realpath(location.host_dir)
    bound = os.path.realpath(location.mount_source or location.host_dir)
    return None if is_inside(real, bound) else real


def stdout_symlinks(host_dir: str) -> list[tuple[str, str]]:
    """Log files in `host_dir` that are symlinks to the process's stdout/stderr (as in the official
    httpd image, which sends its logs to `docker logs`): (name, target) pairs."""
    found = []
    try:
        entries = os.listdir(host_dir)
    except OSError:
        return []
    for entry in sorted(entries):
        target = stream_link(os.path.join(host_dir, entry))
        if target is not None:
            found.append((entry, target))
    return found


def stdout_logging_advice(container: str, container_dir: str, links: list[tuple[str, str]]) -> str:
    """What to tell the user when logs in `container_dir` are links to the writer's stdout/stderr."""
    names = ", ".join(f"{name} -> {target}" for name, target in links)
    return (
        f"in {container_dir} of {container}, {names}: these logs go to the container's stdout/stderr, not "
        f"to files, so they are not followed here (read them with `docker logs {container}`). To tail "
        f"them, configure Apache to write files: remove the links and point CustomLog/ErrorLog at files "
        f"in {container_dir} (e.g. CustomLog {container_dir}/access.log combined)."
    )
