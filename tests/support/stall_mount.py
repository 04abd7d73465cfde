"""A real FUSE mount whose server can stop answering (tests/support/stall_fs.py run as a subprocess),
for tests of network mounts: `StallMount` mounts it and drives it through the server's stdin;
`fuse_unavailable()` says why it cannot be mounted here, or None."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.helpers import wait_for
from tests.support.paths import REPO_ROOT

FUSERMOUNT = shutil.which("fusermount3")


def fuse_unavailable() -> str | None:
    """Why a FUSE filesystem cannot be mounted here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine"
    if FUSERMOUNT is None:
        return "fusermount3 is not installed (Debian package fuse3)"
    probe = subprocess.run(
        [sys.executable, "-c", "import mfusepy"], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    if probe.returncode != 0:
        return (
            "the FUSE binding mfusepy cannot be imported: " + (probe.stderr.strip().splitlines() or [""])[-1]
        )
    return None


class StallMount:
    """tests/support/stall_fs.py mounted at `mountpoint`, driven through its stdin."""

    def __init__(self, mountpoint: Path, name: str) -> None:
        self.mountpoint = mountpoint
        self.path = mountpoint / name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.stall_fs", str(mountpoint), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        try:
            wait_for(self._mounted, 20, message=f"stall_fs mounted at {mountpoint}")
        except AssertionError:
            self.close()
            raise

    def _mounted(self) -> bool:
        if self.process.poll() is not None:
            assert self.process.stderr is not None
            raise AssertionError(f"stall_fs exited: {self.process.stderr.read()[-2000:]}")
        with open("/proc/self/mountinfo") as mountinfo:
            return any(f" {self.mountpoint} " in line for line in mountinfo)

    def command(self, line: str) -> int:
        """Send one command; returns how many calls the server has blocked so far."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().split()
        assert answer[:2] == ["ok", line.split(" ", 1)[0]], answer
        return int(answer[2])

    def close(self) -> None:
        if self.process.poll() is None:
            self.command("release")
        assert FUSERMOUNT is not None
        subprocess.run([FUSERMOUNT, "-u", "-z", str(self.mountpoint)], capture_output=True, check=False)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> StallMount:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def stall_mount_in(directory: Path, name: str) -> Iterator[StallMount]:
    """A fixture's body: the stall mount at `directory`/nfs serving one file `name`, or the test
    skipped with the reason FUSE is not usable here."""
    reason = fuse_unavailable()
    if reason is not None:
        pytest.skip(reason)
    mountpoint = directory / "nfs"
    mountpoint.mkdir()
    with StallMount(mountpoint, name) as mounted:
        yield mounted
