"""Connecting to the Docker engine, turning the SDK's exceptions into messages a person can act on."""

from __future__ import annotations

import os

import docker
import docker.errors
from docker import DockerClient


class EngineError(Exception):
    """The engine cannot be used; the message says why and what to do."""


def connect(base_url: str | None = None, timeout_s: float = 30.0) -> DockerClient:
    """A client for the engine at `base_url` (default: DOCKER_HOST, else the local socket), pinged once."""
    where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = (
            docker.DockerClient(base_url=where, timeout=int(timeout_s))
            if base_url
            else docker.from_env(timeout=int(timeout_s))
        )
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        raise EngineError(explain(exc, where)) from exc


def explain(exc: BaseException, where: str) -> str:
    text = str(exc)
    if "Permission denied" in text or "PermissionError" in text:
        return (
            f"cannot reach the Docker engine at {where}: permission denied. "
            "Add your user to the 'docker' group (then log in again) or run with sudo."
        )
    if "No such file" in text or "FileNotFoundError" in text or "Connection refused" in text:
        return (
            f"cannot reach the Docker engine at {where}: no engine is listening. "
            "Start it (systemctl start docker, or dockerd) or set DOCKER_HOST."
        )
    return f"cannot use the Docker engine at {where}: {text}"


def get_container(client: DockerClient, name_or_id: str):  # -> docker.models.containers.Container
    try:
        return client.containers.get(name_or_id)
    except docker.errors.NotFound as exc:
        raise EngineError(f"no container named or with id {name_or_id!r}") from exc
