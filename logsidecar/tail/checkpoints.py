"""Crash-safe committed offsets, keyed by file identity (`file_key`).

Storage: SQLite in WAL mode (`<state_dir>/checkpoints.sqlite`), `synchronous=FULL`, one transaction per
flush, so a crash (or a kill -9) leaves either the previous or the new set of offsets, never a torn one.
With `state_dir=None` everything stays in memory (nothing survives a restart).

Invariants:
- Only acknowledged offsets are stored: the tailer calls `commit(file_key, offset)` from
  `Tailer.acknowledge`, never from reading.
- An entry remembers the file's identity (dev, inode, fingerprint), its last path and when it was
  last seen; entries not seen for `forget_after_s` are garbage-collected.
- No log content is stored: the fingerprint is kept as its length and SHA-256 (`StoredFingerprint`).
  A database written before that (a raw `fingerprint` column) is migrated on open: hashed in place
  (offsets kept, nothing re-read), then VACUUMed so the raw bytes leave the file.
- The state directory is 0700 and its files 0600 (created so, tightened if found wider); the database
  files are checked without following symlinks, and a symlink (or anything but a regular file) planted
  at one of their paths is refused: `checkpoint_error` says which and what to do.
- A storage failure (full disk, read-only state dir, vanished directory) never stops the tailer: it is
  reported once as `checkpoint_error`, the entries stay dirty in memory, and the next flush retries.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from logsidecar import events
from logsidecar.events import Event
from logsidecar.tail.identity import StoredFingerprint

DB_FILE_NAME = "checkpoints.sqlite"
# SQLite's companions of the database file (WAL mode); it creates them with the database's mode.
DB_COMPANIONS = ("-wal", "-shm")
STATE_DIR_MODE = 0o700
STATE_FILE_MODE = 0o600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    file_key           TEXT PRIMARY KEY,
    dev                INTEGER NOT NULL,
    ino                INTEGER NOT NULL,
    fingerprint_len    INTEGER NOT NULL,
    fingerprint_sha256 BLOB NOT NULL,
    offset             INTEGER NOT NULL,
    path               TEXT NOT NULL,
    last_seen          REAL NOT NULL
)
"""
_COLUMNS = "file_key, dev, ino, fingerprint_len, fingerprint_sha256, offset, path, last_seen"
_INSERT = f"INSERT OR REPLACE INTO checkpoints ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


class UnsafeStateFile(OSError):
    """A database file of the state directory is a symlink or not a regular file: never opened."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    file_key: str
    dev: int
    ino: int
    fingerprint: StoredFingerprint  # length and hash of the first bytes, never the bytes
    offset: int  # committed (acknowledged) offset
    path: str
    last_seen: float  # wall-clock seconds


class CheckpointStore:
    """Committed offsets per file_key; `flush()` makes them durable."""

    def __init__(self, state_dir: Path | None) -> None:
        self.state_dir = state_dir
        self._entries: dict[str, Checkpoint] = {}
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self._lock = threading.Lock()  # guards the entries; flush() may run in a worker thread
        self._io_lock = threading.Lock()  # one writer at a time
        self._db: sqlite3.Connection | None = None
        self._failing = False
        self.writes = 0
        self.errors = 0
        if state_dir is not None:
            self._load()

    # -- reading -------------------------------------------------------------------------------
    def entries(self) -> list[Checkpoint]:
        with self._lock:
            return list(self._entries.values())

    def get(self, file_key: str) -> Checkpoint | None:
        return self._entries.get(file_key)

    # -- updating (memory) ---------------------------------------------------------------------
    def track(self, file_key: str, dev: int, ino: int, fingerprint: bytes, path: str) -> None:
        """Create or refresh the entry of a followed file (identity, path, last seen). `fingerprint`
        is the raw first bytes; only their length and hash are kept."""
        with self._lock:
            old = self._entries.get(file_key)
            offset = old.offset if old else 0
            if old is not None and old.fingerprint.length == len(fingerprint):
                # one key's fingerprint only grows (new content is a new key): same length, same bytes
                stored = old.fingerprint
            else:
                stored = StoredFingerprint.of(fingerprint)
            entry = Checkpoint(file_key, dev, ino, stored, offset, path, time.time())
            if old is None or (old.fingerprint, old.path, old.dev, old.ino) != (stored, path, dev, ino):
                self._dirty.add(file_key)
            self._entries[file_key] = entry
            self._deleted.discard(file_key)

    def touch(self, file_keys: list[str]) -> None:
        """Mark followed files as seen now (GC clock); written with the next flush."""
        now = time.time()
        with self._lock:
            for key in file_keys:
                old = self._entries.get(key)
                if old is not None:
                    self._entries[key] = replace(old, last_seen=now)
                    self._dirty.add(key)

    def commit(self, file_key: str, offset: int) -> None:
        """Everything of `file_key` up to `offset` is delivered."""
        with self._lock:
            old = self._entries.get(file_key)
            if old is None or offset <= old.offset:
                return
            self._entries[file_key] = replace(old, offset=offset)
            self._dirty.add(file_key)

    def forget(self, file_key: str) -> None:
        with self._lock:
            if self._entries.pop(file_key, None) is not None:
                self._dirty.discard(file_key)
                self._deleted.add(file_key)

    def collect_garbage(self, forget_after_s: float, keep: set[str]) -> list[str]:
        """Forget entries not seen for `forget_after_s` (except `keep`, the files still followed)."""
        cutoff = time.time() - forget_after_s
        gone = [e.file_key for e in self.entries() if e.last_seen < cutoff and e.file_key not in keep]
        for key in gone:
            self.forget(key)
        return gone

    # -- durability ----------------------------------------------------------------------------
    def has_pending(self) -> bool:
        """Something is waiting for `flush()` (a durable store with dirty or forgotten entries)."""
        return self.state_dir is not None and bool(self._dirty or self._deleted)

    def flush(self) -> bool:
        """Write dirty entries in one transaction. Returns False (and keeps them dirty) on failure.

        The entry lock is held only to snapshot, so `commit()` on the event loop never waits for the
        disk; `_io_lock` serialises writers."""
        if self.state_dir is None:
            return True
        with self._io_lock:
            with self._lock:
                dirty = [self._entries[k] for k in self._dirty if k in self._entries]
                deleted = list(self._deleted)
                self._dirty.clear()
                self._deleted.clear()
            if not dirty and not deleted:
                return True
            try:
                db = self._connect()
                with db:
                    db.executemany(_INSERT, [_row(e) for e in dirty])
                    db.executemany("DELETE FROM checkpoints WHERE file_key = ?", [(k,) for k in deleted])
            except (sqlite3.Error, OSError) as error:
                self.errors += 1
                self._close_db()
                with self._lock:
                    self._dirty.update(e.file_key for e in dirty if e.file_key in self._entries)
                    self._deleted.update(k for k in deleted if k not in self._entries)
                if not self._failing:
                    self._failing = True
                    events.emit(Event.CHECKPOINT_ERROR, state_dir=str(self.state_dir), error=str(error))
                return False
            self.writes += 1
            self._failing = False
            events.emit(Event.CHECKPOINT_WRITTEN, entries=len(dirty), forgotten=len(deleted))
            return True

    def close(self) -> None:
        self.flush()
        with self._io_lock:
            self._close_db()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            assert self.state_dir is not None
            prepare_state_files(self.state_dir)
            db = sqlite3.connect(self.state_dir / DB_FILE_NAME, check_same_thread=False, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                _hash_raw_fingerprints(db)
                db.execute(_SCHEMA)
                db.isolation_level = "DEFERRED"
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db

    def _close_db(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    def _load(self) -> None:
        assert self.state_dir is not None
        if not (self.state_dir / DB_FILE_NAME).exists():
            return
        try:
            db = self._connect()
            rows = db.execute(f"SELECT {_COLUMNS} FROM checkpoints").fetchall()
        except (sqlite3.Error, OSError) as error:
            self.errors += 1
            self._failing = True
            self._close_db()
            events.emit(Event.CHECKPOINT_ERROR, state_dir=str(self.state_dir), error=str(error))
            return
        for key, dev, ino, fingerprint_len, fingerprint_sha256, offset, path, last_seen in rows:
            fingerprint = StoredFingerprint(fingerprint_len, bytes(fingerprint_sha256))
            self._entries[key] = Checkpoint(key, dev, ino, fingerprint, offset, path, last_seen)


def _row(entry: Checkpoint) -> tuple[object, ...]:
    """`entry` as the values of `_INSERT`."""
    e = entry
    return (
        e.file_key,
        e.dev,
        e.ino,
        e.fingerprint.length,
        e.fingerprint.sha256,
        e.offset,
        e.path,
        e.last_seen,
    )


def prepare_state_files(state_dir: Path) -> None:
    """Make the state directory (0700) and the database file (0600), tightening wider modes of ours,
    and refuse a symlink or non-regular file at any database path (checked with O_NOFOLLOW).
    Raises UnsafeStateFile (an OSError) or OSError."""
    state_dir.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
    st = os.stat(state_dir)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(state_dir, stat.S_IMODE(st.st_mode) & ~0o077)
    for suffix in ("", *DB_COMPANIONS):
        path = state_dir / (DB_FILE_NAME + suffix)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | (os.O_CREAT if not suffix else 0)
        try:
            fd = os.open(path, flags, STATE_FILE_MODE)
        except FileNotFoundError:
            continue  # a companion SQLite has not made yet
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise UnsafeStateFile(
                    errno.ELOOP,
                    f"{path} is a symlink (to {_link_target(path)}); refusing to open it: the state "
                    "directory holds only our own files, remove the link",
                ) from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeStateFile(
                    errno.EINVAL, f"{path} is not a regular file; refusing to open it: remove it"
                )
            if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
                os.fchmod(fd, STATE_FILE_MODE)
        finally:
            os.close(fd)


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _hash_raw_fingerprints(db: sqlite3.Connection) -> None:
    """Migrate a database that stored raw fingerprints (the first KiB of every file) to hashes, in
    one transaction (offsets kept: nothing is re-read), then VACUUM and truncate the WAL so the raw
    bytes are gone from the files, not only from the table. Autocommit connection."""
    columns = [row[1] for row in db.execute("PRAGMA table_info(checkpoints)")]
    if "fingerprint" not in columns:
        return
    rows = db.execute(
        "SELECT file_key, dev, ino, fingerprint, offset, path, last_seen FROM checkpoints"
    ).fetchall()
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DROP TABLE checkpoints")
        db.execute(_SCHEMA)
        db.executemany(
            _INSERT,
            [
                _row(Checkpoint(key, dev, ino, StoredFingerprint.of(bytes(raw)), offset, path, last_seen))
                for key, dev, ino, raw, offset, path, last_seen in rows
            ],
        )
        db.execute("COMMIT")
    except sqlite3.Error:
        db.execute("ROLLBACK")
        raise
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    events.emit(Event.CHECKPOINT_WRITTEN, entries=len(rows), forgotten=0, migrated="fingerprints hashed")
