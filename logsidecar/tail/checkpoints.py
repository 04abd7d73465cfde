"""Crash-safe committed offsets, keyed by file identity (`file_key`).

Storage: SQLite in WAL mode (`<state_dir>/checkpoints.sqlite`), one transaction per `flush()`, so a
crash (or a kill -9) leaves either the previous or the new set of offsets, never a torn one; and an
append-only journal of acknowledged offsets (`<state_dir>/offsets.journal`, see `offsets_journal`).
With `state_dir=None` everything stays in memory (nothing survives a restart).

Durability, two levels (the tailer drives both, see `Tailer.acknowledge`):
- `flush()` commits with `synchronous=NORMAL`: the transaction is in the WAL file (in the kernel's
  page cache) when it returns, which survives the death of this process (kill -9, OOM kill, a
  crash), not a power loss. It costs a write() and no fsync. Every settle makes its acknowledged
  offsets durable before the pipeline sends more (`flush_soon`): a group commit per settle.
- `flush_soon()` makes what is pending durable. The common case, offsets alone moved, is one
  append to the journal, done at once on the caller's thread (see `offsets_journal`). Anything
  else (a new or changed identity, a forgotten file, a flush already running, a journal that
  cannot be written) goes to a commit thread of the store (`group_commit`): every request made
  before its flush starts is served by it (group commit), and the future it returns says when.
- `sync()` makes everything flushed so far survive a power loss too: a passive WAL checkpoint, which
  fsyncs the WAL (and then the database); the tailer calls it every `checkpoint_interval_s` while
  acknowledgements arrive, and on close. Without it, after a power cut a restart could resume from
  offsets minutes old (SQLite fsyncs the WAL every ~1000 pages) and miss the identity of a file first
  seen since then. One fsync per second costs nothing measurable; one per settle would not.

The journal (`offsets_journal`: why, its record format, generations, replay and fold): the store
appends acknowledged offsets to it (`flush_soon`), replays it on open (`_load`) and folds it into
the database with every `flush()` that has journaled offsets, in the same transaction as the bump
of its generation, then starts it anew.

Invariants:
- Only acknowledged offsets are stored: the tailer calls `commit(file_key, offset)` from
  `Tailer.acknowledge`, never from reading.
- An entry remembers the file's identity (dev, inode, fingerprint), its last path and when it was
  last seen; entries not seen for `forget_after_s` are garbage-collected.
- No log content is stored: the fingerprint is kept as its length and SHA-256 (`StoredFingerprint`).
  A database written before that (a raw `fingerprint` column) is migrated on open: hashed in place
  (offsets kept, nothing re-read), then VACUUMed so the raw bytes leave the file.
- The state directory's files follow `state_files` (0700/0600, no symlinks): a file refused there is
  reported as `checkpoint_error`, which says which and what to do.
- A storage failure (full disk, read-only state dir, vanished directory) never stops the tailer: it is
  reported once as `checkpoint_error` (`failing: true`, the `fix`; /healthz fails until the next
  `checkpoint_written`), the entries stay dirty in memory, and the next flush retries.
- A corrupt database (SQLite cannot read it, a wrong schema, `PRAGMA quick_check` failing at start)
  is moved aside with its journal, once, at start, keeping the rows that still read, and a fresh one
  is made (`state_repair`); one `checkpoint_error` says where it went and what will be re-read.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from logsidecar import events
from logsidecar.events import CheckpointError, CheckpointWritten
from logsidecar.tail.group_commit import GroupCommit
from logsidecar.tail.identity import Inode, StoredFingerprint
from logsidecar.tail.offsets_journal import OffsetsJournal, database_generation, journal_record, read_journal
from logsidecar.tail.options import StartAt
from logsidecar.tail.state_files import DB_FILE_NAME, JOURNAL_FILE_NAME, prepare_state_files, state_error_text
from logsidecar.tail.state_repair import check_schema, quick_check, repair

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


@dataclass(frozen=True, slots=True)
class Checkpoint:
    file_key: str
    dev: int
    ino: int
    fingerprint: StoredFingerprint  # length and hash of the first bytes, never the bytes
    offset: int  # committed (acknowledged) offset
    path: str
    last_seen: float  # wall-clock seconds

    @property
    def inode(self) -> Inode:
        return Inode(self.dev, self.ino)


class CheckpointStore:
    """Committed offsets per file_key; `flush()` makes them durable."""

    def __init__(self, state_dir: Path | None, start_at: StartAt | None = None) -> None:
        self.state_dir = state_dir
        self._start_at = start_at  # only to say, after a repair, where files without a checkpoint start
        self._entries: dict[str, Checkpoint] = {}
        self._dirty: set[str] = set()  # whole entries to write
        self._moved: set[str] = set()  # entries whose offset alone changed (the common case: one UPDATE)
        self._deleted: set[str] = set()
        self._lock = threading.Lock()  # guards the entries; flush() may run in a worker thread
        self._io_lock = threading.Lock()  # one writer at a time
        self._db: sqlite3.Connection | None = None
        self._failing = False
        self._closed = False
        self._group = GroupCommit(self.flush, partial(_report_crash, state_dir), "logsidecar-checkpoints")
        self._unsynced = False  # flushed (NORMAL) since the last sync(): not yet safe from power loss
        self._journal = OffsetsJournal()  # open (and started) for appends, see `offsets_journal`
        self._generation = 0  # of the database's journal row, when connected
        self._journaled: set[str] = set()  # keys with records in the journal, for the next flush
        self._appended: Future[bool] = Future()  # what flush_soon() returns after an append: done
        self._appended.set_result(True)  # and shared (a done future cannot change: no waiter can void it)
        self.writes = 0
        self.appends = 0
        self.syncs = 0
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
            if file_key not in self._dirty:
                self._moved.add(file_key)

    def forget(self, file_key: str) -> None:
        with self._lock:
            if self._entries.pop(file_key, None) is not None:
                self._dirty.discard(file_key)
                self._moved.discard(file_key)
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
        return self.state_dir is not None and bool(self._dirty or self._moved or self._deleted)

    def flush(self) -> bool:
        """Write dirty entries in one transaction (process-crash durable when it returns). Returns
        False (and keeps them dirty) on failure.

        The entry lock is held only to snapshot, so `commit()` on the event loop never waits for the
        disk; `_io_lock` serialises writers."""
        if self.state_dir is None:
            return True
        with self._io_lock:
            if self._closed:
                return False  # a late writer after close(): close() already wrote everything
            with self._lock:
                dirty = [self._entries[k] for k in self._dirty if k in self._entries]
                moved = [
                    (self._entries[k].offset, k)
                    for k in (self._moved | self._journaled) - self._dirty
                    if k in self._entries
                ]
                deleted = list(self._deleted)
                journaled = self._journaled
                self._dirty.clear()
                self._moved.clear()
                self._deleted.clear()
                self._journaled = set()
            # journaled records to fold in, or no journal yet: this flush starts a new generation
            new_journal = bool(journaled) or not self._journal.is_open
            if not dirty and not moved and not deleted and not new_journal:
                return True
            try:
                db = self._connect()
                with db:
                    if dirty:
                        db.executemany(_INSERT, [_row(e) for e in dirty])
                    if moved:  # rewrites one table page, where a REPLACE rewrites the key's index too
                        db.executemany("UPDATE checkpoints SET offset = ? WHERE file_key = ?", moved)
                    if deleted:
                        db.executemany("DELETE FROM checkpoints WHERE file_key = ?", [(k,) for k in deleted])
                    if new_journal:
                        db.execute("UPDATE journal SET generation = ?", (self._generation + 1,))
                if new_journal:
                    self._generation += 1
                    self._journal.start(self.state_dir, self._generation)
            except (sqlite3.Error, OSError) as error:
                self.errors += 1
                self._close_db()
                with self._lock:
                    self._dirty.update(e.file_key for e in dirty if e.file_key in self._entries)
                    self._moved.update(k for _, k in moved if k in self._entries)
                    self._deleted.update(k for k in deleted if k not in self._entries)
                if not self._failing:
                    self._failing = True
                    _report_failing(self.state_dir, state_error_text(error))
                return False
            self.writes += 1
            self._unsynced = True
            self._failing = False
            events.emit(CheckpointWritten(entries=len(dirty) + len(moved), forgotten=len(deleted)))
            return True

    def flush_soon(self) -> Future[bool]:
        """Make what is pending durable; the returned future says when. When only offsets moved and
        no flush is running, they are appended to the journal now: the future is done (True) on
        return. Else the commit thread flushes: the future is done once a flush that started after
        this call has ended (its result is that flush's). Calls made before the flush starts share
        it, calls made while it runs share the next one: a group commit, one transaction for all
        of them, and the caller never waits for the disk. After `close()`: a done future (False)."""
        if self._append_moved():
            return self._appended
        requested = self._group.request() if self.state_dir is not None else None
        if requested is None:
            done: Future[bool] = Future()
            done.set_result(self.state_dir is None)
            return done
        return requested

    def _append_moved(self) -> bool:
        """Append the moved offsets to the journal if that alone makes everything pending durable;
        never waits for the writer lock. True when nothing is left pending."""
        if not self._journal.is_open or not self._io_lock.acquire(blocking=False):
            return False
        try:
            if not self._journal.is_open or self._closed:
                return False
            with self._lock:
                if self._dirty or self._deleted:
                    return False
                moved = [(self._entries[k].offset, k) for k in self._moved if k in self._entries]
                if not moved:
                    return True
                try:
                    records = b"".join(journal_record(self._generation, offset, key) for offset, key in moved)
                except ValueError:  # a key a record cannot hold (a newline): the database takes it
                    return False
                self._moved.clear()
            try:
                self._journal.append(records)
            except OSError:
                # The flush of the commit thread writes them; the journal is started anew by it
                # (a torn record may end this one).
                with self._lock:
                    self._moved.update(k for _, k in moved if k in self._entries)
                self._journal.close()
                return False
            with self._lock:
                self._journaled.update(k for _, k in moved)
            self.appends += 1
            return True
        finally:
            self._io_lock.release()

    def has_unsynced(self) -> bool:
        """Something was flushed or journaled since the last `sync()` (it survives a crash, not yet a
        power loss); `flush()` then `sync()` make it survive that too."""
        return self._unsynced or bool(self._journaled)

    def sync(self) -> bool:
        """Make every flushed transaction survive a power loss: a passive WAL checkpoint, which fsyncs
        the WAL first (`synchronous=NORMAL` semantics), then copies it into the database file."""
        if self.state_dir is None:
            return True
        with self._io_lock:
            if not self._unsynced or self._closed:
                return True
            try:
                self._connect().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except (sqlite3.Error, OSError) as error:
                self.errors += 1
                if not self._failing:
                    self._failing = True
                    _report_failing(self.state_dir, state_error_text(error))
                return False
            self._unsynced = False
            self.syncs += 1
            return True

    def close(self) -> None:
        self._group.stop()  # the commit thread serves what was asked, then ends
        self.flush()
        self.sync()
        with self._io_lock:
            self._close_db()
            self._journal.close()
            self._closed = True

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            assert self.state_dir is not None
            prepare_state_files(self.state_dir)
            db = sqlite3.connect(self.state_dir / DB_FILE_NAME, check_same_thread=False, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # see "Durability" above
                _hash_raw_fingerprints(db)
                check_schema(db, _COLUMNS)
                db.execute(_SCHEMA)
                self._generation = database_generation(db)
                db.isolation_level = "DEFERRED"
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db

    def _close_db(self) -> None:
        self._journal.close()  # its generation is the database's: started again with it
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
            quick_check(db)
            rows = db.execute(f"SELECT {_COLUMNS} FROM checkpoints").fetchall()
        except (sqlite3.Error, OSError) as error:
            self.errors += 1
            self._close_db()
            # corrupt: moved aside, once, with the rows that still read (`state_repair`)
            rows, report = repair(self.state_dir, error, _COLUMNS, self._start_at)
            self._failing = report.moved_to is None  # else the next flush makes a fresh database
            if self._failing:
                _report_failing(self.state_dir, report.error)
                return
            events.emit(report)
            self._dirty.update(row[0] for row in rows)
        self._entries.update(_entries_of(rows))
        try:
            journal = read_journal(self.state_dir / JOURNAL_FILE_NAME, self._generation)
        except OSError as error:  # unreadable: the database's offsets stand (a replay, not a loss)
            self.errors += 1
            events.emit(CheckpointError(state_dir=str(self.state_dir), error=str(error)))
            journal = {}
        # the next flush folds them in and starts a new journal
        self._journaled.update(_raise_offsets(self._entries, journal))


def _report_failing(state_dir: Path | None, error: str) -> None:
    """The state directory cannot be written (the store is now failing): said once, with the way
    out, until a write works again (`checkpoint_written`)."""
    events.emit(
        CheckpointError(
            state_dir=str(state_dir),
            error=error,
            failing=True,
            fix=f"make {state_dir} writable (full disk? read-only mount? owner?) or restart with "
            "--state-dir DIR; until then offsets are kept in memory only, and a restart reads again "
            "from the last checkpoint written",
        )
    )


def _report_crash(state_dir: Path | None, error: Exception) -> None:
    """A flush of the commit thread raised (a bug): its requesters are told False, not left waiting."""
    events.emit(CheckpointError(state_dir=str(state_dir), error=repr(error)))


def _entries_of(rows: list[Any]) -> dict[str, Checkpoint]:
    """The entries of rows read with `_COLUMNS`."""
    entries = {}
    for key, dev, ino, fingerprint_len, fingerprint_sha256, offset, path, last_seen in rows:
        fingerprint = StoredFingerprint(fingerprint_len, bytes(fingerprint_sha256))
        entries[key] = Checkpoint(key, dev, ino, fingerprint, offset, path, last_seen)
    return entries


def _raise_offsets(entries: dict[str, Checkpoint], journal: dict[str, int]) -> list[str]:
    """Raise the offsets of `entries` to those of the journal (a key it does not know is skipped);
    the keys raised."""
    raised = []
    for key, offset in journal.items():
        old = entries.get(key)
        if old is not None and offset > old.offset:
            entries[key] = replace(old, offset=offset)
            raised.append(key)
    return raised


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


def committed_offsets(state_dir: Path) -> dict[str, int]:
    """The durable offset per file_key in `state_dir`, read-only (for a process watching a running
    tailer, such as a benchmark): the database's, raised by its journal. Raises sqlite3.Error or
    OSError (no database yet: an empty dict)."""
    path = state_dir / DB_FILE_NAME
    if not path.exists():
        return {}
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0.5)
    try:
        offsets = dict(db.execute("SELECT file_key, offset FROM checkpoints").fetchall())
        row = db.execute("SELECT generation FROM journal").fetchone()
    finally:
        db.close()
    if row is not None:
        for key, offset in read_journal(state_dir / JOURNAL_FILE_NAME, row[0]).items():
            if key in offsets:
                offsets[key] = max(offsets[key], offset)
    return offsets


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
    events.emit(CheckpointWritten(entries=len(rows), forgotten=0, migrated="fingerprints hashed"))
