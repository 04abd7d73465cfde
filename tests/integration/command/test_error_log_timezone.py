"""`parse` and `tail` read error-log times (written without a zone) in the same default zone, the
machine's local one (TZ, else /etc/localtime), as the README says. Both commands run as real
processes on the same line, in a zone that is neither UTC nor the machine's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.support.otlp_receiver import wait_for
from tests.support.paths import REPO_ROOT
from tests.support.tail_command import TailProcess

ERROR_LINE = (
    "[Sat Nov 28 02:09:07.632088 2026] [core:info] [pid 12682:tid 12692] [client 127.0.0.1:43346] "
    "AH00128: File does not exist: /var/www/html/nope"
)
ZONE = "America/New_York"  # -05:00 in November
EXPECTED = "2026-11-28T02:09:07.632088-05:00"


def test_parse_and_tail_read_error_log_times_in_the_same_local_zone(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    log.write_text(ERROR_LINE + "\n")
    env = {**os.environ, "TZ": ZONE, "PYTHONPATH": str(REPO_ROOT)}

    parsed = subprocess.run(
        [sys.executable, "-m", "logsidecar", "parse", "--format", "error", str(log)],
        capture_output=True, env=env, cwd=REPO_ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert parsed.returncode == 0, parsed.stderr
    [from_parse] = [orjson.loads(line) for line in parsed.stdout.splitlines()]

    tail = TailProcess(
        ["--format", "error", str(log)], tmp_path / "state", tmp_path / "tail.stderr", env={"TZ": ZONE}
    ).start()
    try:
        wait_for(lambda: tail.count() >= 1, timeout=30, what="the error line from tail")
    finally:
        tail.terminate(timeout=30)
    [from_tail] = tail.snapshot()

    assert (from_parse["timestamp"], from_tail.record["timestamp"]) == (EXPECTED, EXPECTED)
