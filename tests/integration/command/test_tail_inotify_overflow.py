"""A real kernel inotify queue overflow: nothing is lost, and the overflow is counted in /metrics.

The kernel keeps at most fs.inotify.max_queued_events events per inotify instance (the limit in force
when the instance is created); the next event is dropped and IN_Q_OVERFLOW queued instead. The test
lowers the limit (as root, through /proc/sys), starts the real `logsidecar tail`, and puts the limit
back as soon as the sidecar has created its inotify instances (they keep the low limit; inotify
instances other processes on this machine create meanwhile are affected only for that second or so).

The sidecar is then frozen with SIGSTOP (what `docker pause` or a starved CPU does to it) while a burst
of creates and renames happens: many more structure events than its queue holds. Among them are
rotations of access.log (by rename, or by the real logrotate in `create` or `copytruncate` mode)
whose new files are created, written and rotated away again while the sidecar is frozen, under names
the glob does not match (access.log.N): no event about them is left, and no periodic glob can find
them. Only the rescan after the overflow (files next to a followed path, unknown, written while we
were blind) reads them. After SIGCONT every line of every file must arrive exactly once, and
logsidecar_inotify_overflows_total must count the overflow.

Skipped, with the reason, only where the sysctl cannot be written (not root, read-only /proc/sys).
"""

from __future__ import annotations

import os
import signal
import socket
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.helpers import wait_for
from tests.support.tail_command import TailProcess, logrotate, write_logrotate_conf

MAX_QUEUED_EVENTS = Path("/proc/sys/fs/inotify/max_queued_events")
QUEUE_LIMIT = 32  # events the sidecar's inotify queues hold
NEW_FILES = 30  # files created at followed paths while frozen; every other one renamed afterwards
LINES_PER_FILE = 25
# Rotations while frozen, each preceded by one more generation of lines (below the default
# max_rotated_files_held, 64). logrotate shifts every older generation (.1 -> .2 ...) on each run.
ROTATIONS = {"rename": 40, "logrotate-create": 12, "logrotate-copytruncate": 12}
# Structure events the burst queues, at least: an IN_CREATE per new file and IN_MOVED_FROM +
# IN_MOVED_TO per rename of one, and two per rotation (a rename, or the copy's IN_CREATE and a shift):
# the design bound the overflow rests on.
MIN_STRUCTURE_EVENTS = {
    name: NEW_FILES + (NEW_FILES // 2) * 2 + 2 * rotations for name, rotations in ROTATIONS.items()
}

Rotate = Callable[[Path, int], int]  # (access.log, writer fd) -> writer fd after the rotation


@contextmanager
def inotify_queue_limited_to(limit: int) -> Iterator[None]:
    """fs.inotify.max_queued_events = `limit` inside the block, restored afterwards whatever happens."""
    try:
        original = MAX_QUEUED_EVENTS.read_text()
        MAX_QUEUED_EVENTS.write_text(f"{limit}\n")
    except OSError as error:
        pytest.skip(
            f"cannot lower fs.inotify.max_queued_events ({error}): needs root and a writable /proc/sys"
        )
    try:
        yield
    finally:
        MAX_QUEUED_EVENTS.write_text(original)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lines_for(tag: str, count: int) -> list[str]:
    return [f"{tag} {seq:05d} {'x' * (seq % 40)}" for seq in range(count)]


def write_lines(fd: int, lines: list[str]) -> None:
    os.write(fd, "".join(f"{line}\n" for line in lines).encode())


def process_state(pid: int) -> str:
    # /proc/PID/stat: "pid (comm) state ..."; comm may hold spaces, the state follows the last ')'
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def scrape(port: int, metric: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(f"{metric} ")]
    assert len(values) == 1, f"{metric} not exported once: {values}"
    return values[0]


def rename_rotation(state: Path) -> Rotate:
    generation = iter(range(1, 1000))

    def rotate(access: Path, fd: int) -> int:
        os.close(fd)
        os.rename(access, access.parent / f"access.log.{next(generation)}")  # not matched by *.log
        return os.open(access, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    return rotate


def logrotate_rotation(mode: str) -> Callable[[Path], Rotate]:
    def strategy(state: Path) -> Rotate:
        def rotate(access: Path, fd: int) -> int:
            conf = state / "logrotate.conf"
            if not conf.exists():
                write_logrotate_conf(conf, access, mode=mode, rotate=100)
            logrotate(conf, state / "logrotate.state")
            if mode == "copytruncate":
                return fd  # the writer keeps its descriptor (O_APPEND: it writes at the new end)
            os.close(fd)  # `create`: the writer reopens, as Apache does on its graceful restart
            return os.open(access, os.O_WRONLY | os.O_APPEND)

        return rotate

    return strategy


STRATEGIES: dict[str, Callable[[Path], Rotate]] = {
    "rename": rename_rotation,
    "logrotate-create": logrotate_rotation("create"),
    "logrotate-copytruncate": logrotate_rotation("copytruncate"),
}


@pytest.mark.parametrize("rotation", list(STRATEGIES))
def test_kernel_queue_overflow_loses_no_line_and_is_counted(tmp_path: Path, rotation: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    access = logs / "access.log"
    written: list[str] = []
    first = lines_for("gen000", LINES_PER_FILE)
    access.write_text("".join(f"{line}\n" for line in first))
    written += first
    port = free_port()
    tail = TailProcess(
        ["--format", "raw", "--watch", "inotify", "--http-addr", f"127.0.0.1:{port}", f"{logs}/*.log"],
        state_dir=tmp_path / "state",
        stderr_path=tmp_path / "sidecar.log",
    )
    try:
        with inotify_queue_limited_to(QUEUE_LIMIT):
            tail.start()
            # the watcher's inotify instances exist (and keep the low limit) once it is selected
            wait_for(lambda: tail.events("watcher_selected"), timeout=30, message="the watcher created")
        assert tail.process is not None
        pid = tail.process.pid
        wait_for(lambda: tail.count() >= len(first), timeout=30, message="the first file read")
        assert tail.events("watcher_selected")[0]["mechanism"] == "inotify"
        assert scrape(port, "logsidecar_inotify_overflows_total") == 0

        tail.process.send_signal(signal.SIGSTOP)
        wait_for(lambda: process_state(pid) == "T", timeout=10, message="the sidecar stopped")
        assert MIN_STRUCTURE_EVENTS[rotation] > 2 * QUEUE_LIMIT
        rotate = STRATEGIES[rotation](tmp_path)
        fd = os.open(access, os.O_WRONLY | os.O_APPEND)
        for generation in range(1, ROTATIONS[rotation] + 2):
            # a different length per generation: a copytruncated file never regrows to the same size
            fresh = lines_for(f"gen{generation:03d}", LINES_PER_FILE + generation)
            write_lines(fd, fresh)
            written += fresh
            if generation <= ROTATIONS[rotation]:
                fd = rotate(access, fd)
        os.close(fd)
        for index in range(NEW_FILES):
            created = logs / f"new-{index:02d}.log"
            fresh = lines_for(f"new{index:02d}", LINES_PER_FILE)
            created.write_text("".join(f"{line}\n" for line in fresh))
            written += fresh
            if index % 2:
                os.rename(created, logs / f"moved-{index:02d}.log")  # still followed under its new name
        tail.process.send_signal(signal.SIGCONT)

        expected = Counter(written)

        def everything_arrived() -> bool:
            return not expected - Counter(tail.bodies())

        try:
            wait_for(everything_arrived, timeout=60, message="every line written")
        except AssertionError:
            missing = expected - Counter(tail.bodies())
            tags = sorted({line.split()[0] for line in missing})
            raise AssertionError(
                f"{sum(missing.values())} lines lost, from {len(tags)} files: {tags[:10]}; "
                f"overflow events: {tail.events('inotify_overflow')}; stderr tail:\n{tail.stderr_text()}"
            ) from None
        overflows = scrape(port, "logsidecar_inotify_overflows_total")
        code, _took = tail.terminate()
    finally:
        if tail.process is not None and tail.process.poll() is None:
            tail.process.send_signal(signal.SIGCONT)
            tail.kill9()

    assert code == 0, tail.stderr_text()
    received = Counter(tail.bodies())
    duplicated = received - expected
    assert not duplicated, f"{sum(duplicated.values())} lines delivered twice, e.g. {sorted(duplicated)[:3]}"
    said = tail.events("inotify_overflow")
    # One freeze, one overflow: the kernel queues a single IN_Q_OVERFLOW however many events it drops.
    assert overflows == 1
    assert said and sum(event["overflows"] for event in said) == overflows, (said, overflows)
    assert all(event["level"] == "warning" for event in said)
    stray = [line for line in tail.stderr_path.read_text().splitlines() if not line.startswith("{")]
    assert not stray, f"our stderr is JSON lines, yet: {stray[:3]}"
