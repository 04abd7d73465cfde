"""`logsidecar tail -`: standard input as the source, with a real process on each end of a real pipe
(the shape of `docker logs -f web 2>&1 | logsidecar tail -`), a regular file redirected in, and
SIGTERM while the writer is still writing. No checkpoint: the state directory is never touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.helpers import wait_for
from tests.support.numbered_lines import access_line
from tests.support.paths import REPO_ROOT


def tail_stdin(state_dir: Path, stdin: Any, *args: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "logsidecar", "tail", "--stdout-format", "json", "--log-format", "json",
        "--state-dir", str(state_dir), *args, "-",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def records(stdout: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_a_pipe_is_read_to_eof_then_the_command_exits_0_with_everything_delivered(tmp_path: Path) -> None:
    lines = [access_line(n) for n in range(200)]
    # The writer: a separate process that writes in bursts with pauses and ends with a line
    # that has no newline (delivered at EOF), like a server killed mid-write.
    script = (
        "import sys, time\n"
        f"lines = {lines!r}\n"
        "for i in range(0, len(lines), 50):\n"
        "    sys.stdout.write(''.join(l + '\\n' for l in lines[i:i + 50])); sys.stdout.flush(); time.sleep(0.2)\n"
        "sys.stdout.write('last words without a newline'); sys.stdout.flush()\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    state_dir = tmp_path / "state"
    process = tail_stdin(state_dir, writer.stdout)
    assert writer.stdout is not None
    writer.stdout.close()  # the tail process holds the only read end
    out, err = process.communicate(timeout=60)
    assert writer.wait(10) == 0
    assert process.returncode == 0, err.decode()
    got = records(out)
    assert [r["body"] for r in got] == [*lines, "last words without a newline"]
    assert {(r["attributes"]["log.file.path"], r["attributes"]["logsidecar.format"]) for r in got[:-1]} == {
        ("-", "combined")
    }
    assert not state_dir.exists()  # no checkpoint for a pipe: nothing written, nothing created
    stopped = [json.loads(line) for line in err.splitlines() if b'"stopped"' in line][-1]
    assert (stopped["drained"], stopped["lines_in"]) == (True, len(lines) + 1)


def test_a_regular_file_redirected_in_is_read_whole(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    lines = [access_line(n) for n in range(5000)]
    log.write_text("".join(line + "\n" for line in lines))
    with log.open("rb") as handle:
        process = tail_stdin(tmp_path / "state", handle, "--format", "combined")
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    assert [r["body"] for r in records(out)] == lines


def test_sigterm_while_the_writer_still_writes_delivers_what_was_read_and_exits_0(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    process = tail_stdin(tmp_path / "state", read_end)
    os.close(read_end)
    lines = [access_line(n) for n in range(30)]
    os.write(write_end, "".join(line + "\n" for line in lines).encode())
    assert process.stdout is not None
    received: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(received) < len(lines) and time.monotonic() < deadline:
        received.append(process.stdout.readline())
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    out, err = process.communicate(timeout=30)
    took = time.monotonic() - started
    os.close(write_end)  # the writer is still there: the stop did not wait for its EOF
    assert process.returncode == 0, err.decode()
    assert [json.loads(line)["body"] for line in received] == lines
    assert out == b""
    assert took < 8, took  # within --drain-timeout (8 s): a pipe with no EOF is not waited for


def test_stdin_cannot_be_mixed_with_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "logsidecar", "tail", "-", str(tmp_path / "access.log")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "'-' (standard input) cannot be combined with files" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_label_standard_input_as_its_own_input(tmp_path: Path) -> None:
    from tests.support.http_probe import scrape
    from tests.support.otlp_receiver import free_port

    read_end, write_end = os.pipe()
    port = free_port()
    process = tail_stdin(tmp_path / "state", read_end, "--http-addr", f"127.0.0.1:{port}")
    os.close(read_end)
    try:
        os.write(write_end, "".join(access_line(n) + "\n" for n in range(7)).encode())
        key = ("logsidecar_lines_read_total", (("input", "-"),))
        wait_for(
            lambda: _safe_scrape(scrape, port).get(key) == 7, 30, message="7 lines counted under input=-"
        )
    finally:
        os.close(write_end)
        process.communicate(timeout=30)
    assert process.returncode == 0


def _safe_scrape(scrape: Any, port: int) -> dict[Any, float]:
    try:
        return scrape(port)
    except OSError:
        return {}
