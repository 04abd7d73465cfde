"""A corrupt checkpoint database (real damaged files, no doubles) is moved aside, kept (0600), and
replaced by a fresh one: the tailer starts, says once what it will re-read, keeps what rows still
read, and a restart after that resumes from what was acknowledged since instead of re-reading."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.options import StartAt, TailOptions, WatchMode
from logsidecar.tail.state_files import DB_COMPANIONS, DB_FILE_NAME
from tests.support.tailer_harness import async_test, numbered_line, running, wait_for

FILES = ("a", "b", "c")
LINES = 200
PADDING = 3000  # checkpoints of files gone since (never GC'd here): a database of many pages


def options(state_dir: Path, logs: Path) -> TailOptions:
    return TailOptions(
        include=(str(logs / "*.log"),),
        state_dir=state_dir,
        watch=WatchMode.INOTIFY,
        discover_interval_s=0.1,
        checkpoint_interval_s=0.1,
        start_at=StartAt.BEGINNING,
    )


def append(logs: Path, prefix: str, count: int, start: int) -> list[bytes]:
    written = []
    for name in FILES:
        lines = [numbered_line(f"{prefix}{name}", i) for i in range(start, start + count)]
        with open(logs / f"{name}.log", "ab") as f:
            f.write(b"".join(lines))
        written += [line.rstrip(b"\n") for line in lines]
    return written


def pad(state: Path) -> None:
    store = CheckpointStore(state)
    for i in range(PADDING):
        store.track(f"pad-{i:05d}", 1, 100_000 + i, b"x" * 64, f"/gone/pad-{i:05d}.log")
        store.commit(f"pad-{i:05d}", 1000)
    store.close()


def random_bytes(db: Path) -> None:
    db.write_bytes(os.urandom(64 * 1024))


def truncated(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 2)


def wrong_schema(db: Path) -> None:
    db.unlink()
    other = sqlite3.connect(db)
    other.execute("CREATE TABLE checkpoints (name TEXT, position INTEGER)")
    other.execute("INSERT INTO checkpoints VALUES ('a', 1)")
    other.commit()
    other.close()
    os.chmod(db, 0o600)


def page_in_the_middle(db: Path) -> None:
    """Overwrite, with random bytes, the table page that holds a padding row near the middle."""
    data = db.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    at = data.index(b"/gone/pad-%05d.log" % (PADDING // 2))  # only the table holds paths
    page = at // page_size
    assert 0 < page < len(data) // page_size - 1
    with open(db, "r+b") as f:
        f.seek(page * page_size)
        f.write(os.urandom(page_size))


@pytest.mark.parametrize("corrupt", [random_bytes, truncated, wrong_schema, page_in_the_middle])
@async_test
async def test_a_corrupt_database_is_moved_aside_and_replaced(tmp_path: Path, corrupt) -> None:  # type: ignore[no-untyped-def]
    logs, state = tmp_path / "logs", tmp_path / "state"
    logs.mkdir()
    first = append(logs, "A", LINES, 0)
    async with running(options(state, logs)) as (_t, collector, _l):
        await wait_for(lambda: len(collector.lines) == len(first))
    pad(state)
    for companion in DB_COMPANIONS:  # closed cleanly: everything is in the database file
        assert not (state / (DB_FILE_NAME + companion)).exists()
    corrupt(state / DB_FILE_NAME)

    async with running(options(state, logs)) as (_t, collector, log_events):
        await asyncio.sleep(0.5)
        errors = log_events.named("checkpoint_error")
        assert len(errors) == 1, errors
        report = errors[0]
        moved = Path(str(report["moved_to"]))
        assert moved.parent == state and moved.name.startswith(DB_FILE_NAME + ".corrupt-")
        assert str(moved) in str(report["action"]) and "--start-at beginning" in str(report["action"])
        assert stat.S_IMODE(os.lstat(moved).st_mode) == 0o600
        if corrupt is page_in_the_middle:
            # the rows of one page are lost, the others (ours among them: the first rows) kept
            total = len(FILES) + PADDING
            assert isinstance(report["lost"], int) and 0 < report["lost"] < PADDING // 2
            assert report["salvaged"] == total - report["lost"]
            reread: list[bytes] = []
        else:
            assert report["salvaged"] == 0
            reread = first  # nothing could be recovered: read again from the beginning
        await wait_for(lambda: len(collector.lines) >= len(reread))
        second = append(logs, "B", 50, LINES)
        await wait_for(lambda: len(collector.lines) >= len(reread) + len(second))
        await asyncio.sleep(0.3)
        assert sorted(collector.lines) == sorted(reread + second)

    # The fresh database works: a restart reads only what was written since, and no error.
    third = append(logs, "C", 10, LINES + 50)
    async with running(options(state, logs)) as (_t, collector, log_events):
        await wait_for(lambda: len(collector.lines) >= len(third))
        await asyncio.sleep(0.3)
        assert sorted(collector.lines) == sorted(third)
        assert log_events.named("checkpoint_error") == []
    assert moved.exists() and stat.S_IMODE(os.lstat(moved).st_mode) == 0o600  # the copy is kept
