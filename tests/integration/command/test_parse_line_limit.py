"""`logsidecar parse --max-line-bytes` (issue 13, finding 11): a file without any newline is read in
bounded chunks, its one line cut at --max-line-bytes and flagged `logsidecar.truncated`, as `tail`
does. Before, the whole line was joined in memory (a 500 MB line took 2.6 GB).

Peak RSS is measured in a real child process (`resource.getrusage(RUSAGE_CHILDREN)` in a wrapper,
so each measurement is one process). The bound is a design bound: the same command on a file whose
one line is exactly --max-line-bytes long (same record out, same imports), plus what the framing may
hold at once: the read chunk, the chunk's unfinished tail split off it, and the pending line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from logsidecar.cli.parse import READ_CHUNK_BYTES

MAX_LINE_BYTES = 64 * 1024
HOSTILE_BYTES = 50 * 1000 * 1000
# Held at once while framing a line without newline: the chunk, its unfinished part (a copy made by
# the split), and the pending line (at most MAX_LINE_BYTES) with its copy when it is emitted.
FRAMING_BYTES = 2 * READ_CHUNK_BYTES + 2 * MAX_LINE_BYTES


def peak_rss_bytes(path: Path) -> int:
    """Peak RSS of `logsidecar parse --format raw --max-line-bytes MAX_LINE_BYTES path`."""
    command = [sys.executable, "-m", "logsidecar", "parse", "--format", "raw"]
    command += ["--max-line-bytes", str(MAX_LINE_BYTES), str(path)]
    wrapper = "import resource, subprocess, sys\n"
    wrapper += "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    wrapper += "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, timeout=300, env=_env()
    )
    code, max_rss_kib = result.stdout.split()
    assert code == "0", result.stderr
    return int(max_rss_kib) * 1024


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def test_a_line_without_newline_is_cut_at_max_line_bytes_and_flagged(tmp_path: Path) -> None:
    hostile = tmp_path / "no-newline.log"
    with hostile.open("wb") as out:
        for _ in range(HOSTILE_BYTES // READ_CHUNK_BYTES):
            out.write(b"x" * READ_CHUNK_BYTES)
        out.write(b"x" * (HOSTILE_BYTES % READ_CHUNK_BYTES))
    result = subprocess.run(
        [sys.executable, "-m", "logsidecar", "parse", "--format", "raw"]
        + ["--max-line-bytes", str(MAX_LINE_BYTES), str(hostile)],
        capture_output=True,
        timeout=300,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 1
    assert records[0]["body"] == "x" * MAX_LINE_BYTES
    assert records[0]["attributes"]["logsidecar.truncated"] is True
    assert b"1 truncated" in result.stderr


def test_peak_memory_is_bounded_by_max_line_bytes_not_by_the_line(tmp_path: Path) -> None:
    hostile = tmp_path / "no-newline.log"
    with hostile.open("wb") as out:
        for _ in range(HOSTILE_BYTES // READ_CHUNK_BYTES):
            out.write(b"x" * READ_CHUNK_BYTES)
    reference = tmp_path / "one-line.log"
    reference.write_bytes(b"x" * MAX_LINE_BYTES + b"\n")
    baseline = peak_rss_bytes(reference)
    peak = peak_rss_bytes(hostile)
    assert peak <= baseline + FRAMING_BYTES, (
        f"peak RSS {peak / 2**20:.1f} MiB on a {hostile.stat().st_size / 2**20:.0f} MiB line; "
        f"bound {(baseline + FRAMING_BYTES) / 2**20:.1f} MiB (one {MAX_LINE_BYTES}-byte line: "
        f"{baseline / 2**20:.1f} MiB)"
    )
