"""Crash-safe committed offsets, keyed by file identity (`file_key`).

Storage: SQLite in WAL mode (`<state_dir>/checkpoints.sqlite`), one transaction per `flush()`, so a
crash (or a kill -9) leaves either the previous or the new set of offsets, never a torn one; and an
append-only journal of acknowledged offsets (`<state_dir>/offsets.journal`, see "The journal").
With `state_dir=None` everything stays in memory (nothing survives a restart).

Durability, two levels (the tailer drives both, see `Tailer.acknowledge`):
- `flush()` commits with `synchronous=NORMAL`: the transaction is in the WAL file (in the kernel's
  page cache) when it returns, which survives the death of this process (kill -9, OOM kill, a
  crash), not a power loss. It costs a write() and no fsync. Every settle makes its acknowledged
  offsets durable before the pipeline sends more (`flush_soon`): a group commit per settle.
- `flush_soon()` makes what is pending durable. The common case, offsets alone moved, is one
  append to the journal, done at once on the caller's thread (below). Anything else (a new or
  changed identity, a forgotten file, a flush already running, a journal that cannot be written)
  goes to a commit thread of the store: every request made before its flush starts is served by it
  (group commit), and the future it returns says when.
- `sync()` makes everything flushed so far survive a power loss too: a passive WAL checkpoint, which
  fsyncs the WAL (and then the database). The tailer calls it every `checkpoint_interval_s` while
  acknowledgements arrive, and on close. Why keep it: without it the WAL is fsynced only when SQLite
  checkpoints on its own (every ~1000 pages), so after a power cut a restart could resume from
  offsets minutes old (duplicates, not loss) and, worse, could miss the identity of a file first seen
  since then (if it is rotated while we are down, its content is not found). One fsync per second
  costs nothing measurable; one per settle (`FULL`) would cost an fsync per batch.

The journal: why. At 1,000 lines/s (~50 settles/s, caches cold in between) a SQLite commit per
settle costs ~200 us of CPU above the offset's update in memory in the commit thread (the thread's
wake-up included), ~135 us inline, and ~135 us with locking_mode=EXCLUSIVE (which would also lock
out every other reader of the database); an append to the journal ~45 us, with no thread, holding
the caller 115 / 180 / 245 us (p50 / p99 / max, the update in memory included; the hand-off to the
thread held it 90 / 160 / 230). `benchmarks/commit_cost.py`; end to end (`benchmarks/kill9.py
--compare-with`): 1,000 lines/s took 3.8-4.0 % of a core with a commit per settle, 3.0-3.2 % with
the journal, 3.2-3.3 % with the old once-a-second writes. How:
- A record is one line `<offset> <file_key> <crc32>\n` (crc of the generation, offset and key); it
  is in the page cache when write() returns, so it survives a kill -9 like a NORMAL commit does.
  Appended only under the writer lock taken without waiting, so it never races a flush, and the
  caller (the event loop) never waits for one: when the lock is busy, the commit thread serves it.
- The journal belongs to one generation, named by its first line and by the `journal` table of
  the database. Every `flush()` with journaled offsets writes them into the database and bumps the
  generation in the same transaction, then empties the journal and starts it with the new
  generation (the tailer flushes every `checkpoint_interval_s`, so it holds about a second of
  records). A journal whose generation is not the database's is already in it and is ignored: a
  crash between the two steps, or a forgotten then re-created key, can never bring back an old
  offset.
- On open, records of the current generation raise the offsets they name (the highest wins; a key
  the database does not know is skipped). A torn or corrupt record (a crash mid-append, a power
  cut) fails its crc or lacks its newline and is ignored: its offset is lost, never invented, so
  the worst case is a replay, never a loss. The next flush folds them in and starts a new journal.
- Power loss: the journal is not fsynced; what it holds reaches the database and the fsync of
  `sync()` within the interval, as the commits did.

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
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

from logsidecar import events
from logsidecar.events import Event
from logsidecar.tail.identity import Inode, StoredFingerprint

DB_FILE_NAME = "checkpoints.sqlite"
# SQLite's companions of the database file (WAL mode); it creates them with the database's mode.
DB_COMPANIONS = ("-wal", "-shm")
JOURNAL_FILE_NAME = "offsets.journal"  # see "The journal"
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
_JOURNAL_SCHEMA = "CREATE TABLE IF NOT EXISTS journal (generation INTEGER NOT NULL)"
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

    @property
    def inode(self) -> Inode:
        return Inode(self.dev, self.ino)


class CheckpointStore:
    """Committed offsets per file_key; `flush()` makes them durable."""

    def __init__(self, state_dir: Path | None) -> None:
        self.state_dir = state_dir
        self._entries: dict[str, Checkpoint] = {}
        self._dirty: set[str] = set()  # whole entries to write
        self._moved: set[str] = set()  # entries whose offset alone changed (the common case: one UPDATE)
        self._deleted: set[str] = set()
        self._lock = threading.Lock()  # guards the entries; flush() may run in a worker thread
        self._io_lock = threading.Lock()  # one writer at a time
        self._db: sqlite3.Connection | None = None
        self._failing = False
        self._closed = False
        # group commit (`flush_soon`): the flush the commit thread runs next, shared by its requesters
        self._wake = threading.Condition()
        self._next_flush: Future[bool] | None = None
        self._commit_thread: threading.Thread | None = None
        self._stopping = False
        self._unsynced = False  # flushed (NORMAL) since the last sync(): not yet safe from power loss
        self._journal_fd: int | None = None  # open (and started) for appends, see "The journal"
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
            new_journal = bool(journaled) or self._journal_fd is None
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
                    self._start_journal()
            except (sqlite3.Error, OSError) as error:
                self.errors += 1
                self._close_db()
                with self._lock:
                    self._dirty.update(e.file_key for e in dirty if e.file_key in self._entries)
                    self._moved.update(k for _, k in moved if k in self._entries)
                    self._deleted.update(k for k in deleted if k not in self._entries)
                if not self._failing:
                    self._failing = True
                    events.emit(Event.CHECKPOINT_ERROR, state_dir=str(self.state_dir), error=str(error))
                return False
            self.writes += 1
            self._unsynced = True
            self._failing = False
            events.emit(Event.CHECKPOINT_WRITTEN, entries=len(dirty) + len(moved), forgotten=len(deleted))
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
        with self._wake:
            if self._stopping or self.state_dir is None:
                done: Future[bool] = Future()
                done.set_result(self.state_dir is None)
                return done
            if self._next_flush is None:
                self._next_flush = Future()
                self._next_flush.set_running_or_notify_cancel()  # a waiter's cancel() cannot void it
                if self._commit_thread is None:
                    self._commit_thread = threading.Thread(
                        target=self._commit_loop, name="logsidecar-checkpoints", daemon=True
                    )
                    self._commit_thread.start()
                self._wake.notify()
            return self._next_flush

    def _append_moved(self) -> bool:
        """Append the moved offsets to the journal if that alone makes everything pending durable;
        never waits for the writer lock. True when nothing is left pending."""
        if self._journal_fd is None or not self._io_lock.acquire(blocking=False):
            return False
        try:
            fd = self._journal_fd
            if fd is None or self._closed:
                return False
            with self._lock:
                if self._dirty or self._deleted:
                    return False
                moved = [(self._entries[k].offset, k) for k in self._moved if k in self._entries]
                if not moved:
                    return True
                try:
                    records = b"".join(
                        _journal_record(self._generation, offset, key) for offset, key in moved
                    )
                except ValueError:  # a key a record cannot hold (a newline): the database takes it
                    return False
                self._moved.clear()
            try:
                if os.write(fd, records) != len(records):
                    raise OSError(errno.ENOSPC, "short write")
            except OSError:
                # The flush of the commit thread writes them; the journal is started anew by it
                # (a torn record may end this one).
                with self._lock:
                    self._moved.update(k for _, k in moved if k in self._entries)
                self._close_journal()
                return False
            with self._lock:
                self._journaled.update(k for _, k in moved)
            self.appends += 1
            return True
        finally:
            self._io_lock.release()

    def _start_journal(self) -> None:
        """Empty the journal and start it with the current generation (writer lock held)."""
        assert self.state_dir is not None
        if self._journal_fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            self._journal_fd = os.open(self.state_dir / JOURNAL_FILE_NAME, flags, STATE_FILE_MODE)
        try:
            os.ftruncate(self._journal_fd, 0)
            header = _journal_header(self._generation)
            if os.write(self._journal_fd, header) != len(header):
                raise OSError(errno.ENOSPC, "short write")
        except OSError:
            self._close_journal()
            raise

    def _close_journal(self) -> None:
        if self._journal_fd is not None:
            try:
                os.close(self._journal_fd)
            except OSError:
                pass
            self._journal_fd = None

    def _commit_loop(self) -> None:
        while True:
            with self._wake:
                while self._next_flush is None and not self._stopping:
                    self._wake.wait()
                if self._next_flush is None:
                    return
                current, self._next_flush = self._next_flush, None
            written = False
            try:
                written = self.flush()
            except Exception as error:  # noqa: BLE001 - a bug here must not leave requesters waiting
                events.emit(Event.CHECKPOINT_ERROR, state_dir=str(self.state_dir), error=repr(error))
            finally:
                current.set_result(written)

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
                    events.emit(Event.CHECKPOINT_ERROR, state_dir=str(self.state_dir), error=str(error))
                return False
            self._unsynced = False
            self.syncs += 1
            return True

    def close(self) -> None:
        with self._wake:  # the commit thread serves what was asked, then ends
            self._stopping = True
            thread, self._commit_thread = self._commit_thread, None
            self._wake.notify()
        if thread is not None:
            thread.join()
        self.flush()
        self.sync()
        with self._io_lock:
            self._close_db()
            self._close_journal()
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
                db.execute(_SCHEMA)
                db.execute(_JOURNAL_SCHEMA)
                row = db.execute("SELECT generation FROM journal").fetchone()
                if row is None:
                    db.execute("INSERT INTO journal (generation) VALUES (0)")
                self._generation = row[0] if row is not None else 0
                db.isolation_level = "DEFERRED"
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db

    def _close_db(self) -> None:
        self._close_journal()  # its generation is the database's: started again with it
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
        try:
            journal = _read_journal(self.state_dir / JOURNAL_FILE_NAME, self._generation)
        except OSError as error:  # unreadable: the database's offsets stand (a replay, not a loss)
            self.errors += 1
            events.emit(Event.CHECKPOINT_ERROR, state_dir=str(self.state_dir), error=str(error))
            journal = {}
        for key, offset in journal.items():
            old = self._entries.get(key)
            if old is not None and offset > old.offset:
                self._entries[key] = replace(old, offset=offset)
                self._journaled.add(key)  # the next flush folds them in and starts a new journal


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
        for key, offset in _read_journal(state_dir / JOURNAL_FILE_NAME, row[0]).items():
            if key in offsets:
                offsets[key] = max(offsets[key], offset)
    return offsets


def _journal_header(generation: int) -> bytes:
    return b"logsidecar-offsets %d %08x\n" % (generation, zlib.crc32(b"%d" % generation))


def _journal_record(generation: int, offset: int, file_key: str) -> bytes:
    """Raises ValueError (UnicodeEncodeError included) for a key a record cannot hold."""
    key = file_key.encode("utf-8", "surrogateescape")
    if b"\n" in key:
        raise ValueError("newline in a file key")
    body = b"%d %s" % (offset, key)
    return b"%s %08x\n" % (body, zlib.crc32(b"%d %s" % (generation, body)))


def _read_journal(path: Path, generation: int) -> dict[str, int]:
    """The highest offset per key in the journal at `path`, if it belongs to `generation`; records
    that are torn or fail their crc are skipped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeStateFile(
                errno.EINVAL, f"{path} is not a regular file; refusing to read it: remove it"
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read()
    finally:
        os.close(fd)
    lines = data.split(b"\n")[:-1]  # the part after the last newline is torn
    if not lines or lines[0] + b"\n" != _journal_header(generation):
        return {}  # another generation's (already in the database), or none
    offsets: dict[str, int] = {}
    for line in lines[1:]:
        body, _, crc = line.rpartition(b" ")
        offset, _, key = body.partition(b" ")
        try:
            if b"%08x" % zlib.crc32(b"%d %s" % (generation, body)) != crc or not offset.isdigit():
                continue
            name = key.decode("utf-8", "surrogateescape")
        except (ValueError, UnicodeDecodeError):
            continue
        offsets[name] = max(int(offset), offsets.get(name, 0))
    return offsets


def prepare_state_files(state_dir: Path) -> None:
    """Make the state directory (0700) and the database file (0600), tightening wider modes of ours,
    and refuse a symlink or non-regular file at any database path (checked with O_NOFOLLOW).
    Raises UnsafeStateFile (an OSError) or OSError."""
    state_dir.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
    st = os.stat(state_dir)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(state_dir, stat.S_IMODE(st.st_mode) & ~0o077)
    for name in (DB_FILE_NAME, *(DB_FILE_NAME + suffix for suffix in DB_COMPANIONS), JOURNAL_FILE_NAME):
        path = state_dir / name
        creates = name in (DB_FILE_NAME, JOURNAL_FILE_NAME)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | (os.O_CREAT if creates else 0)
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
