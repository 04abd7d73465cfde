"""Container metadata as OpenTelemetry resource attributes (semantic conventions `container.*`).

Used two ways: host side (`docker attach` knows the container) and inside the sidecar, when the
Docker socket is mounted, to find which container(s) write the volume we read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from logsidecar import events
from logsidecar.events import ConfigErrorEvent

_HEX_ID = re.compile(r"[0-9a-f]{64}")


def container_resource(attrs: dict[str, Any], labels: Iterable[str] = ()) -> dict[str, Any]:
    """Resource attributes of one container from its inspect data. `labels` names the container
    labels to copy (as `container.label.<key>`); "*" copies all of them."""
    config = attrs.get("Config") or {}
    image_ref = config.get("Image", "")
    name, tag = split_image_ref(image_ref)
    resource: dict[str, Any] = {
        "container.id": attrs.get("Id", ""),
        "container.name": attrs.get("Name", "").lstrip("/"),
        "container.runtime": "docker",
        "container.image.name": name,
    }
    if tag:
        resource["container.image.tags"] = [tag]
    image_id = attrs.get("Image")
    if image_id:
        resource["container.image.id"] = image_id
    container_labels = config.get("Labels") or {}
    wanted = set(labels)
    for key, value in sorted(container_labels.items()):
        if "*" in wanted or key in wanted:
            resource[f"container.label.{key}"] = value
    return resource


def resource_args(resource: dict[str, Any]) -> list[str]:
    """`--resource key=value` options of `logsidecar tail` for `resource` (lists joined by commas)."""
    args: list[str] = []
    for key, value in resource.items():
        if isinstance(value, list):
            value = ",".join(value)
        args += ["--resource", f"{key}={value}"]
    return args


def split_image_ref(ref: str) -> tuple[str, str | None]:
    """'registry:5000/ns/img:tag' -> ('registry:5000/ns/img', 'tag'); digests are kept in the name."""
    if "@" in ref:
        return ref, None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, None


def own_container_id() -> str | None:
    """Our own container id when we run in a Docker container, else None (read from cgroup/mountinfo)."""
    for source in ("/proc/self/mountinfo", "/proc/self/cgroup"):
        try:
            with open(source, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        # /var/lib/docker/containers/<id>/hostname (mountinfo) or .../docker-<id>.scope (cgroup)
        match = re.search(r"/containers/([0-9a-f]{64})/", text) or re.search(
            r"docker[-/]([0-9a-f]{64})", text
        )
        if match:
            return match.group(1)
    return None


def writers_of(client: Any, own_id: str | None, paths: Iterable[str]) -> list[dict[str, Any]]:
    """Inspect data of the other containers that mount the volume(s) or bind source(s) under which
    `paths` (as we see them) live. Running containers with a read-write mount come first."""
    if own_id is None:
        return []
    own = client.api.inspect_container(own_id)
    sources: set[str] = set()
    for path in paths:
        for mount in own.get("Mounts") or []:
            dest = mount.get("Destination", "")
            if path == dest or path.startswith(dest.rstrip("/") + "/"):
                sources.add(mount.get("Name") or mount.get("Source", ""))
    if not sources:
        return []
    found = []
    for summary in client.api.containers(all=True):
        if summary["Id"] == own_id:
            continue
        for mount in summary.get("Mounts") or []:
            key = mount.get("Name") or mount.get("Source", "")
            if key in sources:
                found.append((summary["State"] != "running", not mount.get("RW", True), summary["Id"]))
                break
    found.sort()
    return [client.api.inspect_container(cid) for _, _, cid in found]


def volume_writers(client: Any, location_key: str) -> list[str]:
    """Names of the running containers that mount the volume (name) or bind source `location_key`
    read-write, our own sidecars left out: who may write the files we read."""
    names = []
    for summary in client.api.containers():  # running only: a stopped container writes nothing
        if "io.logsidecar.sidecar-for" in (summary.get("Labels") or {}):
            continue
        for mount in summary.get("Mounts") or []:
            if (mount.get("Name") or mount.get("Source")) == location_key and mount.get("RW", True):
                names.append((summary.get("Names") or [summary["Id"][:12]])[0].lstrip("/"))
                break
    return sorted(names)


def writers_warning(target: str, writers: list[str], where: str) -> str | None:
    """What to say when the records' container.* would not name the one writer of the files."""
    if writers == [target]:
        return None
    if not writers:
        return f"no running container writes {where}; records are labelled {target}, which may not write them"
    if target in writers:
        others = ", ".join(w for w in writers if w != target)
        return (
            f"{where} is written by several containers ({', '.join(writers)}): records of {others} will be "
            f"labelled {target} too. Give each writer its own log directory, or attach to each"
        )
    return (
        f"{target} does not write {where} (not running, or read-only); it is written by {', '.join(writers)}: "
        f"attach to the writer instead, so records name it"
    )


def container_resource_for(paths: Iterable[str], labels: Iterable[str] = ()) -> dict[str, Any]:
    """Inside the sidecar: metadata of the container that writes the volume we read, when the Docker
    socket is reachable; {} otherwise (the sidecar works as before without it)."""
    if not os.path.exists("/var/run/docker.sock") and "DOCKER_HOST" not in os.environ:
        return {}
    own_id = own_container_id()
    if own_id is None:  # not in a container: no sidecar volume to trace (and the Docker SDK stays
        return {}  # unimported: requests, urllib3 and docker cost ~8 MiB of RSS for good)
    try:
        import docker

        client = docker.from_env(timeout=5)
        writers = writers_of(client, own_id, list(paths))
    except Exception:  # noqa: BLE001 - enrichment is optional; never fail the sidecar for it
        return {}
    if not writers:
        return {}
    running = [w for w in writers if (w.get("State") or {}).get("Running")]
    if len(running) > 1:  # several writers: naming one would mislabel the others' records
        events.emit(
            ConfigErrorEvent(
                key="docker_metadata",
                reason="several running containers write the tailed volume ("
                + ", ".join(w.get("Name", "").lstrip("/") for w in running)
                + "): records carry no container.*; run one sidecar per writer, or pass --resource",
            )
        )
        return {}
    return container_resource(writers[0], labels)


def is_anonymous_volume_name(name: str) -> bool:
    return bool(_HEX_ID.fullmatch(name))
