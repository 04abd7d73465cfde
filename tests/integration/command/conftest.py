"""Fixtures of the command-level tests: `mount`, a real FUSE mount (tests/support/stall_mount.py) whose
server can stop answering, holding one file, access.log; skipped where FUSE is unavailable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stall_mount import StallMount, stall_mount_in


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[StallMount]:
    yield from stall_mount_in(tmp_path, "access.log")
