"""SIGHUP while the config file cannot be read: its mount (a real FUSE filesystem,
tests/support/stall_fs.py) stops answering, as a hard NFS mount does when its server dies.

The reload resolves the file again in a child process, which then blocks in the kernel. The event
loop must not wait for it: /livez answers within a Kubernetes probe's default timeout (1 s) and
lines keep being delivered. More SIGHUPs meanwhile coalesce into one more resolution (never one
child per signal); SIGTERM meanwhile wins: no new pipeline, the stop within --drain-timeout.
"""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.helpers import append_lines, wait_for
from tests.support.otlp_receiver import free_port
from tests.support.stall_mount import StallMount, stall_mount_in
from tests.support.tail_command import TailProcess

PROBE_TIMEOUT_S = 1.0  # Kubernetes' default timeoutSeconds of a probe
RESOLVER = b"logsidecar.cli.resolve"


@pytest.fixture
def config_mount(tmp_path: Path) -> Iterator[StallMount]:
    yield from stall_mount_in(tmp_path, "logsidecar.toml")


def start(tmp_path: Path, mount: StallMount, *extra: str) -> tuple[TailProcess, Path, int]:
    local = tmp_path / "app.log"
    local.touch()
    for line in ("[[inputs]]", f'paths = ["{local}"]', 'format = "raw"'):
        mount.command(f"append {line}")
    port = free_port()
    tail = TailProcess(
        ["--config", str(mount.path), "--http-addr", f"127.0.0.1:{port}", *extra],
        state_dir=tmp_path / "state",
        stderr_path=tmp_path / "tail.stderr",
    ).start()
    append_lines(local, ["before 0000"])
    wait_for(lambda: "before 0000" in tail.bodies(), 30, message="the first line")
    return tail, local, port


def resolvers(pid: int) -> list[int]:
    """The resolver children of `pid` (`python -m logsidecar.cli.resolve ...`)."""
    children = [
        int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()
    ]
    found = []
    for child in children:
        try:
            if RESOLVER in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue  # ended meanwhile
    return found


def livez_status(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=PROBE_TIMEOUT_S) as response:
        return response.status


def test_a_reload_blocked_on_its_config_holds_up_neither_delivery_nor_livez(
    tmp_path: Path, config_mount: StallMount
) -> None:
    tail, local, port = start(tmp_path, config_mount)
    assert tail.process is not None
    try:
        config_mount.command("stall")
        tail.process.send_signal(signal.SIGHUP)
        wait_for(lambda: config_mount.command("count") > 0, 30, message="the resolver blocked on the mount")
        for n in range(5):
            tail.process.send_signal(signal.SIGHUP)  # coalesced into one more resolution
            assert livez_status(port) == 200
            append_lines(local, [f"during {n:04d}"])
            wait_for(
                lambda line=f"during {n:04d}": line in tail.bodies(), 30, message=f"line {n} during the stall"
            )
        running = resolvers(tail.process.pid)
        config_mount.command("release")
        wait_for(lambda: not resolvers(tail.process.pid) and tail.events("config_reloaded"), 60,  # type: ignore[union-attr]
                 message="the reload done")  # fmt: skip
        append_lines(local, ["after 0000"])
        wait_for(lambda: "after 0000" in tail.bodies(), 30, message="a line after the reload")
    finally:
        config_mount.command("release")  # a sidecar blocked on the mount could not even take SIGTERM
        code, _ = tail.terminate()
    assert code == 0, tail.stderr_text()
    assert len(running) == 1, running  # one resolution at a time, not one per SIGHUP
    # The one blocked, then one more for the SIGHUPs that came meanwhile (they may land in one switch).
    assert 1 <= len(tail.events("config_reloaded")) <= 2
    bodies = tail.bodies()
    assert sorted(bodies) == sorted(set(bodies))  # nothing repeated across the reloads
    assert set(bodies) == {"before 0000", "after 0000", *(f"during {n:04d}" for n in range(5))}


def test_sigterm_while_a_reload_is_blocked_stops_within_the_budget_and_starts_nothing(
    tmp_path: Path, config_mount: StallMount
) -> None:
    drain_timeout = 2.0
    tail, local, _ = start(tmp_path, config_mount, "--drain-timeout", f"{drain_timeout:g}")
    assert tail.process is not None
    try:
        config_mount.command("stall")
        tail.process.send_signal(signal.SIGHUP)
        wait_for(lambda: config_mount.command("count") > 0, 30, message="the resolver blocked on the mount")
        append_lines(local, ["during 0000"])
        code, took = tail.terminate()
    finally:
        config_mount.command("release")
    assert code == 0, tail.stderr_text()
    assert took <= drain_timeout, took
    assert tail.bodies() == ["before 0000", "during 0000"]  # drained, then no new pipeline
    assert not tail.events("config_reloaded")
    pipelines = [e for e in tail.events("started") if "sinks" in e]
    assert len(pipelines) == 1, pipelines
