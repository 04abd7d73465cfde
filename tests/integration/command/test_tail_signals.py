"""`logsidecar tail` and the signals that end it: a second SIGTERM/SIGINT cuts the stop short at once,
SIGHUP without --config reloads nothing, and the terminal closing (a real pty hanging up) stops it.

Real parts only: the `logsidecar tail` process, real signals, a real pseudo-terminal (`pty.fork`)
whose master side is closed as a terminal window or an SSH session would be, and, for a stop that
cannot finish, a real socket that accepts connections and never answers (a hung collector).
"""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from logsidecar.pipeline.core import COMMIT_RESERVE_S, EXIT_RESERVE_S, SINK_CLOSE_GRACE_S
from logsidecar.service.supervisor import EXIT_STOPPED_SHORT
from tests.support.otlp_receiver import LOOPBACK, wait_for
from tests.support.paths import REPO_ROOT
from tests.support.tail_command import TailProcess

IN_FLIGHT_LINES = 6144  # --max-in-flight-lines default: more lines than that cannot all be in flight


def _lines(count: int) -> list[str]:
    return [f"signal {n:06d} GET /signals/{n} HTTP/1.1 200 " + "x" * 40 for n in range(count)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_signal_exits_at_once_and_a_restart_delivers_every_line(
    tmp_path: Path, signum: signal.Signals
) -> None:
    drain_timeout_s = 20.0
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # accepts, never answers
    silent.bind((LOOPBACK, 0))
    silent.listen(64)
    log = tmp_path / "access.log"
    lines = _lines(2 * IN_FLIGHT_LINES)
    log.write_text("".join(line + "\n" for line in lines))
    try:
        endpoint = f"http://{LOOPBACK}:{silent.getsockname()[1]}"
        tail = TailProcess(
            ["--format", "raw", "--output", "otlp", "--otlp-endpoint", endpoint,
             "--drain-timeout", f"{drain_timeout_s:g}s", str(log)],
            tmp_path / "state", tmp_path / "held.stderr",
        ).start()  # fmt: skip
        wait_for(lambda: tail.events("file_added"), timeout=30, what="the tailer following the log")
        assert tail.process is not None
        tail.process.send_signal(signum)
        wait_for(lambda: tail.events("stopping"), timeout=30, what="the stop under way")
        started = time.monotonic()
        tail.process.send_signal(signum)
        code = tail.wait_exit(timeout=drain_timeout_s)
        took = time.monotonic() - started
    finally:
        silent.close()

    # The first stop would still be delivering (the hung collector never answers) until this long
    # after it began: the second signal did not wait for it.
    first_stop_delivers_until = drain_timeout_s - COMMIT_RESERVE_S - SINK_CLOSE_GRACE_S - EXIT_RESERVE_S
    print(
        f"second {signum.name}: exit {code} after {took:.2f}s (the drain would run {first_stop_delivers_until:g}s)"
    )
    assert code == 128 + signum, tail.stderr_text()
    assert took < first_stop_delivers_until
    forced = tail.events("stop_forced")[-1]
    assert forced["level"] == "warning" and "again: exiting at once" in forced["reason"], forced
    assert "Traceback" not in tail.stderr_path.read_text()

    # Nothing was acknowledged: a restart delivers every line.
    again = TailProcess(["--format", "raw", str(log)], tmp_path / "state", tmp_path / "again.stderr").start()
    try:
        wait_for(lambda: again.count() >= len(lines), timeout=60, what="every line after the restart")
    finally:
        assert again.terminate(timeout=30)[0] == 0
    assert Counter(again.bodies()) == Counter(lines)


def test_sighup_without_config_reloads_nothing_and_the_tail_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("before the hangup\n")
    tail = TailProcess(["--format", "raw", str(log)], tmp_path / "state", tmp_path / "hup.stderr").start()
    try:
        wait_for(lambda: tail.count() >= 1, timeout=30, what="the first line")
        assert tail.process is not None
        tail.process.send_signal(signal.SIGHUP)
        wait_for(lambda: tail.events("config_error"), timeout=30, what="the SIGHUP noted")
        with log.open("a") as handle:
            handle.write("after the hangup\n")
        wait_for(lambda: tail.count() >= 2, timeout=30, what="the line written after SIGHUP")
        assert tail.process.poll() is None
    finally:
        code, _ = tail.terminate(timeout=30)
    assert code == 0, tail.stderr_text()
    assert tail.bodies() == ["before the hangup", "after the hangup"]
    [ignored] = tail.events("config_error")
    assert "no --config file" in ignored["reason"]


def test_the_terminal_closing_stops_tail(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("shown on the terminal\n")
    stderr_path = tmp_path / "pty.stderr"
    command = [
        sys.executable, "-m", "logsidecar", "tail", "--format", "raw", "--stdout-format", "raw",
        "--log-format", "json", "--state-dir", str(tmp_path / "state"), str(log),
    ]  # fmt: skip
    pid, master = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty (stdin, stdout)
        try:
            error = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(error, 2)  # our logs to a file, to read them after the terminal is gone
            os.chdir(REPO_ROOT)
            os.execvpe(sys.executable, command, {**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        finally:
            os._exit(127)
    shown = b""
    try:
        deadline = time.monotonic() + 30
        while b"shown on the terminal" not in shown and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                shown += os.read(master, 4096)
        assert b"shown on the terminal" in shown, stderr_path.read_text()
    finally:
        os.close(master)  # the terminal goes away: the kernel hangs the pty up and sends SIGHUP
    closed_at = time.monotonic()
    status = None
    while time.monotonic() < closed_at + 30:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    logged = stderr_path.read_text()
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, logged
    print(f"terminal closed: exit after {time.monotonic() - closed_at:.2f}s")
    assert '"reason":"SIGHUP: our terminal hung up"' in logged
    assert '"event":"stopped"' in logged and "Traceback" not in logged


# A test double for a fault we cannot make for real: an output whose close blocks the event loop
# (the stop's own deadlines cannot interrupt that). Everything else is the real `logsidecar tail`.
_BLOCKING_CLOSE = """
import sys, time
from logsidecar.sinks.stdout import StdoutSink

async def close_blocking_the_loop(self):
    time.sleep(60)

StdoutSink.close = close_blocking_the_loop
sys.argv = ["logsidecar", *sys.argv[1:]]
from logsidecar.cli import main
main()
"""


def test_a_stop_blocked_past_its_budget_still_exits_when_the_budget_is_spent(tmp_path: Path) -> None:
    drain_timeout_s = 2.0
    log = tmp_path / "access.log"
    log.write_text("a line\n")
    stderr_path = tmp_path / "blocked.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", _BLOCKING_CLOSE, "tail", "--format", "raw", "--log-format", "json",
             "--state-dir", str(tmp_path / "state"), "--drain-timeout", f"{drain_timeout_s:g}s", str(log)],
            stdout=subprocess.PIPE, stderr=stderr, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )  # fmt: skip
        assert process.stdout is not None
        assert process.stdout.readline()  # the line went out: it runs
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        took = time.monotonic() - started
    logged = stderr_path.read_text()
    print(f"blocked stop: exit {code} after {took:.2f}s (budget {drain_timeout_s:g}s)")
    assert code == EXIT_STOPPED_SHORT, logged
    assert drain_timeout_s <= took < drain_timeout_s + 1.0  # the guard, not the 60 s block, ended it
    assert "the stop overran --drain-timeout (2s)" in logged and "Traceback" not in logged
