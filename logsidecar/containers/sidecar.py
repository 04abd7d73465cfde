"""Start (and find, and remove) a logsidecar container beside another container.

A sidecar is started only for a container whose log directories are on a volume or bind mount
(`log_locations`): a directory on none is in the target's writable layer, which the sidecar cannot see,
so it would wait on its own empty overlay forever and still report healthy.

The sidecar shares the target's volumes read-only (`volumes_from: TARGET:ro`), keeps its checkpoints
on the state volume `logsidecar-state-<target>` (`containers.state`: a restarted or recreated sidecar
resumes), and is named and labelled so it can be found: name `logsidecar-<target>`, label
`io.logsidecar.sidecar-for=<target id>`. What it creates goes with it unless the state is to be kept:
with `auto_remove` (`--rm`) its checkpoints live in the image's anonymous volume, which the engine
removes with the container; `remove_sidecars` removes the state volume we created.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import docker.errors

from logsidecar.containers.engine import EngineError, api_message, local_image
from logsidecar.containers.metadata import container_resource, resource_args
from logsidecar.containers.mounts import HostLocation, resolve_log_dir
from logsidecar.containers.state import ensure_state_volume, remove_state_volume, state_volume_name
from logsidecar.tail.discovery import static_base

SIDECAR_LABEL = "io.logsidecar.sidecar-for"
SIDECAR_NAME_LABEL = "io.logsidecar.sidecar-for-name"
DEFAULT_IMAGE = "logsidecar/logsidecar:local"  # what scripts/build-images.sh tags
DEFAULT_TAIL_ARGS = ("/var/log/apache2/*.log",)
STATE_DIR = "/var/lib/logsidecar"
DOCKER_SOCKET = "/var/run/docker.sock"


def sidecar_name(target_name: str) -> str:
    return f"logsidecar-{target_name}"


def tail_command(tail_args: Sequence[str], paths: Sequence[str] | None = None) -> list[str]:
    """`tail` with the user's arguments; the default log glob is added when they name no path.
    `paths` are the PATH_OR_GLOB arguments among `tail_args` when the caller parsed them (an option
    value such as `--state-dir /x` is not a path); without them, any argument starting with / is one."""
    has_path = bool(paths) if paths is not None else any(arg.startswith("/") for arg in tail_args)
    return ["tail", *tail_args, *(() if has_path else DEFAULT_TAIL_ARGS)]


def log_locations(target_attrs: dict[str, Any], paths: Sequence[str]) -> list[HostLocation]:
    """Where each log directory of `paths` (globs as the sidecar will see them; the default glob when
    empty) lives on the host. Raises mounts.NotOnMount, naming the directory, for one on no mount."""
    directories = dict.fromkeys(str(static_base(p)) for p in (paths or DEFAULT_TAIL_ARGS))
    return [resolve_log_dir(target_attrs, directory) for directory in directories]


_S = 1_000_000_000  # the engine's health durations are in nanoseconds
# A sidecar exists to read its target's logs: its health is readiness (/readyz), so one that follows no
# file is unhealthy and its health log says which patterns wait and why (no match, refused,
# unreadable); never the collector's state (a restart does not fix an outage). The image's own
# HEALTHCHECK asks the same probe, less often.
SIDECAR_HEALTHCHECK = {
    "test": [
        "CMD-SHELL",
        'if [ -n "${LOGSIDECAR_HTTP_ADDR:-}" ]; then exec logsidecar health --probe readyz; '
        "else exec python3 -c \"import sys; sys.exit(b'logsidecar' not in open('/proc/1/cmdline', 'rb').read())\"; fi",
    ],
    "interval": 5 * _S,
    "timeout": 5 * _S,
    "retries": 3,
    "start_period": 10 * _S,
}


def start_sidecar(
    client: Any,
    target: Any,
    *,
    image: str = DEFAULT_IMAGE,
    tail_args: Sequence[str] = (),
    auto_remove: bool = False,
    environment: dict[str, str] | None = None,
    mount_docker_socket: bool = False,
    network: str | None = None,
    pull: bool = False,
    paths: Sequence[str] | None = None,
    keep_state: bool = False,
) -> Any:
    """Run the sidecar detached and return its Container. EngineError when a sidecar (or another
    container) already has its name, or the image is missing and `pull` is not asked."""
    name = sidecar_name(target.name)
    existing = find_sidecars(client, target)
    if existing:
        raise EngineError(
            f"{target.name} already has a sidecar: {existing[0].name} ({existing[0].status}). "
            f"Remove it first with `logsidecar docker sidecar --remove {target.name}`, or keep it."
        )
    local_image(client, image, pull=pull)
    volumes: dict[str, dict[str, str]] = {}
    state_created = False
    if keep_state or not auto_remove:
        state, state_created = ensure_state_volume(client, target)
        volumes[state] = {"bind": STATE_DIR, "mode": "rw"}
    group_add: list[str] = []
    if mount_docker_socket:
        volumes[DOCKER_SOCKET] = {"bind": DOCKER_SOCKET, "mode": "ro"}
        # The image runs as a non-root user: let it open the socket through the socket's group.
        try:
            group_add.append(str(os.stat(DOCKER_SOCKET).st_gid))
        except OSError:
            pass
    try:
        return client.containers.run(
            image,
            # The followed container's identity as resource attributes: the sidecar's records name
            # the container that wrote them, not the sidecar (the user's own --resource come after).
            command=[
                "tail",
                *resource_args(container_resource(target.attrs)),
                *tail_command(tail_args, paths)[1:],
            ],
            name=name,
            detach=True,
            auto_remove=auto_remove,
            volumes_from=[f"{target.id}:ro"],
            volumes=volumes,
            read_only=True,
            labels={SIDECAR_LABEL: target.id, SIDECAR_NAME_LABEL: target.name},
            environment=environment or {},
            network=network,
            group_add=group_add or None,
            healthcheck=SIDECAR_HEALTHCHECK,
        )
    except docker.errors.APIError as exc:
        if state_created:
            remove_state_volume(client, state_volume_name(target.name))
        if exc.status_code == 409:
            raise EngineError(
                f"a container named {name} already exists and is not {target.name}'s sidecar: "
                f"rename or remove it (`docker rm -f {name}`), then run this again"
            ) from exc
        raise EngineError(f"the engine refused to start {name}: {api_message(exc)}") from exc


def find_sidecars(client: Any, target: Any) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"{SIDECAR_LABEL}={target.id}"})


def remove_sidecars(client: Any, target: Any, *, keep_state: bool = False) -> tuple[list[str], list[str]]:
    """Stop and remove the target's sidecars and, unless `keep_state`, the state volume we created for
    them. Returns (what was removed, why anything was kept)."""
    removed, kept = [], []
    for container in find_sidecars(client, target):
        container.remove(force=True, v=True)  # v: an anonymous state volume (--rm) goes too
        removed.append(container.name)
    state = state_volume_name(target.name)
    if keep_state:
        kept.append(f"{state} (--keep-state)")
    else:
        gone, why = remove_state_volume(client, state)
        removed += [state] if gone else []
        kept += [why] if why else []
    return removed, kept
