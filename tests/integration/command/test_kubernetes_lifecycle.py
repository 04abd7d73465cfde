"""What a Pod needs from `logsidecar tail`, with real processes and a real OTLP receiver (the gRPC
witness of `otlp_receiver`), no test doubles:

- `--exit-when-exists`: a classic sidecar of a Job exits by itself once the app says it stopped, after
  reading every followed file to its end (exactly once, by sequence number), and commits: a restart on
  the same state directory sends nothing again.
- The three probes over real HTTP: /livez and /readyz stay 200 while the collector is down, /healthz
  turns 503; /livez fails only when the process does not answer (stopped with SIGSTOP);
  `logsidecar health --probe` exits accordingly.
- The Downward API variables become k8s.* on every record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from logsidecar.pipeline import SINK_CLOSE_GRACE_S
from logsidecar.service.exit_marker import POLL_S
from tests.support.helpers import wait_for
from tests.support.http_probe import http_json
from tests.support.otlp_receiver import GrpcWitness, free_port
from tests.support.paths import REPO_ROOT
from tests.support.tail_command import WriterProcess, body_seq, start_tail

DOWNWARD_API = {
    "K8S_POD_NAME": "web-0",
    "K8S_NAMESPACE_NAME": "shop",
    "K8S_POD_UID": "6f1c2a7e-0d4b-4f0e-9a53-7c1b2d3e4f50",
    "K8S_NODE_NAME": "node-1",
    "K8S_CONTAINER_NAME": "logsidecar",
}
K8S_RESOURCE = {
    "k8s.pod.name": "web-0",
    "k8s.namespace.name": "shop",
    "k8s.pod.uid": "6f1c2a7e-0d4b-4f0e-9a53-7c1b2d3e4f50",
    "k8s.node.name": "node-1",
    "k8s.container.name": "logsidecar",
}
DRAIN_TIMEOUT_S = 8.0  # the default --drain-timeout


def health_command(port: int, *args: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "logsidecar", "health", "--url", f"http://127.0.0.1:{port}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    return result.returncode, result.stdout.strip()


def test_exit_when_exists_reads_every_file_to_its_end_delivers_commits_and_exits_0(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    marker = logs / ".app-stopped"
    early = WriterProcess(logs / "access.log", lines_per_s=2000, total=1000).start()
    process = start_tail(
        tmp_path, "--format", "raw", "--exit-when-exists", str(marker), str(logs / "*.log"), env=DOWNWARD_API
    )
    try:
        assert early.wait() == 1000
        wait_for(lambda: process.count() >= 1000, 30, message="the first 1000 lines")
        time.sleep(3 * POLL_S)  # several checks of the marker: without it, nothing ends the run
        assert process.process is not None and process.process.poll() is None
        # The app's last burst, into a second file, written as fast as it can; the marker right after
        # it: the sidecar is behind when it learns the app stopped.
        last = WriterProcess(logs / "error.log", lines_per_s=1e9, total=100_000).start()
        assert last.wait() == 100_000
        marker.touch()
        touched_at = time.monotonic()
        code = process.process.wait(POLL_S + DRAIN_TIMEOUT_S + SINK_CLOSE_GRACE_S + 5)
        exited_after = time.monotonic() - touched_at
        process._finish()
    finally:
        if process.process is not None and process.process.poll() is None:
            process.terminate()
    print(f"exit {code} {exited_after:.2f} s after the marker; {process.count()} records")
    assert code == 0
    per_file = Counter(
        (r.record["attributes"]["log.file.name"], body_seq(r.body)) for r in process.snapshot()
    )
    assert set(per_file) == {("access.log", n) for n in range(1000)} | {
        ("error.log", n) for n in range(100_000)
    }
    assert set(per_file.values()) == {1}  # exactly once
    for received in process.snapshot():
        assert K8S_RESOURCE.items() <= received.record["resource"].items()
    found = process.events("exit_marker_found")
    assert [(e["level"], e["path"]) for e in found] == [("info", str(marker))]
    assert process.events("stopped")[-1]["drained"] is True

    # Committed: the same sidecar started again (e.g. restarted after the app finished) finds the
    # marker at once, reads nothing again and exits 0.
    again = start_tail(tmp_path, "--format", "raw", "--exit-when-exists", str(marker), str(logs / "*.log"))
    assert again.process is not None
    assert again.process.wait(30) == 0
    again._finish()
    assert again.count() == 0


def test_an_exit_marker_present_at_start_drains_what_is_there_and_exits_0(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_text("".join(f"w {n:08d} line\n" for n in range(5000)))
    (logs / ".app-stopped").touch()
    process = start_tail(
        tmp_path, "--format", "raw", "--exit-when-exists", str(logs / ".app-stopped"), str(logs / "*.log")
    )
    assert process.process is not None
    assert process.process.wait(POLL_S + DRAIN_TIMEOUT_S + SINK_CLOSE_GRACE_S + 5) == 0
    process._finish()
    assert sorted(body_seq(body) for body in process.bodies()) == list(range(5000))


def test_a_reload_that_sets_exit_when_exists_takes_effect(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_text("".join(f"w {n:08d} line\n" for n in range(100)))
    marker = logs / ".app-stopped"
    marker.touch()
    config = tmp_path / "logsidecar.toml"
    config.write_text(f'[[inputs]]\npaths = ["{logs}/*.log"]\nformat = "raw"\n')
    process = start_tail(tmp_path, "--config", str(config))
    assert process.process is not None
    try:
        wait_for(lambda: process.count() >= 100, 30, message="the 100 lines")
        time.sleep(3 * POLL_S)  # the marker exists, but nobody asked to watch it
        assert process.process.poll() is None
        config.write_text(f'exit_when_exists = "{marker}"\n' + config.read_text())  # a top-level key
        process.process.send_signal(signal.SIGHUP)
        assert process.process.wait(POLL_S + DRAIN_TIMEOUT_S + SINK_CLOSE_GRACE_S + 5) == 0
        process._finish()
    finally:
        if process.process.poll() is None:
            process.terminate()
    assert [
        e["event"] for e in process.events() if e["event"] in ("config_reloaded", "exit_marker_found")
    ] == [
        "config_reloaded",
        "exit_marker_found",
    ]
    assert sorted(body_seq(body) for body in process.bodies()) == list(range(100))


def test_readyz_and_livez_stay_up_while_the_collector_is_down_and_healthz_goes_unhealthy(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    port = free_port()
    witness = GrpcWitness().start()
    process = start_tail(
        tmp_path,
        "--output", "otlp", "--otlp-endpoint", witness.endpoint, "--otlp-batch-timeout", "0.05",
        "--http-addr", f"127.0.0.1:{port}", "--unhealthy-after", "2s", "--format", "raw",
        str(logs / "*.log"),
        env=DOWNWARD_API,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    writer: WriterProcess | None = None
    try:
        # Started, following nothing yet (the app has not written its first line): alive, not ready.
        def answering() -> tuple[int, dict[str, object]] | None:
            try:
                return http_json(base + "/livez")
            except OSError:
                return None

        assert wait_for(answering, 30, message="/livez answering")[0] == 200
        status, body = http_json(base + "/readyz")
        assert status == 503 and "no file matches" in str(body["summary"]), body
        assert health_command(port, "--probe", "readyz")[0] == 1
        assert health_command(port, "--probe", "livez") == (0, "alive: event loop answered; running")

        writer = WriterProcess(logs / "access.log", lines_per_s=100, total=1_000_000, pad=20).start()
        wait_for(lambda: witness.record_count > 20, 30, message="records at the receiver")
        assert http_json(base + "/readyz")[0] == 200
        assert [health_command(port, "--probe", p)[0] for p in ("livez", "readyz", "healthz")] == [0, 0, 0]
        resources = {json.dumps(log.resource, sort_keys=True) for log in witness.logs()}
        assert len(resources) == 1
        assert {
            k: v[1] for k, v in witness.logs()[0].resource.items() if k.startswith("k8s.")
        } == K8S_RESOURCE

        witness.stop()  # the collector goes away; the app keeps writing
        stopped_at = time.monotonic()

        def unhealthy() -> dict[str, object] | None:
            status, body = http_json(base + "/healthz")
            return body if status == 503 else None

        body = wait_for(unhealthy, 30, 0.1, "/healthz 503")
        print(
            f"/healthz 503 {time.monotonic() - stopped_at:.2f} s after the collector stopped: {body['summary']}"
        )
        assert "sink 'otlp' failing for" in str(body["summary"])
        # The backend's state is /healthz's only: the Pod stays in its Service, nothing restarts it.
        assert http_json(base + "/readyz")[0] == 200
        assert http_json(base + "/livez")[0] == 200
        assert [health_command(port, "--probe", p)[0] for p in ("livez", "readyz", "healthz")] == [0, 0, 1]
        assert health_command(port, "--ready")[0] == 0
        assert health_command(port)[0] == 1  # the default probe is healthz

        witness.start()  # same port
        wait_for(lambda: http_json(base + "/healthz")[0] == 200, 40, 0.1, "/healthz 200 again")

        # A stuck event loop (here: the whole process stopped) answers nothing: the one state in
        # which a liveness probe fails, and in which a restart helps.
        assert process.process is not None
        os.kill(process.process.pid, signal.SIGSTOP)
        try:
            code, reason = health_command(port, "--probe", "livez", "--timeout", "1s")
        finally:
            os.kill(process.process.pid, signal.SIGCONT)
        assert (code, reason) == (1, f"unhealthy: cannot reach {base}/livez: timed out")
        assert health_command(port, "--probe", "livez")[0] == 0
    finally:
        if writer is not None and writer.running():
            writer.stop()
        code, _ = process.terminate()
        witness.stop()
    assert code == 0
