"""A state directory that cannot be used: `tail` refuses to start with the path and the fix, and one
that stops being writable while it runs makes /healthz fail (and a metric say so) until a checkpoint
is written again. `--state-dir none` runs without checkpoints, said at warning level.

Real faults, made as root can meet them (root ignores file modes): a regular file where a directory
of the path should be (ENOTDIR), a read-only bind mount (EROFS), and a real full filesystem (a small
tmpfs filled up: ENOSPC). The mounts need CAP_SYS_ADMIN; without it those cases are skipped. A
non-root user cannot run the tests' interpreter here (its installation is private to root), so the
EACCES case is not run; it takes the same path as EROFS (an OSError from mkdir/open, with its path).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http_probe import http_json, metric_value
from tests.support.otlp_receiver import free_port, wait_for
from tests.support.paths import REPO_ROOT
from tests.support.tail_command import TailProcess


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip()}): needs root with CAP_SYS_ADMIN")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "read-only"
    target.mkdir()
    _mount("--bind", str(target), str(target))
    try:
        _mount("-o", "remount,bind,ro", str(target))
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "small"
    target.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(target))
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False)


def _start(tmp_path: Path, state_dir: str) -> subprocess.CompletedProcess[str]:
    log = tmp_path / "access.log"
    log.write_text("one line\n")
    return subprocess.run(
        [sys.executable, "-m", "logsidecar", "tail", "--format", "raw", "--state-dir", state_dir, str(log)],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip


@pytest.mark.parametrize("fault", ["file-in-the-path", "read-only-mount"])
def test_an_unusable_state_dir_stops_tail_with_the_path_and_the_fix(
    tmp_path: Path, fault: str, request: pytest.FixtureRequest
) -> None:
    if fault == "file-in-the-path":
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("")
        state_dir, why = blocker / "state", "Not a directory"
    else:
        state_dir, why = request.getfixturevalue("read_only_dir") / "state", "Read-only file system"
    result = _start(tmp_path, str(state_dir))
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""  # nothing was forwarded: no run without checkpoints unless asked
    [message] = result.stderr.splitlines()
    assert message.startswith(f"Error: cannot keep checkpoints in {state_dir}: {why}"), message
    assert "--state-dir DIR" in message and "--state-dir none" in message
    assert "Errno" not in message and "Error(" not in message and "Traceback" not in result.stderr


def test_a_state_dir_that_fills_up_makes_healthz_fail_until_a_checkpoint_is_written(
    tmp_path: Path, small_fs: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "first.log").write_text("before\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    condition = 'logsidecar_health_condition{condition="checkpoints"}'
    tail = TailProcess(
        ["--format", "raw", "--http-addr", f"127.0.0.1:{port}", str(logs / "*.log")],
        small_fs / "state", tmp_path / "tail.stderr",
    ).start()  # fmt: skip
    filler = small_fs / "filler"
    new_files = 400  # ~100 bytes of checkpoint each: the database and its WAL must grow by pages
    try:
        wait_for(lambda: tail.count() >= 1 and tail.events("checkpoint_written"), 30, what="a checkpoint")
        wait_for(lambda: http_json(base + "/healthz")[0] == 200, 30, what="healthy at first")
        assert metric_value(base, condition) == 0

        with filler.open("wb") as handle:  # the filesystem is full: every new block is refused
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        for n in range(new_files):
            (logs / f"new-{n:03d}.log").write_text(f"while full {n}\n")
        wait_for(lambda: tail.events("checkpoint_error"), 30, what="the checkpoint failure reported")
        status, verdict = wait_for(
            lambda: (answer := http_json(base + "/healthz"))[0] == 503 and answer, 30, what="/healthz 503"
        )
        assert any(
            r.startswith(f"checkpoints: cannot write {small_fs / 'state'}") for r in verdict["reasons"]
        )
        assert http_json(base + "/readyz")[0] == 200  # the records still flow: not a reason to route away
        assert metric_value(base, condition) == 1
        assert (metric_value(base, "logsidecar_checkpoint_errors_total") or 0) >= 1
        wait_for(
            lambda: tail.count() >= 1 + new_files, 30, what="every line delivered while the disk is full"
        )

        filler.unlink()  # space again: the next checkpoint is written, health comes back
        (logs / "after.log").write_text("after\n")
        wait_for(lambda: http_json(base + "/healthz")[0] == 200, 30, what="/healthz 200 again")
        assert metric_value(base, condition) == 0
    finally:
        code, _ = tail.terminate(timeout=30)
    assert code == 0, tail.stderr_text()
    [error] = tail.events("checkpoint_error")
    assert error["failing"] is True and "--state-dir DIR" in error["fix"], error
    assert "Errno" not in error["error"], error


def test_state_dir_none_runs_without_checkpoints_and_says_so_at_warning_level(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("one line\n")
    tail = TailProcess(["--format", "raw", str(log)], Path("none"), tmp_path / "none.stderr").start()
    try:
        wait_for(lambda: tail.count() >= 1, 30, what="the line")
    finally:
        code, _ = tail.terminate(timeout=30)
    assert code == 0
    [off] = tail.events("checkpoints_off")
    assert off["level"] == "warning" and "--state-dir none" in off["reason"]
    assert not Path(REPO_ROOT / "none").exists()
