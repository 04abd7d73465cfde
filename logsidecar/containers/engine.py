"""Connecting to the Docker engine, turning the SDK's exceptions into messages a person can act on."""

from __future__ import annotations

import os

import docker
import docker.errors
from docker import DockerClient


class EngineError(Exception):
    """The engine cannot be used, or refused what we asked (a name taken, an image missing); the
    message says why and what to do. An environment error for the user: exit code 2."""


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
        raise EngineError(
            f"no container named or with id {name_or_id!r} on this engine (see `docker ps -a`)"
        ) from exc
    except docker.errors.APIError as exc:
        raise EngineError(f"cannot inspect container {name_or_id!r}: {api_message(exc)}") from exc


def local_image(client: DockerClient, ref: str, *, pull: bool | None = None):  # -> docker.models.images.Image
    """The image `ref` as the engine has it. Missing: pulled only when `pull` is asked (a silent pull of
    a mistyped name would wait on a registry, or fetch something else); else an EngineError.
    `pull=None`: the command offers no --pull, and the message does not mention it."""
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound as exc:
        if not pull:
            hint = (
                "build it with bash scripts/build-images.sh"
                if ref.startswith("logsidecar/")
                else "check the name (`docker images`), build it"
            )
            raise EngineError(
                f"image {ref} is not on this engine (nothing is pulled unasked): {hint}, "
                f"or `docker pull {ref}`" + (" (or add --pull)" if pull is False else "")
            ) from exc
    except docker.errors.APIError as exc:
        raise EngineError(f"cannot inspect image {ref}: {api_message(exc)}") from exc
    try:
        return client.images.pull(ref)
    except docker.errors.APIError as exc:
        raise EngineError(
            f"image {ref} is not on this engine and pulling it failed: {api_message(exc)}"
        ) from exc


def api_message(exc: BaseException) -> str:
    """The engine's own explanation ("Conflict. The container name ... is already in use"), without
    the SDK's `500 Server Error for http+docker://...` prefix."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return explanation.decode() if isinstance(explanation, bytes) else str(explanation)
    return str(exc)
