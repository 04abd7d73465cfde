"""Terminal injection (issue 13, finding 8): a request for `/\\x1b]0;PWNED\\x07` to a real Apache is
logged as `\\x1b]0;PWNED\\x07`; our parsers decode that back into a raw ESC and BEL. Pretty output,
`--dry-run` and the readable self-log must show it escaped, never send it to the terminal; and
NO_COLOR (https://no-color.org) turns colour off. Real processes: Apache, `logsidecar tail`, and a
pseudo-terminal where colour would otherwise be on.

Before: the raw OSC sequence reached stdout in all three outputs, and NO_COLOR was ignored.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.apache import ApacheServer, status_of
from tests.support.helpers import wait_for

HOSTILE_TARGET = b"/\x1b]0;PWNED\x07"
OSC = b"\x1b]"  # operating system command: sets the window title, and more on some terminals
ESCAPED = rb"\x1b]0;PWNED\x07"  # what the operator should read instead


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return {**base, "PYTHONPATH": os.pathsep.join(sys.path), **extra}


@pytest.fixture
def hostile_log(apache: ApacheServer, tmp_path: Path) -> Path:
    response = apache.request("GET", HOSTILE_TARGET)
    assert status_of(response) in (400, 404)
    log = tmp_path / "access.log"
    wait_for(lambda: b"PWNED" in log.read_bytes(), message="Apache logged the request")
    assert OSC not in log.read_bytes()  # Apache escapes it; we are the ones who decode it
    return log


def tail_until(args: list[str], stdout: Path, stderr: Path, needle: bytes, **extra_env: str) -> None:
    """Run `logsidecar tail ARGS` until `needle` is in its stdout, then stop it (SIGTERM)."""
    command = [sys.executable, "-m", "logsidecar", "tail", "--state-dir", "none", *args]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env(**extra_env))
    try:
        wait_for(lambda: needle in stdout.read_bytes(), timeout=30, message=f"{needle!r} on stdout")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def run_on_terminal(command: list[str], **extra_env: str) -> bytes:
    """Run `command` with stdout and stderr on a pseudo-terminal; everything it wrote."""
    master, slave = pty.openpty()
    process = subprocess.Popen(command, stdout=slave, stderr=slave, env=env(**extra_env))
    os.close(slave)
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=30)
    os.close(master)
    return output


@pytest.mark.parametrize("no_color", [None, "1"], ids=["colour", "NO_COLOR"])
def test_pretty_output_escapes_control_characters(
    hostile_log: Path, tmp_path: Path, no_color: str | None
) -> None:
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    extra = {} if no_color is None else {"NO_COLOR": no_color}
    args = ["--stdout-format", "pretty", "--format", "combined", "--start-at", "beginning", str(hostile_log)]
    tail_until(args, stdout, stderr, b"PWNED", **extra)
    out = stdout.read_bytes()
    assert OSC not in out and b"\x07" not in out
    assert ESCAPED in out
    if no_color:
        assert b"\x1b" not in out  # no colour either
    else:
        assert b"\x1b[" in out  # colour is still on without NO_COLOR


def test_dry_run_escapes_control_characters_and_honours_no_color(hostile_log: Path) -> None:
    command = [sys.executable, "-m", "logsidecar", "tail", "--dry-run", "--format", "combined"]
    command.append(str(hostile_log))
    coloured = run_on_terminal(command)
    plain = run_on_terminal(command, NO_COLOR="1")
    for output in (coloured, plain):
        assert b"PWNED" in output
        assert OSC not in output and b"\x07" not in output
        assert ESCAPED in output
    assert b"\x1b[" in coloured  # a terminal gets colour ...
    assert b"\x1b" not in plain  # ... unless NO_COLOR says otherwise


def test_text_self_log_escapes_control_characters(tmp_path: Path) -> None:
    # A file name is as hostile as a line: whoever writes the log volume chooses it.
    log = tmp_path / "access\x1b]0;PWNED\x07.log"
    log.write_bytes(b"hello\n")
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    args = ["--log-format", "text", "--format", "raw", "--start-at", "beginning", str(tmp_path / "*.log")]
    tail_until(args, stdout, stderr, b"hello")
    text = stderr.read_bytes()
    assert b"file_added" in text
    assert OSC not in text and b"\x07" not in text
    assert rb"access\x1b]0;PWNED\x07.log" in text
