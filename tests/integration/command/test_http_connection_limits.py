"""The HTTP endpoint under a flood of idle connections (issue 13, finding 11), on a real
`logsidecar tail --http-addr` process with a lowered RLIMIT_NOFILE.

Before: asyncio's accept loop logged a traceback for every accept that failed with EMFILE (3,000
idle connections: ~22,000 tracebacks in 10 s) and /healthz answered after 20-40 s. Now connections
are capped (the oldest one still waiting for its request is dropped for a new one), an accept that
runs out of descriptors is counted and reported at most once per ACCEPT_ERROR_REPORT_S, and a probe
never waits for an idle connection to time out: it is answered within IDLE_TIMEOUT_S.
"""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from logsidecar.service.http_endpoint import ACCEPT_ERROR_REPORT_S, IDLE_TIMEOUT_S, MAX_CONNECTIONS
from tests.support.helpers import wait_for

IDLE_CONNECTIONS = 3000


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Room in this test process for the idle sockets it opens."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE_CONNECTIONS + 256
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def start_serving(
    tmp_path: Path, preexec_fn: Callable[[], None] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """`logsidecar tail` of a one-line file with its HTTP endpoint on a free loopback port (said in
    its `started` event: `telemetry_url`); returns the process and the file of its JSON self-logs.
    `preexec_fn` runs in the child before it starts (a lowered RLIMIT_NOFILE)."""
    log = tmp_path / "access.log"
    log.write_text("hello\n")
    stderr = tmp_path / "stderr.jsonl"
    command = [sys.executable, "-m", "logsidecar", "tail", "--http-addr", "127.0.0.1:0"]
    command += ["--state-dir", "none", "--format", "raw", "--log-format", "json", str(log)]
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=preexec_fn,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    return process, stderr


def events_of(stderr: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stderr.read_bytes().splitlines() if line.startswith(b"{")]


def telemetry_url(stderr: Path) -> str | None:
    for event in events_of(stderr):
        if event.get("event") == "started" and event.get("component") == "telemetry":
            return str(event["url"])
    return None


def get(url: str, path: str, timeout: float) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "nofile",
    # 48: the descriptors run out before MAX_CONNECTIONS (the EMFILE path); 256: the cap holds first.
    [48, 256],
    ids=["fd-limit-below-cap", "cap-below-fd-limit"],
)
def test_idle_connection_flood_gives_no_traceback_and_health_still_answers(
    tmp_path: Path, many_descriptors: None, nofile: int
) -> None:
    def lower_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    process, stderr = start_serving(tmp_path, lower_fd_limit)
    sockets: list[socket.socket] = []
    try:
        url = wait_for(lambda: telemetry_url(stderr), timeout=30, message="the HTTP endpoint started")
        host, port = url.removeprefix("http://").rsplit(":", 1)
        flood_started = time.monotonic()
        for _ in range(IDLE_CONNECTIONS):
            idle = socket.socket()
            idle.setblocking(False)
            try:
                idle.connect((host, int(port)))
            except BlockingIOError:
                pass  # connecting; the kernel completes it (or retries the SYN) on its own
            sockets.append(idle)

        started = time.monotonic()
        status, body = get(url, "/healthz", timeout=IDLE_TIMEOUT_S)
        answered_in = time.monotonic() - started
        assert status == 200, body
        assert answered_in < IDLE_TIMEOUT_S

        status, body = get(url, "/metrics", timeout=IDLE_TIMEOUT_S)
        assert status == 200
        metrics = body.decode()
        assert 'logsidecar_http_connections_dropped_total{reason="over_limit"}' in metrics
        failures = next(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("logsidecar_http_accept_failures_total ")
        )
        if nofile < MAX_CONNECTIONS:
            assert failures >= 1  # the EMFILE path was taken, and counted
        flood_lasted = time.monotonic() - flood_started
    finally:
        for idle in sockets:
            idle.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    text = stderr.read_text()
    assert "Traceback" not in text
    assert process.returncode == 0, text[-2000:]
    reports = [e for e in events_of(stderr) if e.get("event") == "http_accept_failed"]
    # Reported at most once per ACCEPT_ERROR_REPORT_S, with the count since the last report.
    assert len(reports) <= 1 + flood_lasted // ACCEPT_ERROR_REPORT_S
    if nofile < MAX_CONNECTIONS:
        assert reports and reports[0]["reason"] == os.strerror(24)


def test_an_idle_connection_is_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    process, stderr = start_serving(tmp_path)
    try:
        url = wait_for(lambda: telemetry_url(stderr), timeout=30, message="the HTTP endpoint started")
        host, port = url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as idle:
            idle.settimeout(2 * IDLE_TIMEOUT_S)  # the server's deadline, and as much again of slack
            assert idle.recv(1) == b""  # closed by the server, without an answer
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert "Traceback" not in stderr.read_text()
