"""Nothing is kept per file once the tailer releases it (issue 13, finding 11): a real
`logsidecar tail --http-addr` child follows a glob in which files are created, written 3 lines and
deleted, each under a new name. Afterwards /metrics holds no series for them, every followed file was
released, and RSS grew by at most the garbage one collection period may leave pending
(`COLLECT_AFTER_FORGOTTEN` parsers), not by anything proportional to the number of files."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path

from logsidecar.fastpath import JSON_LINES, writer_for
from logsidecar.parse import build_parser
from logsidecar.pipeline.parsing import COLLECT_AFTER_FORGOTTEN
from tests.support.helpers import wait_for

LINE = b'127.0.0.1 - - [05/Dec/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 12\n'
FILES_PER_ROUND = 2000
RATE = 400.0  # files per second
SETTLE_S = 7.0  # a deleted file is released once drained and idle for ROTATED_IDLE_RELEASE_S (5 s)


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _parser_bytes() -> int:
    """What one file's parser costs (with its stdout fast-path writer), measured here."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        parser = build_parser("common")
        writer_for(parser, JSON_LINES)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def _churn(logs: Path, prefix: str) -> None:
    start = time.monotonic()
    for i in range(FILES_PER_ROUND):
        path = logs / f"{prefix}-{i:06d}.log"
        path.write_bytes(LINE * 3)
        time.sleep(max(0.0, start + (i + 1) / RATE - time.monotonic()))
        path.unlink()


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        return str(answer.read().decode())


def _serving(port: int) -> bool:
    try:
        return "logsidecar_files_watched" in _metrics(port)
    except OSError:
        return False


def test_released_files_leave_no_series_and_no_growing_residue(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    selflog = tmp_path / "selflog.jsonl"
    with selflog.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "logsidecar", "tail", "--state-dir", str(tmp_path / "state"),
             "--http-addr", f"127.0.0.1:{port}", "-f", "common", str(logs / "*.log")],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )  # fmt: skip
    try:
        wait_for(lambda: _serving(port), timeout=30)
        _churn(logs, "warm")  # the working set: imports, caches, dict capacities
        time.sleep(SETTLE_S)
        followed_warm = selflog.read_text().count('"event":"file_added"')
        before = _rss_bytes(child.pid)
        _churn(logs, "measured")
        time.sleep(SETTLE_S)
        growth = _rss_bytes(child.pid) - before
        body = _metrics(port)
    finally:
        child.terminate()
        child.wait(timeout=30)
    log = selflog.read_text()
    followed = log.count('"event":"file_added"')
    assert followed == log.count('"event":"file_drained"'), "every followed file is released"
    # no series per file: the only ones naming the directory are labelled by the configured pattern
    pattern_label = f'input="{logs / "*.log"}"'
    assert [line for line in body.splitlines() if str(logs) in line and pattern_label not in line] == []
    # Kept per released file: nothing (series removed, parser forgotten, checkpoint row forgotten);
    # at most COLLECT_AFTER_FORGOTTEN parsers' cyclic garbage waits for the next full collection.
    parser_bytes = _parser_bytes()
    bound = COLLECT_AFTER_FORGOTTEN * parser_bytes
    measured_files = followed - followed_warm
    assert measured_files * parser_bytes > 2 * bound, "too few files followed for the bound to tell"
    assert growth <= bound, f"RSS grew {growth} B after {measured_files} released files (bound {bound} B)"
