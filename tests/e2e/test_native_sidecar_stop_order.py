"""The native-sidecar stop order of a Kubernetes Pod, emulated on a real Docker engine: every line
the app wrote arrives exactly once, although the log volume is deleted right after the sidecar exits.

What a kubelet does when a Pod with a native sidecar (an init container with restartPolicy: Always)
is deleted, step by step here:
 1. The app container is stopped first: Apache (the demo image) gets its STOPSIGNAL (SIGWINCH, a
    graceful stop bounded by its GracefulShutdownTimeout) while wrk still sends it requests.
 2. Only once the app has exited does the sidecar get SIGTERM: it reads every file to its end,
    delivers and commits within --drain-timeout, and exits 0.
 3. The Pod's emptyDirs (the log volume and the checkpoint volume) are deleted: whatever was not
    delivered by then is lost for good.

The sidecar is frozen (`docker pause`) for the last seconds of the load and Apache's stop, and gets
its SIGTERM as it thaws (`docker stop` of a paused container): so the signal always finds a backlog
to drain, rather than depending on how far behind it happened to be.

Counted against the truth: the lines in the volume's files (read after the app stopped, before the
volume is removed) against the records a real OTLP/gRPC receiver (`otlp_receiver.GrpcWitness`) got,
by (file, body) multiset and by distinct `log.record.uid`. The Downward API variables are set as a
Pod spec would set them, and every record must carry them as k8s.* resource attributes.

Emulated, not tested: the kubelet's own timing (grace period accounting, SIGKILL at the deadline),
the Pod network namespace (the sidecar uses the host network to reach the receiver on loopback).
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from logsidecar.pipeline import SINK_CLOSE_GRACE_S
from tests.support.compose_stack import free_loopback_port
from tests.support.helpers import wait_for
from tests.support.otlp_receiver import GrpcWitness

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

SIDECAR_IMAGE = "logsidecar/logsidecar:local"
APACHE_IMAGE = "logsidecar/apache-demo:local"
DRAIN_TIMEOUT_S = 8.0  # the sidecar image's default --drain-timeout
APACHE_GRACEFUL_SHUTDOWN_S = 10  # GracefulShutdownTimeout in docker/apache/logsidecar-demo.conf
LOAD_S = 6  # wrk's duration; Apache is stopped while it runs
PAUSED_LOAD_S = 2  # of which the sidecar is frozen for the last seconds
DOWNWARD_API = {
    "K8S_POD_NAME": "web-5c7d8-x2x9q",
    "K8S_NAMESPACE_NAME": "shop",
    "K8S_POD_UID": "0e8c8f4a-2b1d-4c55-8d0e-3b7e9a1c2d44",
    "K8S_NODE_NAME": "node-a",
    "K8S_CONTAINER_NAME": "logsidecar",
}
K8S_RESOURCE = {
    "k8s.pod.name": "web-5c7d8-x2x9q",
    "k8s.namespace.name": "shop",
    "k8s.pod.uid": "0e8c8f4a-2b1d-4c55-8d0e-3b7e9a1c2d44",
    "k8s.node.name": "node-a",
    "k8s.container.name": "logsidecar",
}
# Each request carries a unique id (thread, counter): wrk's Lua keeps one state per thread, and
# `thread:set` gives each its number as the global `tid`.
WRK_SCRIPT = textwrap.dedent(
    """
    local counter, threads = 0, 0
    function setup(thread) threads = threads + 1; thread:set("tid", threads) end
    function request()
      counter = counter + 1
      return wrk.format("GET", "/index.html?id=pod-" .. tid .. "-" .. counter)
    end
    """
)


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result


class Pod:
    """The Pod's parts on Docker: two containers, two volumes (its emptyDirs), a receiver."""

    def __init__(self, run_id: str) -> None:
        suffix = f"{run_id}-{uuid.uuid4().hex[:4]}"
        self.app = f"lse2e-pod-apache-{suffix}"
        self.sidecar = f"lse2e-pod-sidecar-{suffix}"
        self.log_volume = f"lse2e-pod-logs-{suffix}"
        self.state_volume = f"lse2e-pod-state-{suffix}"
        self.apache_port = free_loopback_port()
        self.http_port = free_loopback_port()
        self.witness = GrpcWitness()

    def start(self) -> None:
        self.witness.start()
        for volume in (self.log_volume, self.state_volume):
            docker("volume", "create", volume)
        docker(
            "run", "-d", "--name", self.app, "-v", f"{self.log_volume}:/var/log/apache2",
            "-p", f"127.0.0.1:{self.apache_port}:80", APACHE_IMAGE,
        )  # fmt: skip
        environment = {
            **DOWNWARD_API,
            "LOGSIDECAR_OUTPUT": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.witness.endpoint,
            "LOGSIDECAR_HTTP_ADDR": f"127.0.0.1:{self.http_port}",
            "LOGSIDECAR_LOG_FORMAT": "json",
        }
        # As the restricted Pod Security profile runs it: read-only root, no capabilities.
        docker(
            "run", "-d", "--name", self.sidecar, "--init", "--network", "host", "--read-only",
            "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
            "-v", f"{self.log_volume}:/var/log/apache2:ro", "-v", f"{self.state_volume}:/var/lib/logsidecar",
            *(arg for key, value in environment.items() for arg in ("-e", f"{key}={value}")),
            SIDECAR_IMAGE,
        )  # fmt: skip

    def probe(self, name: str) -> tuple[int, str]:
        result = docker("exec", self.sidecar, "logsidecar", "health", "--probe", name, check=False)
        return result.returncode, result.stdout.strip()

    def volume_lines(self) -> Counter[tuple[str, str]]:
        """(file name, line) of every line in the log volume's files."""
        script = 'for f in /logs/*; do [ -f "$f" ] && sed "s|^|${f##*/}\\t|" "$f"; done'
        out = docker(
            "run", "--rm", "-v", f"{self.log_volume}:/logs:ro", "--entrypoint", "sh", APACHE_IMAGE, "-c", script
        ).stdout  # fmt: skip
        return Counter(tuple(line.split("\t", 1)) for line in out.splitlines())  # type: ignore[misc]

    def remove(self) -> None:
        for container in (self.app, self.sidecar):
            docker("rm", "-f", container, check=False)
        for volume in (self.log_volume, self.state_volume):
            docker("volume", "rm", "-f", volume, check=False)
        self.witness.stop()


@pytest.fixture
def pod(demo_images: None, e2e_run_id: str) -> Iterator[Pod]:
    pod = Pod(e2e_run_id)
    try:
        pod.start()
        yield pod
    finally:
        pod.remove()


def run_wrk(port: int, script: Path, duration_s: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            "16",
            "-d",
            f"{duration_s}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_app_stops_then_the_sidecar_drains_then_the_volume_goes_and_every_line_arrived_once(
    pod: Pod, tmp_path: Path, e2e_report
) -> None:
    started = wait_for(lambda: pod.probe("livez")[0] == 0, 60, 0.5, "the sidecar's /livez")
    assert started
    # Apache writes error.log at start: the sidecar follows a file, so it is ready.
    assert wait_for(lambda: pod.probe("readyz")[0] == 0 and pod.probe("readyz"), 60, 0.5, "/readyz")

    script = tmp_path / "ids.lua"
    script.write_text(WRK_SCRIPT)
    wrk = run_wrk(pod.apache_port, script, LOAD_S)
    time.sleep(LOAD_S - PAUSED_LOAD_S)
    docker("pause", pod.sidecar)
    time.sleep(PAUSED_LOAD_S / 2)
    # 1. The app stops first, under load.
    app_stop_started = time.monotonic()
    docker("stop", "-t", str(APACHE_GRACEFUL_SHUTDOWN_S + 5), pod.app, timeout=60)
    app_stop_s = time.monotonic() - app_stop_started
    app_state = json.loads(docker("inspect", "-f", "{{json .State}}", pod.app).stdout)
    wrk_output, _ = wrk.communicate(timeout=LOAD_S + 60)
    completed = re.search(r"(\d+) requests in", wrk_output)
    assert completed, wrk_output
    sent = int(completed.group(1))
    written = pod.volume_lines()  # the truth: what the app wrote, before anything is deleted
    access_lines = sum(n for (name, _), n in written.items() if name == "access.log")

    # 2. Then the sidecar: SIGTERM (as it thaws), it drains and exits by itself.
    received_before_sigterm = pod.witness.record_count
    sidecar_stop_started = time.monotonic()
    budget_s = DRAIN_TIMEOUT_S + SINK_CLOSE_GRACE_S
    docker("stop", "-t", str(int(budget_s) + 10), pod.sidecar, timeout=120)
    sidecar_stop_s = time.monotonic() - sidecar_stop_started
    sidecar_state = json.loads(docker("inspect", "-f", "{{json .State}}", pod.sidecar).stdout)
    last_lines = docker("logs", pod.sidecar).stderr.splitlines()[-3:]

    # 3. The Pod's volumes go.
    for container in (pod.app, pod.sidecar):
        docker("rm", container)
    for volume in (pod.log_volume, pod.state_volume):
        docker("volume", "rm", volume)

    logs = pod.witness.logs()
    received = Counter((log.attributes["log.file.name"][1], log.body) for log in logs)
    uids = Counter(log.attributes["log.record.uid"][1] for log in logs)
    duplicates = len(logs) - len(uids)
    summary = (
        f"wrk completed {sent} requests; access.log {access_lines} lines, all files {sum(written.values())} "
        f"lines; received {len(logs)} records, {len(uids)} distinct log.record.uid, {duplicates} duplicates; "
        f"{len(logs) - received_before_sigterm} of them delivered by the drain after SIGTERM; "
        f"app stop {app_stop_s:.2f} s, sidecar stop (drain) {sidecar_stop_s:.2f} s"
    )
    print(summary)
    e2e_report(
        "native-sidecar stop order (wrk lines in the volume)", sum(written.values()), len(logs), duplicates
    )

    assert app_state["ExitCode"] == 0 and app_stop_s < APACHE_GRACEFUL_SHUTDOWN_S + 5, (app_state, app_stop_s)
    # Every request wrk saw answered was logged (a request answered as the stop closed the connection
    # may be logged without wrk counting it: hence >=).
    assert access_lines >= sent > 0, summary
    assert (sidecar_state["ExitCode"], sidecar_state["OOMKilled"]) == (0, False), last_lines
    assert len(logs) > received_before_sigterm, summary  # the SIGTERM found a backlog to drain
    assert sidecar_stop_s < budget_s + 2, (sidecar_stop_s, last_lines)
    stopped = json.loads(last_lines[-1])
    assert (stopped["event"], stopped["drained"]) == ("stopped", True), stopped
    missing = written - received
    extra = received - written
    assert (sum(missing.values()), sum(extra.values()), duplicates) == (0, 0, 0), (summary, list(missing)[:3])
    for resource in {json.dumps({k: v[1] for k, v in log.resource.items()}, sort_keys=True) for log in logs}:
        assert K8S_RESOURCE.items() <= json.loads(resource).items()
