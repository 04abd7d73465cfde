"""The descriptor budget, on the real `logsidecar tail` under a lowered RLIMIT_NOFILE (prlimit).

Before the budget, with `--nofile=64:64` and 200 files, the opens past the limit failed with EMFILE
and 147 files were never read; RLIMIT_NOFILE was never raised. Now idle files are closed above the
budget and reopened by identity when they change: every line of every file arrives exactly once,
including files rotated while they were closed (found next to their path by inode and fingerprint).
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from logsidecar.tail.fd_budget import budget_for
from tests.support.helpers import append_lines, wait_for
from tests.support.tail_command import TailProcess

PRLIMIT = shutil.which("prlimit")
pytestmark = pytest.mark.skipif(PRLIMIT is None, reason="needs prlimit (util-linux)")

FILES = 200
LIMIT = 64
LINES_BEFORE = 20  # per file, written before the tail starts
ROUNDS = 3  # appends to every file while it runs
LINES_PER_ROUND = 5
ROTATED = 5  # files rotated (renamed away, a new one created) while closed
LINES_AFTER_ROTATION = 7  # written to the renamed file (a writer finishing), and to the new one


def last_budget_event(tail: TailProcess) -> dict[str, str]:
    """path -> the last of file_closed_idle / file_reopened said for it."""
    last: dict[str, str] = {}
    for entry in tail.events():
        if entry.get("event") in ("file_closed_idle", "file_reopened"):
            last[entry["path"]] = entry["event"]
    return last


@pytest.mark.parametrize("watch", ["inotify", "poll"])
def test_200_files_under_a_64_descriptor_limit_every_line_once(tmp_path: Path, watch: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    names = [f"f{i:03d}" for i in range(FILES)]
    expected: list[str] = []
    for name in names:
        lines = [f"{name} before {n}" for n in range(LINES_BEFORE)]
        append_lines(logs / f"{name}.log", lines)
        expected += lines
    tail = TailProcess(
        ["--format", "raw", "--watch", watch, str(logs / "*.log")],
        tmp_path / "state",
        tmp_path / "tail.stderr",
        command_prefix=[str(PRLIMIT), f"--nofile={LIMIT}:{LIMIT}"],
    ).start()
    try:
        wait_for(
            lambda: tail.count() >= len(expected), timeout=60, message=f"{len(expected)} lines written before"
        )
        # rotate files that are closed right now (their last budget event is a close)
        wait_for(
            lambda: sum(e == "file_closed_idle" for e in last_budget_event(tail).values()) >= ROTATED,
            timeout=30,
            message="idle files closed",
        )
        closed = sorted(p for p, e in last_budget_event(tail).items() if e == "file_closed_idle")[:ROTATED]
        for path in map(Path, closed):
            name = path.stem
            rotated = path.with_name(path.name + ".1")
            path.rename(rotated)
            lines = [f"{name} after-rotation-old {n}" for n in range(LINES_AFTER_ROTATION)]
            append_lines(rotated, lines)
            new_lines = [f"{name} after-rotation-new {n}" for n in range(LINES_AFTER_ROTATION)]
            append_lines(path, new_lines)
            expected += lines + new_lines
        for round_ in range(ROUNDS):
            for name in names:
                lines = [f"{name} during {round_} {n}" for n in range(LINES_PER_ROUND)]
                append_lines(logs / f"{name}.log", lines)
                expected += lines
            time.sleep(0.3)
        wait_for(lambda: tail.count() >= len(expected), timeout=60, message=f"{len(expected)} lines in all")
        time.sleep(1.0)  # duplicates, if any, would come now
    finally:
        code, _ = tail.terminate()
    assert code == 0, tail.stderr_text()
    got = Counter(tail.bodies())
    missing = set(expected) - set(got)
    duplicated = {body: n for body, n in got.items() if n > 1}
    assert not missing, f"{len(missing)} lines missing, e.g. {sorted(missing)[:5]}"
    assert not duplicated, f"{len(duplicated)} lines duplicated, e.g. {list(duplicated.items())[:5]}"
    assert sum(got.values()) == len(expected)

    (limits,) = tail.events("fd_limits")
    assert limits["soft_limit"] == LIMIT and limits["hard_limit"] == LIMIT
    assert limits["followed_files_budget"] == budget_for(LIMIT) < FILES
    assert tail.events("file_closed_idle") and tail.events("file_reopened")
    rotated_found = {
        e["previous_path"] for e in tail.events("file_reopened") if e.get("rotated_while_closed")
    }
    assert rotated_found == set(closed)
    assert not tail.events("file_lost_while_closed")
    assert not [e for e in tail.events("file_error") if "Too many open files" in str(e)]


def test_soft_limit_is_raised_to_the_hard_limit_at_start(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    append_lines(log, ["one line"])
    soft, hard = 64, min(os.sysconf("SC_OPEN_MAX"), 4096)
    tail = TailProcess(
        ["--format", "raw", str(log)],
        tmp_path / "state",
        tmp_path / "tail.stderr",
        command_prefix=[str(PRLIMIT), f"--nofile={soft}:{hard}"],
    ).start()
    try:
        wait_for(lambda: tail.count() >= 1, timeout=30, message="the line")
        assert tail.process is not None
        limits_text = Path(f"/proc/{tail.process.pid}/limits").read_text()
        (row,) = [line for line in limits_text.splitlines() if line.startswith("Max open files")]
    finally:
        code, _ = tail.terminate()
    assert code == 0, tail.stderr_text()
    (limits,) = tail.events("fd_limits")
    assert (limits["soft_limit_before"], limits["soft_limit"], limits["hard_limit"]) == (soft, hard, hard)
    assert limits["followed_files_budget"] == budget_for(hard)
    assert row.split()[3:5] == [str(hard), str(hard)]  # the kernel's view of the running process
