"""The directory-leak pitfall: volumes nothing references any more, and bind-mount directories the
engine created on its own.

- A volume is *unreferenced* when no container, running or stopped, mounts it.
- It is *anonymous* when its name is a 64-hex id (or it carries `com.docker.volume.anonymous`): the
  leftover of `docker run` with a `VOLUME` image and no `-v` name, removed without `--rm`/`-v`.
- An *engine-created bind directory*: `-v /host/dir:/x` creates /host/dir when it is missing. We flag
  bind sources that are directories owned by root, empty, and last modified within a few seconds of
  the container's creation: a heuristic (the engine leaves no other trace), so it is reported, never pruned.
- Our own state volumes (`containers.state`, label `io.logsidecar.state-for`) are named as such, with
  the container whose sidecar kept its checkpoints there: a leftover of ours, not a mystery.
- A *leaked bind directory*: an engine-created one whose container is gone. The engine forgets it,
  so audit remembers what it saw (`containers.audit_seen`). Reported, never pruned unless asked
  (`--prune-dirs`), and then only when empty.
- `--filter` applies to all: to volumes through the engine's filter, to bind directories as the same
  keys mean there (name= a part of the path, label= a label of the container).
- Pruning keeps named volumes that still hold data unless asked (`include_named`): a name is someone's
  intent, and data in it may be the only copy; anonymous and empty named volumes go.
Pruning re-checks right before each removal and never removes a volume in use (the engine refuses too).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from logsidecar.containers.audit_seen import LeakedDir
from logsidecar.containers.metadata import is_anonymous_volume_name
from logsidecar.containers.state import state_owner

ENGINE_CREATED_WINDOW_S = 5.0


@dataclass(frozen=True, slots=True)
class UnusedVolume:
    name: str
    anonymous: bool
    size_bytes: int | None
    created_at: str | None
    age_s: float | None
    mountpoint: str | None
    state_of: str | None = None  # our sidecar state volume: the container it followed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EngineCreatedDir:
    path: str
    container: str
    labels: dict[str, str] | None = None  # the container's
    container_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def referenced_volume_names(client: Any) -> set[str]:
    names = set()
    for summary in client.api.containers(all=True):
        for mount in summary.get("Mounts") or []:
            if mount.get("Type") == "volume" and mount.get("Name"):
                names.add(mount["Name"])
    return names


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _du(path: str) -> int | None:
    total = 0
    try:
        for root, _dirs, files in os.walk(path):
            for f in files:
                try:
                    total += os.lstat(os.path.join(root, f)).st_size
                except OSError:
                    pass
    except OSError:
        return None
    return total if os.path.isdir(path) else None


def unused_volumes(
    client: Any, now: datetime | None = None, filters: dict[str, list[str]] | None = None
) -> list[UnusedVolume]:
    """Unreferenced volumes; `filters` are the engine's volume filters (name=, label=, dangling=)."""
    now = now or datetime.now(UTC)
    used = referenced_volume_names(client)
    sizes: dict[str, int] = {}
    try:
        for vol in client.df().get("Volumes") or []:
            size = (vol.get("UsageData") or {}).get("Size", -1)
            if size is not None and size >= 0:
                sizes[vol["Name"]] = size
    except Exception:  # noqa: BLE001 - df is a convenience; fall back to walking the mountpoint
        pass
    found = []
    for vol in client.api.volumes(filters=filters or None).get("Volumes") or []:
        name = vol["Name"]
        if name in used:
            continue
        labels = vol.get("Labels") or {}
        created = _parse_time(vol.get("CreatedAt"))
        mountpoint = vol.get("Mountpoint")
        size = sizes.get(name)
        if size is None and mountpoint:
            size = _du(mountpoint)
        found.append(
            UnusedVolume(
                name=name,
                anonymous=is_anonymous_volume_name(name) or "com.docker.volume.anonymous" in labels,
                size_bytes=size,
                created_at=vol.get("CreatedAt"),
                age_s=(now - created).total_seconds() if created else None,
                mountpoint=mountpoint,
                state_of=state_owner(labels),
            )
        )
    return sorted(found, key=lambda v: (not v.anonymous, v.name))


def engine_created_bind_dirs(client: Any) -> list[EngineCreatedDir]:
    found = []
    for summary in client.api.containers(all=True):
        created = summary.get("Created")
        for mount in summary.get("Mounts") or []:
            if mount.get("Type") != "bind":
                continue
            source = mount.get("Source", "")
            try:
                st = os.stat(source)
                empty = os.path.isdir(source) and not os.listdir(source)
            except OSError:
                continue
            if empty and st.st_uid == 0 and created and abs(st.st_mtime - created) <= ENGINE_CREATED_WINDOW_S:
                names = summary.get("Names") or [summary["Id"][:12]]
                found.append(
                    EngineCreatedDir(
                        path=source,
                        container=names[0].lstrip("/"),
                        labels=summary.get("Labels") or {},
                        container_id=summary["Id"],
                    )
                )
    return found


def live_container_ids(client: Any) -> set[str]:
    return {summary["Id"] for summary in client.api.containers(all=True)}


def bind_dir_matches(found: EngineCreatedDir | LeakedDir, filters: dict[str, list[str]]) -> bool:
    """The engine's volume filter keys, as they apply to a bind directory: every key must match one
    of its values (name=: a part of the path; label=KEY or KEY=VALUE: the container's labels; a
    leaked directory's container is gone, and with it its labels)."""
    labels = (found.labels if isinstance(found, EngineCreatedDir) else None) or {}
    for key, values in filters.items():
        if key == "name" and not any(v in found.path for v in values):
            return False
        if key == "label" and not any(
            (k in labels and (not sep or labels[k] == want))
            for k, sep, want in (v.partition("=") for v in values)
        ):
            return False
        if key not in ("name", "label"):
            return False  # dangling=, driver=: volume properties a directory does not have
    return True


def prune_plan(volumes: list[UnusedVolume], include_named: bool) -> tuple[list[str], list[tuple[str, str]]]:
    """(names to remove, [(name, why kept)]): named volumes that hold data stay unless `include_named`."""
    remove, keep = [], []
    for v in volumes:
        if v.anonymous or include_named or v.size_bytes == 0:
            remove.append(v.name)
        else:
            held = "an unknown amount of data" if v.size_bytes is None else f"{v.size_bytes} bytes"
            keep.append((v.name, f"named and holds {held} (--include-named removes it)"))
    return remove, keep


def prune_volumes(client: Any, names: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Remove `names`, re-checking each is still unreferenced. Returns (removed, [(name, why not)])."""
    removed, kept = [], []
    for name in names:
        if name in referenced_volume_names(client):
            kept.append((name, "now in use by a container"))
            continue
        try:
            client.volumes.get(name).remove()
            removed.append(name)
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            kept.append((name, str(exc)))
    return removed, kept


def remove_leaked_dir(leaked: LeakedDir) -> tuple[bool, str | None]:
    """(removed, why not): only an empty directory goes (rmdir); data in it may be the only copy."""
    if not leaked.exists:
        return False, None
    try:
        os.rmdir(leaked.path)
    except OSError as exc:
        return False, f"{exc.strerror or exc} (only an empty directory is removed)"
    return True, None
