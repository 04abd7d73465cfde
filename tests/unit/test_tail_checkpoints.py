"""CheckpointStore: durable, keyed by file_key, monotonic commits, GC, and storage failures that are
reported once and retried."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from logsidecar import events
from logsidecar.tail.checkpoints import DB_FILE_NAME, CheckpointStore
from logsidecar.tail.identity import StoredFingerprint
from logsidecar.tail.options import TailOptions
from logsidecar.tail.tailer import Tailer


@pytest.fixture
def seen() -> list[str]:
    names: list[str] = []
    unsubscribe = events.subscribe(lambda event, fields: names.append(event.value))
    yield names
    unsubscribe()


def test_committed_offsets_survive_a_new_store(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.track("k1", 1, 10, b"GET /", "/logs/access.log")
    store.commit("k1", 120)
    assert store.flush()
    reopened = CheckpointStore(tmp_path)
    [entry] = reopened.entries()
    assert (entry.file_key, entry.dev, entry.ino, entry.fingerprint, entry.offset, entry.path) == (
        "k1",
        1,
        10,
        StoredFingerprint.of(b"GET /"),
        120,
        "/logs/access.log",
    )


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.track("k1", 1, 10, b"x", "/a")
    store.flush()
    mode = sqlite3.connect(tmp_path / DB_FILE_NAME).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_commit_never_moves_backwards_and_ignores_unknown_keys(tmp_path: Path) -> None:
    store = CheckpointStore(None)
    store.commit("unknown", 5)
    store.track("k", 1, 1, b"x", "/a")
    store.commit("k", 50)
    store.commit("k", 20)
    assert [e.offset for e in store.entries()] == [50]


def test_memory_only_store_writes_nothing(tmp_path: Path) -> None:
    store = CheckpointStore(None)
    store.track("k", 1, 1, b"x", "/a")
    assert store.flush()
    assert list(tmp_path.iterdir()) == []


def test_entries_not_seen_for_forget_after_are_collected(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.track("old", 1, 1, b"a", "/a")
    store.track("followed", 1, 2, b"b", "/b")
    store.track("fresh", 1, 3, b"c", "/c")
    time.sleep(0.05)
    store.touch(["fresh"])
    assert store.collect_garbage(forget_after_s=0.02, keep={"followed"}) == ["old"]
    store.flush()
    assert sorted(e.file_key for e in CheckpointStore(tmp_path).entries()) == ["followed", "fresh"]


def test_unwritable_state_dir_reports_once_keeps_offsets_and_retries(tmp_path: Path, seen: list[str]) -> None:
    # A state path whose parent is a *file* cannot be created, even by root: a real ENOTDIR.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = CheckpointStore(blocker / "state")
    store.track("k", 1, 1, b"x", "/a")
    store.commit("k", 10)
    assert not store.flush()
    assert not store.flush()
    assert seen.count("checkpoint_error") == 1
    blocker.unlink()  # fixed: the directory can be created now
    assert store.flush()
    assert [e.offset for e in CheckpointStore(blocker / "state").entries()] == [10]
    assert seen.count("checkpoint_written") == 1


def test_full_disk_is_reported_and_retried(tmp_path: Path, seen: list[str]) -> None:
    # /dev/full returns ENOSPC on every write: a real full device for the database file.
    state = tmp_path / "state"
    state.mkdir()
    (state / DB_FILE_NAME).symlink_to("/dev/full")
    store = CheckpointStore(state)
    store.track("k", 1, 1, b"x", "/a")
    store.commit("k", 10)
    assert not store.flush()
    assert "checkpoint_error" in seen
    (state / DB_FILE_NAME).unlink()
    assert store.flush()
    assert [e.offset for e in CheckpointStore(state).entries()] == [10]


def test_pending_says_whether_a_flush_has_anything_to_write(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    assert store.has_pending() is False
    store.track("a", 1, 2, b"head", "/logs/a.log")
    assert store.has_pending() is True
    assert store.flush() is True
    assert store.has_pending() is False
    store.commit("a", 10)
    assert store.has_pending() is True
    store.flush()
    store.commit("a", 5)  # backwards: ignored, nothing to write
    assert store.has_pending() is False
    store.forget("a")
    assert store.has_pending() is True
    store.flush()
    assert store.has_pending() is False
    store.close()
    memory = CheckpointStore(None)
    memory.track("a", 1, 2, b"head", "/logs/a.log")
    assert memory.has_pending() is False  # nothing is ever written


def test_flush_is_process_crash_durable_and_sync_makes_it_power_loss_durable(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.track("k1", 1, 10, b"GET /", "/logs/access.log")
    store.commit("k1", 120)
    assert store.flush()
    db = store._connect()
    assert db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL: no fsync per commit
    wal = tmp_path / f"{DB_FILE_NAME}-wal"
    assert store.has_unsynced() and wal.stat().st_size > 0  # the commit is in the WAL
    assert store.sync()
    assert not store.has_unsynced() and store.syncs == 1
    assert store.sync() and store.syncs == 1  # nothing new: no second checkpoint
    store.close()
    assert not store.flush()  # a late writer after close() writes nothing (and opens nothing)
    assert [e.offset for e in CheckpointStore(tmp_path).entries()] == [120]


def _tailer_with(store: CheckpointStore, tmp_path: Path, keys: tuple[str, ...]) -> Tailer:
    for key in keys:
        store.track(key, 1, 10, b"GET /", f"/logs/{key}.log")
    assert store.flush()
    return Tailer(TailOptions(include=(str(tmp_path / "*.log"),), state_dir=store.state_dir), store)


def test_acknowledgements_arriving_during_a_commit_share_the_next_one(tmp_path: Path) -> None:
    async def main() -> None:
        store = CheckpointStore(tmp_path)
        tailer = _tailer_with(store, tmp_path, ("a", "b", "c"))
        writes = store.writes
        # Another connection holds the write lock: the commit thread's transaction waits for it,
        # as it would for a slow disk, while acknowledgements keep coming.
        other = sqlite3.connect(tmp_path / DB_FILE_NAME, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        futures = [tailer.acknowledge(key, offset) for offset in range(10, 110) for key in ("a", "b", "c")]
        await asyncio.sleep(0.2)
        assert not any(f is not None and f.done() for f in futures)  # nobody is told it is stored
        other.execute("ROLLBACK")
        other.close()
        assert all(f is not None for f in futures)
        await asyncio.gather(*(asyncio.wrap_future(f) for f in {id(f): f for f in futures if f}.values()))
        assert {e.file_key: e.offset for e in CheckpointStore(tmp_path).entries()} == {
            "a": 109,
            "b": 109,
            "c": 109,
        }
        # 300 acknowledgements: the one that started the blocked commit, and the rest in the next
        assert len({id(f) for f in futures}) <= 2
        assert store.writes - writes <= 2

    asyncio.run(main())


def test_a_failing_store_does_not_hold_the_acknowledgement(tmp_path: Path, seen: list[str]) -> None:
    async def main() -> None:
        blocker = tmp_path / "not-a-dir"  # a state path under a file cannot be created: ENOTDIR
        blocker.write_text("")
        store = CheckpointStore(blocker / "state")
        store.track("a", 1, 10, b"GET /", "/logs/a.log")
        tailer = Tailer(TailOptions(include=(str(tmp_path / "*.log"),), state_dir=blocker / "state"), store)
        durable = tailer.acknowledge("a", 10)
        assert durable is not None
        await asyncio.wait_for(asyncio.wrap_future(durable), 10)  # done, although nothing was written
        assert store.errors and "checkpoint_error" in seen and store.has_pending()
        blocker.unlink()  # fixed
        again = tailer.acknowledge("a", 20)
        assert again is not None
        await asyncio.wrap_future(again)  # the next commit retries, and works
        assert [e.offset for e in CheckpointStore(blocker / "state").entries()] == [20]

    asyncio.run(main())
