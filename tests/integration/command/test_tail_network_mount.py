"""A network mount whose server stops answering, followed next to a file on a local filesystem.

The mount is a real FUSE filesystem (tests/support/stall_fs.py, libfuse 3 through mfusepy; the
`mount` fixture of this folder's conftest.py):
switched to "stall", its server blocks every stat, open and read until released, which is what a
hard NFS mount does when its server dies. The sidecar is the real `logsidecar tail` in a
subprocess. While the mount is stalled the local file must keep being delivered and /healthz must
answer; the stall must be said (a `file_stalled` event naming the path, and
logsidecar_io_stalls_total); once released, every line written to the mount, before and during the
stall, must arrive exactly once.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

from tests.support.helpers import append_lines, wait_for
from tests.support.http_probe import http_get
from tests.support.otlp_receiver import free_port
from tests.support.stall_mount import StallMount
from tests.support.tail_command import TailProcess


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_stalled_mount_holds_up_neither_other_files_nor_healthz_and_loses_nothing(
    tmp_path: Path, mount: StallMount
) -> None:
    local = tmp_path / "local" / "app.log"
    local.parent.mkdir()
    local.touch()
    port = free_port()
    tail = TailProcess(
        ["--format", "raw", "--http-addr", f"127.0.0.1:{port}", str(mount.path), str(local)],
        state_dir=tmp_path / "state",
        stderr_path=tmp_path / "tail.stderr",
    ).start()
    remote_lines = [f"remote {n:04d}" for n in range(200)]
    local_lines = [f"local {n:04d}" for n in range(200)]

    def delivered(prefix: str) -> list[str]:
        return [body for body in tail.bodies() if body.startswith(prefix)]

    try:
        # Both followed: the mount answers.
        for line in remote_lines[:100]:
            mount.command(f"append {line}")
        append_lines(local, local_lines[:100])
        wait_for(lambda: len(tail.bodies()) >= 200, 30, message="the first 100 lines of each file")

        # The server stops answering; both files keep being written.
        mount.command("stall")
        for line in remote_lines[100:]:
            mount.command(f"append {line}")
        append_lines(local, local_lines[100:])
        wait_for(
            lambda: len(delivered("local")) >= 200, 30, message="the local file's lines during the stall"
        )
        status, _ = http_get(f"http://127.0.0.1:{port}/healthz")
        _, metrics_text = http_get(f"http://127.0.0.1:{port}/metrics")
        remote_during_stall = len(delivered("remote"))
        blocked_calls = mount.command("count")
        stalled_events = tail.events("file_stalled")

        mount.command("release")
        wait_for(lambda: len(delivered("remote")) >= 200, 30, message="the mount's lines after the release")
        recovered = [e for e in tail.events("file_recovered") if e.get("kind") == "stalled"]
    finally:
        mount.command("release")  # a sidecar blocked on the mount could not even take SIGTERM
        code, _ = tail.terminate()

    assert code == 0
    # The stall was real: nothing written to the mount during it could be read...
    assert remote_during_stall == 100
    # ...and it held one of the sidecar's threads, not one per call: every call the server holds is
    # a thread stuck in the kernel, and after the first one the mount's calls are refused at once,
    # however many cycles passed (the tailer makes its calls one at a time).
    assert blocked_calls == 1
    # ...and was said, naming the path, with the metric.
    assert any(str(e.get("path", "")).startswith(str(mount.mountpoint)) for e in stalled_events), (
        stalled_events
    )
    assert metric(metrics_text, "logsidecar_io_stalls_total") >= 1
    assert status in (200, 503)
    assert any(str(e.get("path", "")).startswith(str(mount.mountpoint)) for e in recovered), recovered
    # Every line of both files, exactly once.
    counts = Counter(tail.bodies())
    assert sorted(counts) == sorted(remote_lines + local_lines)
    assert set(counts.values()) == {1}


def main_thread_exited(pid: int) -> bool:
    """The process's main thread has exited (a zombie thread), or the whole process has."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_a_stop_while_the_mount_is_stalled_finishes_and_the_next_run_resumes(
    tmp_path: Path, mount: StallMount
) -> None:
    """A call stuck on the dead server keeps its worker thread; a stop must still finish: checkpoints
    written, `stopped` said, the main thread gone (the workers are daemon threads and a close is not
    waited for). The process itself ends when the kernel lets its stuck threads go: on a hard NFS
    mount at the fatal signal of the exit, on FUSE (this test) only when the server answers a call it
    has received. The next run resumes from the acknowledged offset: the lines written during the
    stall arrive then, once."""
    remote_lines = [f"remote {n:04d}" for n in range(100)]
    for line in remote_lines[:50]:
        mount.command(f"append {line}")

    def run_tail() -> TailProcess:
        return TailProcess(
            ["--format", "raw", str(mount.path)],
            state_dir=tmp_path / "state",
            stderr_path=tmp_path / "tail.stderr",
        ).start()

    first = run_tail()
    assert first.process is not None
    try:
        wait_for(lambda: first.count() >= 50, 30, message="the first 50 lines")
        mount.command("stall")
        for line in remote_lines[50:]:
            mount.command(f"append {line}")
        wait_for(lambda: first.events("file_stalled"), 30, message="the stall said")
        first.process.send_signal(signal.SIGTERM)
        wait_for(lambda: main_thread_exited(first.process.pid), 30, message="the main thread gone")
        held = mount.command("count")
    finally:
        mount.command("release")
        code, _ = first.terminate()
    second = run_tail()
    try:
        wait_for(lambda: second.count() >= 50, 30, message="the lines written during the stall")
    finally:
        second_code, _ = second.terminate()
    assert held >= 1  # the main thread finished while the server still held a call
    assert first.events("stopped")
    assert (code, second_code) == (0, 0), first.stderr_text()
    assert first.bodies() == remote_lines[:50]
    assert second.bodies() == remote_lines[50:]
