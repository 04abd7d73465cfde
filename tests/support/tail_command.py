"""Test support for the command-level tail tests: the real `logsidecar tail` in a subprocess, a real
writer process, and real logrotate. No test doubles.

- `TailProcess` runs `python -m logsidecar tail --stdout-format json ...`, reads its stdout in a
  thread, and keeps every complete JSON line with the monotonic time it arrived (an incomplete last
  line, cut by a kill -9 mid-write, was never delivered and is ignored). Our own logs (stderr) are
  JSON lines too, kept as events. `start_tail(tmp_path, *args)` starts one with its state and stderr
  under tmp_path; `dry_run(*args)` runs `tail --dry-run` to its end.
- `WriterProcess` appends numbered lines `w <seq> t=<monotonic write time> <padding>` at a given
  rate to a file, reopening it on SIGHUP (what Apache does on a graceful restart; logrotate's
  postrotate sends it) and stopping on SIGTERM after a final flush; it reports its total on exit.
- `logrotate(conf, state)` runs the real `logrotate -f -s STATE CONF` and returns its (start, end)
  monotonic times.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.support.helpers import wait_for
from tests.support.paths import REPO_ROOT

LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"

WRITER_CODE = textwrap.dedent(
    """
    import os, signal, sys, time
    path, rate, total, pad = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    state = {"reopen": False, "stop": False}
    signal.signal(signal.SIGHUP, lambda *_: state.__setitem__("reopen", True))
    signal.signal(signal.SIGTERM, lambda *_: state.__setitem__("stop", True))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    filler = "x" * pad
    seq, start = 0, time.monotonic()
    print("ready", flush=True)
    while seq < total and not state["stop"]:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        if due > seq:
            now = time.monotonic()
            os.write(fd, "".join(f"w {s:08d} t={now:.6f} {filler}\\n" for s in range(seq, due)).encode())
            seq = due
        if state["reopen"]:
            state["reopen"] = False
            os.close(fd)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        time.sleep(0.001)
    os.close(fd)
    print(f"written {seq}", flush=True)
    """
)


def body_seq(body: str) -> int:
    return int(body.split(" ", 2)[1])


def body_time(body: str) -> float:
    return float(body.split(" ", 3)[2][2:])


def expected_bodies(total: int) -> set[int]:
    return set(range(total))


@dataclass
class Received:
    arrived: float  # time.monotonic() when the line was read from the pipe
    record: dict[str, Any]

    @property
    def body(self) -> str:
        return self.record["body"]


@dataclass
class TailProcess:
    args: list[str]
    state_dir: Path
    stderr_path: Path
    env: dict[str, str] | None = None
    command_prefix: list[str] = field(default_factory=list)  # e.g. ["prlimit", "--nofile=64:64"]
    received: list[Received] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    _reader: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> TailProcess:
        command = [
            *self.command_prefix, sys.executable, "-m", "logsidecar", "tail",
            "--stdout-format", "json", "--log-format", "json", "--log-level", "debug",
            "--state-dir", str(self.state_dir), *self.args,
        ]  # fmt: skip
        env = {**os.environ, **(self.env or {})}
        env.setdefault("PYTHONPATH", str(REPO_ROOT))
        self.stderr_file = self.stderr_path.open("ab")
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self.stderr_file, env=env, cwd=REPO_ROOT
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        pending = b""
        fd = self.process.stdout.fileno()
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break  # an unterminated remainder was cut mid-write: never delivered
            now = time.monotonic()
            pending += chunk
            *complete, pending = pending.split(b"\n")
            records = [Received(now, orjson.loads(line)) for line in complete if line]
            with self._lock:
                self.received.extend(records)

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def bodies(self) -> list[str]:
        with self._lock:
            return [r.body for r in self.received]

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def terminate(self, timeout: float = 30.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took to exit)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        took = time.monotonic() - started
        self._finish()
        return code, took

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for an exit already under way (a second SIGTERM would cut the stop short)."""
        assert self.process is not None
        code = self.process.wait(timeout)
        self._finish()
        return code

    def kill9(self) -> float:
        """SIGKILL; returns the monotonic time of the kill."""
        assert self.process is not None
        killed_at = time.monotonic()
        self.process.kill()
        self.process.wait(10)
        self._finish()
        return killed_at

    def _finish(self) -> None:
        if self._reader is not None:
            self._reader.join(10)
        self.stderr_file.close()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        result = []
        for line in self.stderr_path.read_bytes().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict) and (name is None or entry.get("event") == name):
                result.append(entry)
        return result

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]


def dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    """`logsidecar tail --dry-run ARGS` run to its end (30 s at most), its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "logsidecar", "tail", "--dry-run", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
    )


def start_tail(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> TailProcess:
    """`logsidecar tail ARGS` started, its state in tmp_path/state and its logs in tmp_path/tail.stderr."""
    return TailProcess(
        list(args), state_dir=tmp_path / "state", stderr_path=tmp_path / "tail.stderr", env=env
    ).start()


@dataclass
class WriterProcess:
    path: Path
    lines_per_s: float
    total: int
    pad: int = 60
    process: subprocess.Popen[str] | None = None
    written: int | None = None

    def start(self) -> WriterProcess:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER_CODE,
                str(self.path),
                str(self.lines_per_s),
                str(self.total),
                str(self.pad),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout: float = 120.0) -> int:
        assert self.process is not None and self.process.stdout is not None
        out, _ = self.process.communicate(timeout=timeout)
        self.written = int(out.strip().rsplit(" ", 1)[1])
        return self.written

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait()


def write_logrotate_conf(
    conf: Path, log: Path, *, mode: str, rotate: int = 30, postrotate: str | None = None
) -> None:
    """`mode` is `create` (rename, then a new file) or `copytruncate`."""
    lines = [f"{log} {{", f"    rotate {rotate}", "    missingok", "    nocompress", f"    {mode}"]
    if postrotate:
        lines += ["    postrotate", f"        {postrotate}", "    endscript"]
    lines.append("}")
    conf.write_text("\n".join(lines) + "\n")


def logrotate(conf: Path, state: Path) -> tuple[float, float]:
    started = time.monotonic()
    subprocess.run([LOGROTATE, "-f", "-s", str(state), str(conf)], check=True, capture_output=True)
    return started, time.monotonic()


def multiset_report(bodies: list[str], total: int) -> tuple[list[int], dict[int, int]]:
    """(lost sequence numbers, {seq: copies} for sequences received more than once)."""
    counts = Counter(body_seq(b) for b in bodies)
    lost = sorted(set(range(total)) - set(counts))
    duplicated = {seq: n for seq, n in counts.items() if n > 1}
    unexpected = set(counts) - set(range(total))
    assert not unexpected, f"lines nobody wrote: {sorted(unexpected)[:10]}"
    return lost, duplicated


def wait_for_count(tail: TailProcess, count: int, timeout: float, what: str = "tail output") -> None:
    try:
        wait_for(lambda: tail.count() >= count, timeout=timeout, message=f"{what} reaching {count} lines")
    except AssertionError as error:
        raise AssertionError(f"{error} (have {tail.count()}); stderr tail:\n{tail.stderr_text()}") from None


def locate_on_disk(directory: Path, seqs: set[int]) -> dict[str, str]:
    """Where the given sequence numbers are on disk: {file name: "ino=..., N lines from seq S"}."""
    found: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        hits = [
            body_seq(line) for line in path.read_text(errors="replace").splitlines() if line.startswith("w ")
        ]
        hits = [seq for seq in hits if seq in seqs]
        if hits:
            found[path.name] = f"ino={path.stat().st_ino:x}, {len(hits)} lines from seq {min(hits)}"
    return found


def wait_for_seqs(tail: TailProcess, expected: set[int], timeout: float, logs: Path | None = None) -> None:
    """Until every sequence number in `expected` was received (a duplicate cannot stand in for a
    missing line, as it could when counting). On failure, says where the missing lines are in `logs`."""
    missing: set[int] = set(expected)

    def all_received() -> bool:
        missing.difference_update(body_seq(body) for body in tail.bodies())
        return not missing

    try:
        wait_for(all_received, timeout=timeout, message=f"all {len(expected)} expected lines")
    except AssertionError as error:
        where = locate_on_disk(logs, missing) if logs is not None else {}
        raise AssertionError(
            f"{error}; {len(missing)} missing, e.g. {sorted(missing)[:5]}; on disk: {where}; "
            f"stderr tail:\n{tail.stderr_text()}"
        ) from None


def append_sentinel(log: Path, seq: int) -> None:
    """One more numbered line, appended after the writer stopped: when it arrives, everything the
    tailer had to read before it (older lines, rotated files, which are drained first) has been read."""
    with log.open("a") as handle:
        handle.write(f"w {seq:08d} t={time.monotonic():.6f} sentinel\n")
