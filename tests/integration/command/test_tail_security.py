"""A hostile log directory against the real tailer and the real `logsidecar tail` process: links
swapped to a secret, a log linked to our own stdout, FIFOs and directories created while tailing,
--dry-run on a FIFO, the refusal metric on /metrics, and checkpoints that hold no log content."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from logsidecar.tail.options import TailOptions, WatchMode
from logsidecar.tail.state_files import DB_FILE_NAME
from tests.support.helpers import wait_for
from tests.support.old_checkpoint_store import write_old_checkpoint_store
from tests.support.paths import REPO_ROOT
from tests.support.tail_command import dry_run
from tests.support.tailer_harness import async_test, running
from tests.support.tailer_harness import wait_for as wait_for_async

SECRET = b"SECRET-do-not-forward"


def options(*include: str, **extra: object) -> TailOptions:
    values: dict[str, object] = {"discover_interval_s": 0.05, "poll_interval_s": 0.02}
    values.update(extra)
    return TailOptions(include=include, **values)  # type: ignore[arg-type]


def logsidecar_tail(
    *args: str, stdout: object = subprocess.PIPE, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "logsidecar", "tail", "--log-format", "json", *args],
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )


def stop(process: subprocess.Popen[bytes]) -> list[dict[str, object]]:
    """SIGTERM, wait, and our own logs (stderr JSON lines)."""
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    return [orjson.loads(line) for line in err.splitlines() if line.startswith(b"{")]


@pytest.mark.parametrize("mode", [WatchMode.INOTIFY, WatchMode.POLL])
@async_test
async def test_a_link_swapped_between_a_log_and_a_secret_every_few_ms_never_leaks(
    tmp_path: Path, mode: WatchMode
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    secret = tmp_path / "secret"
    secret.write_bytes(b"".join(SECRET + b" %d\n" % i for i in range(50)))
    real = logs / "real.data"  # not matched by the glob: reached only through the link
    real.write_bytes(b"real 0\n")
    link = logs / "access.log"
    link.symlink_to("real.data")
    stop_swapping = threading.Event()
    swaps = [0]

    def swap() -> None:
        tmp = logs / ".swap"
        while not stop_swapping.is_set():
            for target in (str(secret), "real.data"):
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(target)
                os.rename(tmp, link)  # atomic: the link always exists, pointing one way or the other
                swaps[0] += 1
                time.sleep(0.003)

    async with running(options(str(link), watch=mode)) as (_t, collector, events_log):
        swapper = threading.Thread(target=swap, daemon=True)
        swapper.start()
        try:
            for i in range(1, 200):
                with real.open("ab") as handle:
                    handle.write(b"real %d\n" % i)
                await asyncio.sleep(0.01)
        finally:
            stop_swapping.set()
            swapper.join(5)
        await wait_for_async(lambda: any(line.startswith(b"real 1") for line in collector.lines), 10)
        refusals = events_log.named("file_refused")
    assert swaps[0] > 100
    assert not [line for line in collector.lines if SECRET in line]
    assert refusals and {r["reason"] for r in refusals} <= {"outside_base", "changed_while_opening"}
    assert len(refusals) == len({(r["path"], r["reason"]) for r in refusals})  # each said once


@pytest.mark.parametrize("follow", ["within", "anywhere"])
def test_a_log_linked_to_our_own_stdout_is_refused_and_the_output_holds_exactly_the_real_lines(
    tmp_path: Path, follow: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").symlink_to("/dev/stdout")  # as the official httpd image ships it
    real_lines = [f"real line {i}" for i in range(20)]
    (logs / "real.log").write_text("".join(line + "\n" for line in real_lines))
    out = tmp_path / "stdout.txt"
    with out.open("wb") as stdout:  # our stdout redirected to a file: the finding's setup
        process = logsidecar_tail(
            "--format", "raw", "--stdout-format", "raw", "--state-dir", "none",
            "--follow-symlinks", follow, str(logs / "*.log"), stdout=stdout,
        )  # fmt: skip
        try:
            wait_for(lambda: out.read_bytes().count(b"\n") >= len(real_lines), 30, message="the real lines")
            time.sleep(1.0)  # many discovery cycles: a loop would have grown the file by megabytes
        finally:
            logs_seen = stop(process)
    assert out.read_text().splitlines() == real_lines
    assert out.stat().st_size == sum(len(line) + 1 for line in real_lines)  # not a byte more
    refusals = [e for e in logs_seen if e.get("event") == "file_refused"]
    assert [(r["path"], r["reason"]) for r in refusals] == [(str(logs / "access.log"), "own_output")]
    assert "docker logs" in str(refusals[0]["detail"])


@pytest.mark.parametrize("mode", [WatchMode.INOTIFY, WatchMode.POLL])
@async_test
async def test_fifos_and_directories_created_while_tailing_are_never_opened(
    tmp_path: Path, mode: WatchMode
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (logs / "a.log").write_bytes(b"alive\n")
    os.mkfifo(elsewhere / "b.log")
    released = threading.Event()

    def blocked_writer() -> None:
        try:
            fd = os.open(elsewhere / "b.log", os.O_WRONLY)  # returns only once a reader opens the FIFO
        except OSError:
            return
        released.set()
        os.close(fd)

    async with running(options(str(logs / "*.log"), watch=mode)) as (_t, collector, events_log):
        await wait_for_async(lambda: collector.lines == [b"alive"])
        writer = threading.Thread(target=blocked_writer, daemon=True)
        writer.start()
        await asyncio.sleep(0.2)
        os.rename(elsewhere / "b.log", logs / "b.log")  # moved in: the watcher opens new files at once
        (logs / "d.log").mkdir()
        (logs / "z.log").symlink_to("/dev/zero")
        await asyncio.sleep(0.5)  # many discovery and watcher cycles
        assert not released.is_set(), "the FIFO was opened for reading"
        await wait_for_async(lambda: len(events_log.named("file_refused")) >= 3)
        refusals = {(r["path"], r["reason"]) for r in events_log.named("file_refused")}
    os.close(os.open(logs / "b.log", os.O_RDONLY | os.O_NONBLOCK))  # proves the writer was waiting
    assert released.wait(5)
    assert refusals == {
        (str(logs / "b.log"), "not_regular"),
        (str(logs / "d.log"), "not_regular"),
        (str(logs / "z.log"), "outside_base"),
    }
    assert collector.lines == [b"alive"]


def test_dry_run_on_a_fifo_returns_at_once_and_says_why(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    os.mkfifo(logs / "access.log")
    (logs / "error.log").write_text("[Sat Dec 05 10:00:00.000000 2026] [core:error] [pid 1] boom\n")
    result = dry_run(str(logs / "*.log"))
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    assert f"{logs}/access.log: refused, never followed: not a regular file (a FIFO)" in result.stdout
    assert "1 file would be followed (1 refused)" in result.stdout

    (logs / "error.log").unlink()
    only_fifo = dry_run(str(logs / "*.log"))
    assert only_fifo.returncode == 1
    assert "0 files would be followed (1 refused)" in only_fifo.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_refusals_are_counted_by_reason_on_metrics_and_the_option_comes_from_the_environment(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "token").write_text("TOKEN\n")
    (logs / "token.log").symlink_to(tmp_path / "token")  # token.log -> /run/secrets/...
    (logs / "inside.log").symlink_to("real.data")
    (logs / "real.data").write_text("inside\n")
    os.mkfifo(logs / "fifo.log")
    port = free_port()
    process = logsidecar_tail(
        "--format", "raw", "--stdout-format", "raw", "--state-dir", "none",
        "--http-addr", f"127.0.0.1:{port}", str(logs / "*.log"),
        env={"LOGSIDECAR_FOLLOW_SYMLINKS": "never"},
    )  # fmt: skip
    try:

        def scrape() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
            except OSError:
                return ""
            return text if 'reason="symlink"' in text and 'reason="not_regular"' in text else ""

        text = wait_for(scrape, 30, message="the refusals on /metrics")
        time.sleep(0.5)  # more discovery cycles: still counted once per path and reason
        text = scrape()
    finally:
        logs_seen = stop(process)
    assert 'logsidecar_files_refused_total{reason="symlink"} 2.0' in text  # both links, never mode
    assert 'logsidecar_files_refused_total{reason="not_regular"} 1.0' in text
    assert sorted((e["path"], e["reason"]) for e in logs_seen if e.get("event") == "file_refused") == [
        (str(logs / "fifo.log"), "not_regular"),
        (str(logs / "inside.log"), "symlink"),
        (str(logs / "token.log"), "symlink"),
    ]


def test_checkpoints_of_a_real_run_hold_no_log_content_and_are_private(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    first = b"GET /?token=TOPSECRET-abc123 HTTP/1.1 the first bytes of the file\n"
    (logs / "access.log").write_bytes(first + b"second line\n")
    state = tmp_path / "state"
    previous = os.umask(0o022)
    try:
        process = logsidecar_tail("--format", "raw", "--stdout-format", "raw", "--state-dir", str(state),
                                  str(logs / "access.log"))  # fmt: skip
        assert process.stdout is not None
        assert process.stdout.readline() == first
        assert process.stdout.readline() == b"second line\n"
        wait_for(lambda: (state / DB_FILE_NAME).exists(), 10)
        time.sleep(1.5)  # a checkpoint interval: the offsets are written
    finally:
        stop(process)
        os.umask(previous)
    files = sorted(state.iterdir())
    assert files, "no checkpoint written"
    content = b"".join(p.read_bytes() for p in files)
    assert str(logs / "access.log").encode() in content  # the store was written
    assert b"TOPSECRET-abc123" not in content and first[:16] not in content
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in files} == {0o600}


def test_an_old_checkpoint_store_with_raw_fingerprints_resumes_without_rereading(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    lines = [b"line %d with TOPSECRET-xyz\n" % i for i in range(10)]
    log.write_bytes(b"".join(lines))
    state = tmp_path / "state"
    state.mkdir()
    st = os.stat(log)
    # the store as written before fingerprints were hashed: the first 1 KiB in clear, offset at line 5
    write_old_checkpoint_store(
        state,
        [
            (
                "old-key",
                st.st_dev,
                st.st_ino,
                log.read_bytes()[:1024],
                sum(map(len, lines[:5])),
                str(log),
                time.time(),
            )
        ],
    )
    process = logsidecar_tail(
        "--format", "raw", "--stdout-format", "raw", "--state-dir", str(state), str(log)
    )
    try:
        assert process.stdout is not None
        got = [process.stdout.readline() for _ in range(5)]
        with log.open("ab") as handle:
            handle.write(b"line 10 after the restart\n")
        got.append(process.stdout.readline())
        time.sleep(1.5)  # the new offset is written
    finally:
        stop(process)
    assert got == [*lines[5:], b"line 10 after the restart\n"]  # resumed at line 5, nothing read twice
    assert b"TOPSECRET-xyz" not in b"".join(p.read_bytes() for p in state.iterdir())
