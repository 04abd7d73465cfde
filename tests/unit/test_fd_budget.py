"""The descriptor budget's choices, on real files: which files are closed (idle ACTIVE ones at EOF,
least recently grown first, never a rotated one), and how a closed file is found again."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from logsidecar import events
from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.copytruncate import SiblingSearch
from logsidecar.tail.counters import TailCounters
from logsidecar.tail.fd_budget import RESERVED_FDS, FdBudget, budget_for, evictable
from logsidecar.tail.fileset import FileSet, FileState, TrackedFile
from logsidecar.tail.netfs import FsAccess
from logsidecar.tail.open_policy import FilePolicy
from logsidecar.tail.options import TailOptions
from logsidecar.tail.reader import ReaderFactory
from logsidecar.tail.reports import PathReports
from logsidecar.tail.retention import Retention


class Setup:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.options = TailOptions(include=(str(directory / "*.log"),))
        self.files = FileSet()
        self.counters = TailCounters()
        self.policy = FilePolicy(bases=[directory])
        reports = PathReports(self.policy, self.counters)
        self.fs = FsAccess()
        self.readers = ReaderFactory(self.options, self.fs)
        retention = Retention(self.options, self.files, CheckpointStore(None), self.counters)
        siblings = SiblingSearch(self.options, self.policy, reports)
        self.budget = FdBudget(self.files, self.counters, reports, self.policy, self.fs, siblings, retention)

    def follow(
        self,
        name: str,
        content: bytes,
        *,
        read: bool = True,
        growth: float = 0.0,
        state: FileState = FileState.ACTIVE,
    ) -> TrackedFile:
        """A followed file with `content`, read to its end when `read`, last grown at `growth`."""
        path = self.directory / name
        path.write_bytes(content)
        fd, st = self.policy.open_file(str(path))
        reader = self.readers.new(fd, str(path), st)
        reader.file_key = name
        if read:
            reader.scan_offset = len(content)
            reader.framer.reset(len(content))
        tracked = TrackedFile(reader, state, last_growth=growth)
        self.files.add(tracked)
        return tracked

    def close(self) -> None:
        for tracked in self.files.values():
            tracked.reader.close()
        self.fs.close()


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    s = Setup(tmp_path)
    yield s
    s.close()


@pytest.fixture
def said() -> Any:
    seen: list[tuple[str, dict[str, Any]]] = []
    unsubscribe = events.subscribe(lambda event, fields: seen.append((event.value, fields)))
    yield seen
    unsubscribe()


def test_budget_leaves_the_reserve_but_never_more_than_half_the_limit() -> None:
    assert budget_for(1024) == 1024 - RESERVED_FDS
    assert budget_for(64) == 32  # a reserve of 96 would leave nothing: half of the limit
    assert budget_for(RESERVED_FDS * 2) == RESERVED_FDS


def test_idle_files_at_eof_go_least_recently_grown_first_never_rotated_or_unread(setup: Setup) -> None:
    setup.follow("recent.log", b"a\n", growth=3.0)
    setup.follow("oldest.log", b"b\n", growth=1.0)
    setup.follow("unread.log", b"c\n", read=False, growth=0.0)  # bytes left: not idle
    setup.follow("rotated.log", b"d\n", growth=0.0, state=FileState.ROTATED)  # never closed
    parked = setup.follow("parked.log", b"e\n", growth=0.5)
    parked.reader.close()  # already closed: nothing to close
    assert [key for key, _ in evictable(setup.files)] == ["oldest.log", "recent.log"]


def test_a_slot_is_made_by_closing_the_least_recently_grown_idle_file(setup: Setup, said: list[Any]) -> None:
    recent = setup.follow("recent.log", b"a\n", growth=3.0)
    oldest = setup.follow("oldest.log", b"b\n", growth=1.0)
    unread = setup.follow("unread.log", b"c\n", read=False, growth=0.0)
    rotated = setup.follow("rotated.log", b"d\n", state=FileState.ROTATED)
    setup.budget.budget = setup.budget.open_files()  # full
    slots = setup.budget.slots()
    assert slots.take()
    assert oldest.reader.fd < 0 and recent.reader.fd >= 0
    assert oldest.reader.scan_offset == 2  # the offset is kept
    assert slots.take()
    assert recent.reader.fd < 0
    assert not slots.take()  # only a file with unread bytes and a rotated one are left: both stay open
    assert unread.reader.fd >= 0 and rotated.reader.fd >= 0
    assert setup.counters.files_closed_idle == 2
    assert [f["path"] for e, f in said if e == "file_closed_idle"] == [oldest.reader.path, recent.reader.path]


def test_a_new_file_beyond_the_budget_is_closed_unless_it_is_not_at_a_followed_path(setup: Setup) -> None:
    setup.follow("busy.log", b"a\n", read=False)
    setup.budget.budget = 1
    slots = setup.budget.slots()
    new = setup.follow("new.log", b"b\n", read=False)
    slots.keep(new.reader, may_park=True)
    assert new.reader.fd < 0
    gone = setup.follow("gone.log", b"c\n", read=False)
    slots.keep(gone.reader, may_park=False)  # rotated as it was created: no path to reopen it by
    assert gone.reader.fd >= 0


def test_a_closed_file_that_grew_is_reopened_at_its_offset_and_a_quiet_one_stays_closed(
    setup: Setup, said: list[Any]
) -> None:
    grew = setup.follow("grew.log", b"first\n")
    quiet = setup.follow("quiet.log", b"quiet\n")
    for key in ("grew.log", "quiet.log"):
        tracked = setup.files.get(key)
        assert tracked is not None
        setup.budget.park(key, tracked)
    with (setup.directory / "grew.log").open("ab") as f:
        f.write(b"second\n")
    assert asyncio.run(setup.budget.reopen_changed()) is False
    assert grew.reader.fd >= 0 and grew.reader.scan_offset == len(b"first\n")
    assert os.fstat(grew.reader.fd).st_size == len(b"first\nsecond\n")
    assert quiet.reader.fd < 0
    assert setup.counters.files_reopened == 1


def test_a_file_rotated_while_closed_is_found_next_to_its_path_by_identity(
    setup: Setup, said: list[Any]
) -> None:
    content = b"line one\nline two\n"
    tracked = setup.follow("access.log", content)
    setup.budget.park("access.log", tracked)
    path = setup.directory / "access.log"
    path.rename(setup.directory / "access.log.1")
    path.write_bytes(b"a new file with other content\n")
    asyncio.run(setup.budget.reopen_changed())
    assert tracked.state is FileState.ROTATED
    assert tracked.reader.path == str(setup.directory / "access.log.1")
    assert tracked.reader.scan_offset == len(content)
    assert [f["previous_path"] for e, f in said if e == "file_reopened"] == [str(path)]


def test_a_file_rotated_and_removed_while_closed_is_released_and_said(setup: Setup, said: list[Any]) -> None:
    tracked = setup.follow("access.log", b"x\n")
    setup.budget.park("access.log", tracked)
    (setup.directory / "access.log").unlink()
    asyncio.run(setup.budget.reopen_changed())
    assert "access.log" not in setup.files
    assert [e for e, _ in said if e == "file_lost_while_closed"] == ["file_lost_while_closed"]


def test_slots_wait_when_every_open_file_has_unread_bytes(setup: Setup) -> None:
    setup.follow("busy.log", b"a\n", read=False)
    waiting = setup.follow("waiting.log", b"b\n")
    setup.budget.park("waiting.log", waiting)
    setup.budget.budget = 1
    with (setup.directory / "waiting.log").open("ab") as f:
        f.write(b"more\n")
    assert asyncio.run(setup.budget.reopen_changed()) is True  # still waits: come back at once
    assert waiting.reader.fd < 0
