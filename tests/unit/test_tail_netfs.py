"""netfs: the stall deadline, one thread per stalled mount, late results released, the lexical
mount lookup and the directory probe. The FUSE test (tests/integration/command/test_tail_network_mount.py)
runs the same code against a real server that stops answering; here a stuck call is a test double
(`StuckCall`: a function that blocks on an event, as a syscall blocks on a dead server)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import aiofiles.os
import pytest

from logsidecar import events
from logsidecar.tail.fstype import Mount, mount_of, mount_table
from logsidecar.tail.netfs import DirectoryProbe, FsAccess, Stalled, StallGuard

MOUNTINFO = """\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
40 22 0:40 / /mnt/nfs rw - nfs4 server:/export rw
41 40 0:41 / /mnt/nfs/local\\040dir rw - tmpfs tmpfs rw
"""


class StuckCall:
    """Test double of a call on a dead server: blocks its thread until released; counts entries."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = 0
        self._lock = threading.Lock()

    def __call__(self, value: Any) -> Any:
        with self._lock:
            self.entered += 1
        self.release.wait(30)
        return value


def recorded() -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    seen: list[tuple[str, dict[str, Any]]] = []
    return seen, events.subscribe(lambda event, fields: seen.append((event.value, fields)))


def test_mount_of_is_lexical_and_takes_the_longest_mount_point() -> None:
    mounts = mount_table(MOUNTINFO)
    assert mounts is not None
    assert mount_of("/mnt/nfs/logs/access.log", mounts) == Mount("/mnt/nfs", "nfs4")
    assert mount_of("/mnt/nfs/local dir/a.log", mounts) == Mount("/mnt/nfs/local dir", "tmpfs")
    assert mount_of("/mnt/nfsother/a.log", mounts) == Mount("/", "ext4")


def test_a_stalled_mount_holds_one_thread_refuses_the_rest_and_recovers() -> None:
    stuck = StuckCall()
    seen, unsubscribe = recorded()

    async def scenario() -> tuple[list[str], Any]:
        guard = StallGuard(stall_after_s=0.2)
        call = aiofiles.os.wrap(stuck)
        outcomes = []
        for path in ("/m/a.log", "/m/b.log", "/m/a.log", "/m/c.log"):
            try:
                await guard.call(path, "/m", "stat", call, path)
                outcomes.append("answered")
            except Stalled as error:
                outcomes.append(f"stalled {error.filename}")
        other = await guard.call("/o/x.log", "/o", "stat", aiofiles.os.wrap(os.getpid))  # another mount
        stuck.release.set()
        for _ in range(100):
            if not guard.stalled("/m"):
                break
            await asyncio.sleep(0.02)
        after = await guard.call("/m/a.log", "/m", "stat", call, "again")
        guard.close()
        return outcomes, (other, after)

    try:
        outcomes, (other, after) = asyncio.run(scenario())
    finally:
        unsubscribe()
    assert outcomes == ["stalled /m/a.log", "stalled /m/b.log", "stalled /m/a.log", "stalled /m/c.log"]
    assert stuck.entered == 2  # the stuck call, then the one after the release: refusals took no thread
    assert other == os.getpid() and after == "again"
    stalled = [f for e, f in seen if e == "file_stalled"]
    assert [f["path"] for f in stalled] == ["/m/a.log", "/m/b.log", "/m/c.log"]  # once per path
    assert stalled[0]["after_s"] == 0.2 and all(f.get("refused") for f in stalled[1:])
    recovered = [f["path"] for e, f in seen if e == "file_recovered" and f.get("kind") == "stalled"]
    assert sorted(recovered) == ["/m/a.log", "/m/b.log", "/m/c.log"]


def test_a_descriptor_opened_after_the_caller_gave_up_is_closed(tmp_path: Path) -> None:
    stuck = StuckCall()
    target = tmp_path / "f"
    target.write_text("x")
    closed: list[int] = []

    async def scenario() -> int:
        guard = StallGuard(stall_after_s=0.1)

        def slow_open(path: str) -> int:
            return int(stuck(os.open(path, os.O_RDONLY)))

        with pytest.raises(Stalled):
            await guard.call(
                str(target), "/t", "open", aiofiles.os.wrap(slow_open), str(target), discard=closed.append
            )
        stuck.release.set()
        while guard.stalled("/t"):
            await asyncio.sleep(0.01)
        guard.close()
        return closed[0]

    fd = asyncio.run(scenario())
    os.close(fd)  # handed to `discard`, which here only records it


def test_local_paths_are_called_directly_even_with_a_guard(tmp_path: Path) -> None:
    fs = FsAccess(StallGuard())
    local = str(tmp_path)
    if fs.guarded_mount(local) is not None:
        pytest.skip(f"{local} is on a filesystem that is polled here")
    st = asyncio.run(fs.stat(local))
    assert st.st_ino == os.stat(local).st_ino
    fs.close()


def test_directory_probe_says_a_change_only_after_its_first_look(tmp_path: Path) -> None:
    probe = DirectoryProbe()
    probe.watch({str(tmp_path)})
    fs = FsAccess()

    async def scenario() -> list[bool]:
        first = await probe.changed(fs)
        unchanged = await probe.changed(fs)
        (tmp_path / "new.log").touch()
        os.utime(tmp_path, ns=(1, 1))  # mtime granularity: make the change visible at once
        changed = await probe.changed(fs)
        return [first, unchanged, changed]

    assert asyncio.run(scenario()) == [False, False, True]
