"""Fixtures of the command-level tests: `mount`, a real FUSE mount (tests/support/stall_mount.py) whose
server can stop answering, holding one file, access.log; skipped where FUSE is unavailable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stall_mount import StallMount, fuse_unavailable


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[StallMount]:
    reason = fuse_unavailable()
    if reason is not None:
        pytest.skip(reason)
    mountpoint = tmp_path / "nfs"
    mountpoint.mkdir()
    with StallMount(mountpoint, "access.log") as mounted:
        yield mounted
