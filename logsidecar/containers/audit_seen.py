"""What `docker audit` has seen: engine-created bind directories, remembered past their container.

The engine keeps no trace of a bind directory it created once the container is removed (its destroy
event names no mounts), yet that is exactly when the directory is leaked. So every audit records the
engine-created directories it finds, with their container, in a small JSON file under the user's state
directory (`$XDG_STATE_HOME/logsidecar/audit-seen.json`, else `~/.local/state/...`; written atomically,
mode 0600; paths, container names and ids and first-seen times only, never contents). A later audit
reports a recorded directory whose container is gone as leaked: whether it still exists and holds data.
A directory that no longer exists is reported once more, then forgotten.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SEEN_FILE_ENV = "LOGSIDECAR_AUDIT_SEEN"  # overrides the path (tests, several engines)


def seen_file() -> Path:
    override = os.environ.get(SEEN_FILE_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "logsidecar" / "audit-seen.json"


@dataclass(frozen=True, slots=True)
class LeakedDir:
    path: str
    container: str  # the container it was a bind mount of, now gone
    container_id: str
    first_seen: str
    exists: bool
    holds_data: bool | None  # None: exists but cannot be listed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def state(self) -> str:
        if not self.exists:
            return "no longer exists"
        if self.holds_data is None:
            return "exists, cannot be listed"
        return "exists, holds data" if self.holds_data else "exists, empty"


def load(path: Path) -> dict[str, dict[str, str]]:
    """{directory: {"container", "container_id", "first_seen"}}; a missing or unreadable record is empty
    (it only adds to what the engine tells)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("dirs"), dict):
        return {}
    return {
        str(k): {f: str(v.get(f, "")) for f in ("container", "container_id", "first_seen")}
        for k, v in data["dirs"].items()
        if isinstance(v, dict)
    }


def save(path: Path, dirs: dict[str, dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".audit-seen.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"version": 1, "dirs": dirs}, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remember_and_find_leaked(
    path: Path, seen_now: list[tuple[str, str, str]], live_container_ids: set[str]
) -> list[LeakedDir]:
    """Record `seen_now` ([(directory, container name, container id)]) and return the recorded
    directories whose container is no longer among `live_container_ids`."""
    dirs = load(path)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for directory, name, cid in seen_now:
        known = dirs.get(directory)
        if known is None or known["container_id"] != cid:
            dirs[directory] = {"container": name, "container_id": cid, "first_seen": now}
    leaked = []
    for directory, entry in sorted(dirs.items()):
        if entry["container_id"] in live_container_ids:
            continue
        exists = os.path.isdir(directory)
        holds_data: bool | None = False
        if exists:
            try:
                holds_data = bool(os.listdir(directory))
            except OSError:
                holds_data = None
        leaked.append(
            LeakedDir(
                directory, entry["container"], entry["container_id"], entry["first_seen"], exists, holds_data
            )
        )
    # A leaked directory that is gone has been reported; keep the record small.
    for gone in (d.path for d in leaked if not d.exists):
        del dirs[gone]
    try:
        save(path, dirs)
    except OSError:
        pass  # the record is a help, not a need: audit still reports what the engine shows
    return leaked
