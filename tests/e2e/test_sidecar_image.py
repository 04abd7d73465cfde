"""The logsidecar image's runtime contract, checked on a real engine: non-root, exec-form entrypoint,
declared state volume, graceful stop on SIGTERM, works with a read-only root filesystem and a read-only
log volume, configured through LOGSIDECAR_* environment variables."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.support.helpers import wait_for

# Generous: the first test to run may pay for building the images (see test_compose_demo.py).
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]

IMAGE = "logsidecar/logsidecar:local"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=check)


def test_image_declares_non_root_user_state_volume_and_exec_entrypoint(demo_images: None) -> None:
    config = json.loads(docker("image", "inspect", "-f", "{{json .Config}}", IMAGE).stdout)
    assert config["User"] == "logsidecar"
    assert config["Entrypoint"] == ["logsidecar"]
    assert config["Cmd"] == ["tail"]
    assert "LOGSIDECAR_DEFAULT_PATHS=/var/log/apache2/*.log" in config["Env"]
    assert "LOGSIDECAR_HTTP_ADDR=127.0.0.1:9464" in config["Env"]
    assert config["StopSignal"] == "SIGTERM"
    assert list(config["Volumes"]) == ["/var/lib/logsidecar"]
    assert "LOGSIDECAR_STATE_DIR=/var/lib/logsidecar" in config["Env"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    ids = docker("run", "--rm", "--entrypoint", "id", IMAGE).stdout.split()
    assert ids[0] == "uid=10001(logsidecar)"
    assert "4(adm)" in ids[2]  # reads Debian's root:adm 0640 Apache logs


def test_read_only_container_follows_a_read_only_log_volume_and_stops_cleanly_on_sigterm(
    demo_images: None,
) -> None:
    name = f"lse2e-image-{uuid.uuid4().hex[:6]}"
    logs = f"{name}-logs"
    line = '127.0.0.1 - - [28/Nov/2026:02:00:00 +0000] "GET /image-test HTTP/1.1" 200 5 "-" "e2e"'
    docker("volume", "create", logs)
    try:
        # Apache's side of the volume: root:adm, 0640, as Debian's apache2 writes it.
        docker(
            "run", "--rm", "--user", "0", "-v", f"{logs}:/var/log/apache2", "--entrypoint", "sh", IMAGE, "-c",
            f"printf '%s\\n' '{line}' > /var/log/apache2/access.log && chown root:adm /var/log/apache2/access.log"
            " && chmod 0640 /var/log/apache2/access.log",
        )  # fmt: skip
        docker(
            "run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL",
            "-v", f"{logs}:/var/log/apache2:ro",
            "-e", "LOGSIDECAR_OUTPUT=stdout", "-e", "LOGSIDECAR_STDOUT_FORMAT=json", "-e", "LOGSIDECAR_FORMAT=combined",
            IMAGE,
        )  # fmt: skip

        def stdout_records() -> list[dict]:
            out = docker("logs", name).stdout.splitlines()
            return [json.loads(x) for x in out if x.startswith("{") and '"body"' in x]

        records = wait_for(
            stdout_records, timeout=60, interval=0.2, message="the record on the sidecar's stdout"
        )
        assert [r["attributes"]["url.path"] for r in records] == ["/image-test"]
        assert records[0]["body"] == line
        # The HEALTHCHECK asks the sidecar's own /readyz (on by default, container loopback only).
        health = wait_for(
            lambda: (
                (json.loads(docker("inspect", "-f", "{{json .State.Health}}", name).stdout) or {}).get(
                    "Status"
                )
                == "healthy"
                and json.loads(docker("inspect", "-f", "{{json .State.Health}}", name).stdout)
            ),
            timeout=60,
            interval=1,
            message="the container's HEALTHCHECK to report healthy",
        )
        assert health["Log"][-1]["ExitCode"] == 0
        assert health["Log"][-1]["Output"].startswith("ready: following ")

        docker("stop", "-t", "20", name)
        state = json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout)
        # 0, not 137: the process handled SIGTERM itself rather than being killed at the deadline.
        assert (state["ExitCode"], state["OOMKilled"]) == (0, False)
        assert '"event":"stopped"' in docker("logs", name).stderr
    finally:
        docker("rm", "-f", "-v", name, check=False)
        docker("volume", "rm", "-f", logs, check=False)
