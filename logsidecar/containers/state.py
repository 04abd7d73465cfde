"""The sidecar's own state volume: where its checkpoints live, so a recreated sidecar resumes.

Named after the container whose logs it follows, `logsidecar-state-<container>`, so recreating the
sidecar the chapter's way (`docker rm -f`, then `docker run ... -v logsidecar-state-web:/var/lib/logsidecar`)
finds the same checkpoints, and a person reading `docker volume ls` knows whose it is. The volumes we
create carry `io.logsidecar.state-for=<container id>` and `io.logsidecar.state-for-name=<name>`: we
remove only those (never a volume the user made, never one in use), and `audit` says whose they are.
"""

from __future__ import annotations

from typing import Any

import docker.errors

from logsidecar.containers.engine import EngineError, api_message

STATE_FOR_LABEL = "io.logsidecar.state-for"
STATE_FOR_NAME_LABEL = "io.logsidecar.state-for-name"


def state_volume_name(container_name: str) -> str:
    return f"logsidecar-state-{container_name}"


def ensure_state_volume(client: Any, target: Any) -> tuple[str, bool]:
    """The state volume of `target`'s sidecar, created (labelled as ours) when missing.
    Returns (name, whether we created it now)."""
    name = state_volume_name(target.name)
    try:
        client.volumes.get(name)
        return name, False
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        raise EngineError(f"cannot inspect volume {name}: {api_message(exc)}") from exc
    try:
        client.volumes.create(
            name=name, labels={STATE_FOR_LABEL: target.id, STATE_FOR_NAME_LABEL: target.name}
        )
    except docker.errors.APIError as exc:
        raise EngineError(f"cannot create the state volume {name}: {api_message(exc)}") from exc
    return name, True


def remove_state_volume(client: Any, name: str) -> tuple[bool, str | None]:
    """Remove `name` if it is one of our state volumes and no container uses it. Returns (removed,
    why it was kept); (False, None) when there is no such volume."""
    try:
        volume = client.volumes.get(name)
    except docker.errors.NotFound:
        return False, None
    if STATE_FOR_LABEL not in (volume.attrs.get("Labels") or {}):
        return False, f"{name} (not created by logsidecar)"
    users = client.containers.list(all=True, filters={"volume": name})
    if users:
        return False, f"{name} (still used by {', '.join(c.name for c in users)})"
    try:
        volume.remove()
    except docker.errors.APIError as exc:
        return False, f"{name} ({api_message(exc)})"
    return True, None


def state_owner(labels: dict[str, str] | None) -> str | None:
    """For audit: the name of the container whose sidecar state a volume holds, when it is ours."""
    labels = labels or {}
    if STATE_FOR_LABEL not in labels:
        return None
    return labels.get(STATE_FOR_NAME_LABEL) or labels[STATE_FOR_LABEL][:12]
