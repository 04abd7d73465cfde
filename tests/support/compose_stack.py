"""One compose demo stack (compose/<variant>.yml) driven through the real compose CLI, for e2e tests.

Responsibility: bring a variant up under its own project name with its own loopback ports, send real
HTTP requests to its Apache (published on 127.0.0.1 only), read what the collector received (the
otlp-witness behind rotel) and what the sidecar printed on stdout, operate the containers (exec,
recreate) and take it down with `down -v`, reporting which volumes it had.

Invariants: every request a test sends carries a unique `id=` query value, so tests count their own
records exactly and ignore everything else (Apache's own error-log lines, other tests' lines).
Works with `docker-compose` 1.29 and `docker compose` v2 (whichever is installed, v2 preferred).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.paths import REPO_ROOT

COMPOSE_DIR = REPO_ROOT / "compose"
VARIANTS = ("volumes-from", "named-volume", "bind-mount")


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 180) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


class ComposeStack:
    def __init__(self, variant: str, run_id: str, host_log_root: Path | None = None) -> None:
        self.variant = variant
        self.project = f"lse2e{run_id}{variant.replace('-', '')}"
        self.file = COMPOSE_DIR / f"{variant}.yml"
        self.apache_port = free_loopback_port()
        self.witness_port = free_loopback_port()
        self.host_log_dir = (host_log_root / variant / "apache2") if host_log_root else None
        self.env = dict(os.environ)
        self.env.update(
            APACHE_PORT=str(self.apache_port),
            WITNESS_PORT=str(self.witness_port),
            TRAFFIC_REQUESTS="0",  # the tests send their own, counted, requests
        )
        if self.host_log_dir is not None:
            self.env["HOST_LOG_DIR"] = str(self.host_log_dir)
        self._compose = [*compose_command(), "-f", str(self.file), "-p", self.project]
        self.is_down = False
        self.last_stop_exit_code: int | None = None
        self.last_stop_events = ""

    # -- lifecycle ----------------------------------------------------------------------------------

    def compose(self, *args: str, timeout: float = 180) -> str:
        return _run([*self._compose, *args], env=self.env, timeout=timeout)

    def up(self) -> None:
        self.compose("up", "-d", "--no-build")

    def down(self) -> list[str]:
        """`down -v`; returns the volumes the stack's containers had mounted (named and anonymous)."""
        volumes = self.mounted_volumes()
        self.compose("down", "-v", "--remove-orphans", "-t", "10")
        self.is_down = True
        return volumes

    def container_id(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    def mounted_volumes(self) -> list[str]:
        ids = _run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"]
        ).split()
        names: set[str] = set()
        for container_id in ids:
            mounts = json.loads(_run(["docker", "inspect", "-f", "{{json .Mounts}}", container_id]))
            names.update(m["Name"] for m in mounts if m.get("Type") == "volume")
        return sorted(names)

    def kill_and_start(self, service: str) -> None:
        """SIGKILL the service's container (no chance to flush or checkpoint), then start it again."""
        self.kill(service)
        self.start(service)

    def kill(self, service: str) -> None:
        """SIGKILL the service's container; returns once it is dead."""
        _run(["docker", "kill", self.container_id(service)])

    def start(self, service: str) -> None:
        self.compose("up", "-d", "--no-deps", "--no-build", service)

    def exec(self, service: str, *cmd: str) -> str:
        return _run(["docker", "exec", self.container_id(service), *cmd])

    def recreate(self, service: str) -> None:
        """Stop (SIGTERM, graceful), remove and start a fresh container for `service`; its named
        volumes (the sidecar's checkpoints) stay."""
        container_id = self.container_id(service)
        self.compose("stop", "-t", "10", service)
        # 0 when it stopped by itself on SIGTERM; 137 when Docker had to SIGKILL it at the deadline.
        self.last_stop_exit_code = int(_run(["docker", "inspect", "-f", "{{.State.ExitCode}}", container_id]))
        self.last_stop_events = "\n".join(
            subprocess.run(
                ["docker", "logs", container_id], capture_output=True, text=True, timeout=30
            ).stderr.splitlines()[-15:]
        )
        self.compose("rm", "-f", service)
        self.compose("up", "-d", "--no-deps", "--no-build", service)

    # -- traffic and observations -------------------------------------------------------------------

    def get(self, target: str) -> int:
        """One real HTTP GET to Apache through its loopback port; returns the status code."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.apache_port}{target}", timeout=5) as resp:
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def apache_answers(self) -> bool:
        try:
            return self.get("/server-status?auto") in (200, 403)
        except OSError:
            return False

    def witness_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.witness_port}/healthz", timeout=2):
                return True
        except OSError:
            return False

    def sidecar_following(self) -> bool:
        """The sidecar follows its files (so it is past start-up and handles SIGTERM)."""
        return '"event":"file_added"' in self.sidecar_events(last=200)

    def collector_records(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.witness_port}/records", timeout=10) as resp:
            return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]

    def sidecar_stdout_records(self) -> list[dict[str, Any]]:
        """The JSON-line records on the sidecar's stdout (its own event log goes to stderr)."""
        result = subprocess.run(
            ["docker", "logs", self.container_id("logsidecar")], capture_output=True, text=True, timeout=30
        )
        records = []
        for line in result.stdout.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "body" in record:
                records.append(record)
        return records

    def sidecar_events(self, last: int = 40) -> str:
        """The sidecar's own event log (stderr): where it resumed, checkpoints, rotations."""
        result = subprocess.run(
            ["docker", "logs", self.container_id("logsidecar")], capture_output=True, text=True, timeout=30
        )
        return "\n".join(result.stderr.splitlines()[-last:])


def ids_with_prefix(records: list[dict[str, Any]], prefix: str) -> Counter[str]:
    """Multiset of `id=` query values starting with `prefix` among access-log records."""
    found: Counter[str] = Counter()
    for record in records:
        query = str(record.get("attributes", {}).get("url.query", ""))
        for part in query.split("&"):
            if part.startswith("id=") and part[3:].startswith(prefix):
                found[part[3:]] += 1
    return found
