"""CheckpointStore: durable, keyed by file_key, monotonic commits, GC, and storage failures that are
reported once and retried."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from logsidecar import events
from logsidecar.tail.checkpoints import CheckpointStore, committed_offsets
from logsidecar.tail.identity import StoredFingerprint
from logsidecar.tail.options import TailOptions
from logsidecar.tail.state_files import DB_FILE_NAME, JOURNAL_FILE_NAME
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
        # as it would for a slow disk, while acknowledgements keep coming. A changed identity makes
        # the first one need the database (an offset alone would go to the journal), and while that
        # flush runs, the others cannot use the journal either.
        other = sqlite3.connect(tmp_path / DB_FILE_NAME, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        store.track("a", 1, 10, b"GET /a", "/logs/a.log")
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


def test_an_acknowledged_offset_alone_is_journaled_at_once_and_survives_a_crash(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    tailer = _tailer_with(store, tmp_path, ("a", "b"))
    writes = store.writes
    for offset in (100, 200, 300):
        durable = tailer.acknowledge("a", offset)
        assert durable is not None and durable.done() and durable.result() is True  # no thread hop
    assert tailer.acknowledge("b", 50) is not None
    assert store.writes == writes and store.appends == 4  # the journal, not a transaction each
    # A crash: the store is never closed. A new one reads the database and the journal.
    assert {e.file_key: e.offset for e in CheckpointStore(tmp_path).entries()} == {"a": 300, "b": 50}
    # The periodic flush folds the journal into the database and starts a new, empty generation.
    assert store.has_unsynced() and not store.has_pending()
    assert store.flush() and store.writes == writes + 1
    assert (tmp_path / JOURNAL_FILE_NAME).read_bytes().count(b"\n") == 1  # the header alone
    assert {e.file_key: e.offset for e in CheckpointStore(tmp_path).entries()} == {"a": 300, "b": 50}


def test_a_torn_or_corrupt_journal_record_is_ignored_never_invented(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    tailer = _tailer_with(store, tmp_path, ("a", "b"))
    tailer.acknowledge("a", 100)
    tailer.acknowledge("b", 70)
    journal = tmp_path / JOURNAL_FILE_NAME
    whole = journal.read_bytes()
    *_, last = whole[:-1].split(b"\n")
    assert last.startswith(b"70 b ")
    with journal.open("ab") as handle:
        handle.write(b"900 b ")  # a crash in the middle of an append: no crc, no newline
    assert {e.file_key: e.offset for e in CheckpointStore(tmp_path).entries()} == {"a": 100, "b": 70}
    journal.write_bytes(whole.replace(last, last.replace(b"70 b", b"99 b")))  # crc no longer matches
    assert {e.file_key: e.offset for e in CheckpointStore(tmp_path).entries()} == {"a": 100, "b": 0}


def test_a_journal_of_an_older_generation_is_ignored(tmp_path: Path) -> None:
    """A crash between the transaction that folds the journal in and the journal's restart leaves
    the old journal: its records may name a key forgotten and re-created since (offset back to 0),
    so they must not be applied again."""
    store = CheckpointStore(tmp_path)
    tailer = _tailer_with(store, tmp_path, ("a",))
    tailer.acknowledge("a", 500)
    journal = tmp_path / JOURNAL_FILE_NAME
    old = journal.read_bytes()
    store.forget("a")
    store.track("a", 1, 10, b"GET /", "/logs/a.log")  # the same key again, from offset 0
    assert store.flush()
    journal.write_bytes(old)  # as if the crash came before the journal was restarted
    assert {e.file_key: e.offset for e in CheckpointStore(tmp_path).entries()} == {"a": 0}


def test_acknowledgements_never_wait_for_a_running_flush(tmp_path: Path) -> None:
    """While a flush holds the writer (here blocked by another connection's lock), an acknowledgement
    returns at once with the future of the commit thread's next flush, which then includes it."""

    async def main() -> None:
        store = CheckpointStore(tmp_path)
        tailer = _tailer_with(store, tmp_path, ("a", "b"))
        other = sqlite3.connect(tmp_path / DB_FILE_NAME, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        store.track("b", 1, 10, b"GET /b", "/logs/b.log")
        blocked = asyncio.get_running_loop().run_in_executor(None, store.flush)
        await asyncio.sleep(0.1)
        started = time.monotonic()
        durable = tailer.acknowledge("a", 42)
        assert time.monotonic() - started < 0.05 and durable is not None and not durable.done()
        other.execute("ROLLBACK")
        other.close()
        assert await blocked
        assert await asyncio.wrap_future(durable)
        assert {e.file_key: e.offset for e in CheckpointStore(tmp_path).entries()}["a"] == 42

    asyncio.run(main())


def test_committed_offsets_reads_the_database_and_the_journal_of_a_running_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CheckpointStore(tmp_path)
    tailer = _tailer_with(store, tmp_path, ("a", "b"))
    tailer.acknowledge("a", 10)
    assert store.flush()
    tailer.acknowledge("a", 30)  # journaled, not yet in the database
    assert committed_offsets(tmp_path) == {"a": 30, "b": 0}
    assert committed_offsets(tmp_path / "none") == {}
    monkeypatch.chdir(tmp_path)
    assert committed_offsets(Path(".")) == {"a": 30, "b": 0}  # a relative state dir too
