"""`logsidecar docker attach --engine-logs` against a real Docker engine: the demo Apache image
configured the way the official httpd image is (CustomLog to /proc/self/fd/1, ErrorLog to
/proc/self/fd/2), real requests over the bridge network, and the engine's own log API.

- every request's line is delivered once, with the engine's timestamp prefix removed;
- a second run resumes after the last delivered line: the requests made meanwhile, no repeat;
- the run ends (exit 0) when the container stops;
- a line with no time of its own (not Apache's) takes the engine's time of it, flagged; Apache's keep theirs;
- without --engine-logs, a non-interactive attach to a container with no log files names the option.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import wait_for

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
APACHE_IMAGE = "logsidecar/apache-demo:local"
# The official httpd image's logging, applied to the demo image: both logs to the server's stdio.
TO_STDOUT = (
    'sed -i "s#\\${APACHE_LOG_DIR}/access.log#/proc/self/fd/1#; s#\\${APACHE_LOG_DIR}/error.log#/proc/self/fd/2#"'
    " /etc/apache2/sites-available/000-default.conf /etc/apache2/apache2.conf && exec apache2-foreground"
)


@pytest.fixture
def stdout_apache(demo_images: None, e2e_run_id: str) -> Any:
    import docker

    client = docker.from_env(timeout=120)
    container = client.containers.run(
        APACHE_IMAGE,
        command=["sh", "-c", TO_STDOUT],
        name=f"logsidecar-e2e-stdout-{e2e_run_id}",
        detach=True,
        labels={"io.logsidecar.test-run": e2e_run_id},
    )
    try:
        container.reload()
        address = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
        wait_for(lambda: _get(f"http://{address}/ready") is not None, 30, message="apache answering")
        yield container, address
    finally:
        container.remove(force=True, v=True)


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def attach(state_dir: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "logsidecar", "docker", "attach", "--engine-logs", name,
        "--state-dir", str(state_dir), "--stdout-format", "json", "--log-format", "json",
        "--format", "combined", *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


class Reader:
    """The attach process's records, read as they come."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        import threading

        self.process = process
        self.records: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.records.append(json.loads(line))

    def requests(self) -> list[str]:
        return [r["attributes"]["url.path"] for r in self.records if "url.path" in r["attributes"]]


def request_paths(address: str, tag: str, count: int) -> list[str]:
    paths = [f"/{tag}/{n}" for n in range(count)]
    for path in paths:
        assert _get(f"http://{address}{path}") == 404
    return paths


def test_engine_logs_are_followed_resumed_after_the_last_delivered_line_and_end_with_the_container(
    stdout_apache: Any, tmp_path: Path
) -> None:
    container, address = stdout_apache
    state_dir = tmp_path / "state"
    first = request_paths(address, "first", 20)

    process = attach(state_dir, container.name)
    reader = Reader(process)
    try:
        # Apache writes a request's line after answering it: two requests in a row may be logged in
        # either order (by two threads), so lines are compared as sets, duplicates checked apart.
        wait_for(lambda: set(first) <= set(reader.requests()), 60, message="the first 20 requests")
        during = request_paths(address, "during", 10)
        wait_for(lambda: set(during) <= set(reader.requests()), 30, message="the 10 made while attached")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        reader.thread.join(10)
    assert process.returncode == 0, err.decode()[-2000:]
    first_run = reader.records
    assert sorted(p for p in reader.requests() if p != "/ready") == sorted([*first, *during])
    bodies = [r["body"] for r in first_run if "url.path" in r["attributes"]]
    assert all(b.startswith("172.") or b[0].isdigit() for b in bodies)  # no engine timestamp left in
    assert {r["attributes"]["logsidecar.format"] for r in first_run if "url.path" in r["attributes"]} == {
        "combined"
    }
    assert {r["resource"]["container.name"] for r in first_run} == {container.name}
    saved = json.loads((state_dir / "engine-logs" / f"{container.id}.json").read_text())
    assert saved["container"] == container.name

    # Not attached: these wait in the engine's log.
    between = request_paths(address, "between", 15)
    process = attach(state_dir, container.name)
    reader = Reader(process)
    try:
        wait_for(lambda: set(between) <= set(reader.requests()), 60, message="the 15 made while detached")
        time.sleep(1)  # anything repeated would arrive with them
        container.stop(timeout=10)  # SIGWINCH, Apache's graceful stop: the stream ends
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
        _, err = process.communicate(timeout=30)
        reader.thread.join(10)
    assert process.returncode == 0, err.decode()[-2000:]
    # Exactly what was made while detached: nothing from the first run again, nothing lost.
    assert sorted(reader.requests()) == sorted(between)
    # No line of the first run again, error-log lines included.
    assert not {r["body"] for r in reader.records} & {r["body"] for r in first_run}
    uids = [r["attributes"]["log.record.uid"] for r in [*first_run, *reader.records]]
    assert len(set(uids)) == len(uids)  # unique across the two runs


def engine_times(container: Any) -> dict[str, str]:
    """Each line of the container's log as the engine keeps it: {line: the engine's timestamp}."""
    timed = container.logs(stdout=True, stderr=True, timestamps=True).decode().splitlines()
    return {line.partition(" ")[2]: line.partition(" ")[0] for line in timed}


def test_a_line_without_a_time_of_its_own_takes_the_engines_flagged(
    stdout_apache: Any, tmp_path: Path
) -> None:
    container, address = stdout_apache
    requests = request_paths(address, "timed", 3)
    # A line that is not Apache's, written to the container's stdout (what a start script would echo).
    marker = f"not an apache line {time.time_ns()}"
    assert container.exec_run(["sh", "-c", f"echo '{marker}' > /proc/1/fd/1"]).exit_code == 0
    process = attach(tmp_path / "state", container.name)
    reader = Reader(process)
    try:
        wait_for(lambda: set(requests) <= set(reader.requests()), 60, message="the 3 requests")
        wait_for(lambda: any(r["body"] == marker for r in reader.records), 30, message="the echoed line")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        reader.thread.join(10)
    assert process.returncode == 0, err.decode()[-2000:]
    kept = engine_times(container)
    [echoed] = [r for r in reader.records if r["body"] == marker]
    # The engine's own time of the line (nanoseconds; a record holds microseconds), and where it came from.
    stamp = kept[marker]
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    assert echoed["timestamp"] == f"{whole}.{(fraction + '000000')[:6]}+00:00"
    assert echoed["attributes"]["logsidecar.timestamp_source"] == "engine"
    assert "logsidecar.parse_error" in echoed["attributes"]  # (not combined: kept whole, flagged)
    # Access lines keep their own %t, with no flag.
    access = [r for r in reader.records if r["attributes"].get("url.path") in requests]
    assert len(access) == 3
    for record in access:
        assert "logsidecar.timestamp_source" not in record["attributes"]
        written = record["body"].split("[", 1)[1].split("]", 1)[0]  # %t: [05/Dec/2026:16:10:55 +0000]
        own = datetime.strptime(written, "%d/%b/%Y:%H:%M:%S %z")
        assert datetime.fromisoformat(record["timestamp"]) == own
    # Every record has a time: its own, or the engine's, flagged.
    assert all(r["timestamp"] is not None for r in reader.records)
    flagged = [r["body"] for r in reader.records if "logsidecar.timestamp_source" in r["attributes"]]
    assert marker in flagged and not set(flagged) & {r["body"] for r in access}


def test_attach_without_log_files_names_engine_logs(stdout_apache: Any) -> None:
    container, _ = stdout_apache
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "logsidecar",
            "docker",
            "attach",
            container.name,
            "--path",
            "/srv/nologs/*.log",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1
    assert f"logsidecar docker attach --engine-logs {container.name}" in result.stderr
    assert "Traceback" not in result.stderr
