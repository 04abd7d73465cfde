"""The checkpoint store keeps no log content and is private: fingerprints are stored hashed (and an old
database of raw fingerprints is migrated without re-reading anything), the state directory is 0700,
its files 0600, and a symlink planted at the database path is refused, not followed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from logsidecar import events
from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.identity import StoredFingerprint
from logsidecar.tail.state_files import DB_FILE_NAME, JOURNAL_FILE_NAME
from tests.support.old_checkpoint_store import write_old_checkpoint_store

SECRET_HEAD = b"Authorization: Bearer s3cr3t-TOKEN-0123456789 the first bytes of a log\n"


@pytest.fixture
def seen() -> list[tuple[str, dict[str, object]]]:
    got: list[tuple[str, dict[str, object]]] = []
    unsubscribe = events.subscribe(lambda event, fields: got.append((event.value, dict(fields))))
    yield got
    unsubscribe()


def state_bytes(state: Path) -> bytes:
    """Everything SQLite keeps on disk for the store (database, WAL, shared memory)."""
    return b"".join(p.read_bytes() for p in sorted(state.iterdir()) if p.is_file())


def test_the_database_files_hold_no_content_of_the_fingerprint(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = CheckpointStore(state)
    store.track("k", 1, 2, SECRET_HEAD, "/logs/access.log")
    store.commit("k", len(SECRET_HEAD))
    assert store.flush()
    on_disk = state_bytes(state)
    assert b"/logs/access.log" in on_disk  # the files were really read (the path is stored in clear)
    assert b"s3cr3t-TOKEN" not in on_disk
    assert SECRET_HEAD[:16] not in on_disk
    store.close()
    assert b"s3cr3t-TOKEN" not in state_bytes(state)


def test_a_stored_fingerprint_matches_the_file_it_grew_into_and_nothing_else() -> None:
    stored = StoredFingerprint.of(b"first line\n")
    assert stored.matches(b"first line\nsecond line\n")  # the file grew: still the same file
    assert stored.matches(b"first line\n")
    assert not stored.matches(b"first line")  # shorter than what was hashed: cannot be the same
    assert not stored.matches(b"other line\nsecond line\n")
    assert not StoredFingerprint.of(b"").matches(b"anything")  # empty matches nothing


def test_a_growing_fingerprint_resumes_after_a_restart(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.track("k", 1, 2, b"GET / 200\n", "/logs/access.log")
    store.commit("k", 10)
    store.close()
    [entry] = CheckpointStore(tmp_path).entries()
    assert entry.fingerprint.matches(b"GET / 200\nGET /more 200\n")
    assert entry.offset == 10


def test_raw_fingerprints_of_an_old_database_are_hashed_on_load_and_leave_the_file(
    tmp_path: Path, seen: list[tuple[str, dict[str, object]]]
) -> None:
    # A database as the store wrote it before fingerprints were hashed (raw first bytes, 0644).
    tmp_path.chmod(0o755)
    database = write_old_checkpoint_store(
        tmp_path,
        [("k", 1, 2, SECRET_HEAD, 4096, "/logs/access.log", 1.0), ("e", 1, 3, b"", 0, "/logs/e.log", 1.0)],
    )
    os.chmod(database, 0o644)
    assert b"s3cr3t-TOKEN" in state_bytes(tmp_path)

    store = CheckpointStore(tmp_path)
    entries = {e.file_key: e for e in store.entries()}
    # offsets kept (nothing is re-read from 0), the identity still matches the file
    assert entries["k"].offset == 4096
    assert entries["k"].fingerprint == StoredFingerprint.of(SECRET_HEAD)
    assert entries["k"].fingerprint.matches(SECRET_HEAD + b"later lines\n")
    assert entries["e"].fingerprint.length == 0
    assert ("checkpoint_written", {"entries": 2, "forgotten": 0, "migrated": "fingerprints hashed"}) in seen
    store.close()
    assert b"s3cr3t-TOKEN" not in state_bytes(tmp_path)
    assert SECRET_HEAD[:16] not in state_bytes(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / DB_FILE_NAME).st_mode) == 0o600


def test_state_directory_is_0700_and_its_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    state = tmp_path / "a" / "state"
    previous = os.umask(0o022)
    try:
        store = CheckpointStore(state)
        store.track("k", 1, 2, b"x\n", "/logs/a.log")
        store.commit("k", 2)
        assert store.flush()
        files = sorted(p.name for p in state.iterdir())
        assert files == sorted(  # all of them checked
            [DB_FILE_NAME, DB_FILE_NAME + "-shm", DB_FILE_NAME + "-wal", JOURNAL_FILE_NAME]
        )
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
        for name in files:
            assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600, name
        store.close()
    finally:
        os.umask(previous)


def store_with_a_link_planted_at(
    tmp_path: Path, name: str, content: bytes = b"untouched\n"
) -> tuple[CheckpointStore, Path]:
    """A store in tmp_path/state (0700) whose file `name` is a symlink planted to a file elsewhere
    holding `content`, with one file tracked; and that file."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    target = tmp_path / "elsewhere.txt"
    target.write_bytes(content)
    (state / name).symlink_to(target)
    store = CheckpointStore(state)
    store.track("k", 1, 2, b"x\n", "/logs/a.log")
    return store, target


def test_a_symlink_planted_at_the_database_path_is_refused_with_a_clear_error(
    tmp_path: Path, seen: list[tuple[str, dict[str, object]]]
) -> None:
    store, target = store_with_a_link_planted_at(tmp_path, DB_FILE_NAME, b"not a database\n")
    state = tmp_path / "state"
    store.commit("k", 2)
    assert not store.flush()
    [error] = [fields for name, fields in seen if name == "checkpoint_error"]
    assert "is a symlink" in str(error["error"]) and "remove the link" in str(error["error"])
    assert target.read_bytes() == b"not a database\n"  # never opened through the link
    (state / DB_FILE_NAME).unlink()
    assert store.flush()  # fixed: retried, and written
    assert [e.offset for e in CheckpointStore(state).entries()] == [2]


def test_a_symlink_planted_at_the_wal_path_is_refused(tmp_path: Path) -> None:
    store, target = store_with_a_link_planted_at(tmp_path, DB_FILE_NAME + "-wal")
    assert not store.flush()
    assert target.read_bytes() == b"untouched\n"


def test_a_symlink_planted_at_the_journal_path_is_refused(tmp_path: Path) -> None:
    store, target = store_with_a_link_planted_at(tmp_path, JOURNAL_FILE_NAME)
    assert not store.flush()
    store.commit("k", 2)
    assert not store.flush_soon().result(10)  # no append through the link either
    assert target.read_bytes() == b"untouched\n"
    store.close()
