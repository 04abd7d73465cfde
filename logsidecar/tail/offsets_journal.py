"""The offsets journal: an append-only file of acknowledged offsets (`<state_dir>/offsets.journal`).

Why. At 1,000 lines/s (~50 settles/s, caches cold in between) a SQLite commit per settle costs
~200 us of CPU above the offset's update in memory in the commit thread (the thread's wake-up
included), ~135 us inline, and ~135 us with locking_mode=EXCLUSIVE (which would also lock out every
other reader of the database); an append to the journal ~45 us, with no thread, holding the caller
115 / 180 / 245 us (p50 / p99 / max, the update in memory included; the hand-off to the thread held
it 90 / 160 / 230). `benchmarks/commit_cost.py`; end to end (`benchmarks/kill9.py --compare-with`):
1,000 lines/s took 3.8-4.0 % of a core with a commit per settle, 3.0-3.2 % with the journal,
3.2-3.3 % with the old once-a-second writes.

How (the store, `checkpoints.CheckpointStore`, appends and folds; this module holds the format):
- A record is one line `<offset> <file_key> <crc32>\n` (crc of the generation, offset and key); it
  is in the page cache when write() returns, so it survives a kill -9 like a NORMAL commit does.
  Appended only under the store's writer lock taken without waiting, so it never races a flush, and
  the caller (the event loop) never waits for one: when the lock is busy, the commit thread serves it.
- The journal belongs to one generation, named by its first line and by the `journal` table of
  the database. Every flush with journaled offsets writes them into the database and bumps the
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
  the store's `sync()` within the interval, as the commits did.
- The file is opened with O_NOFOLLOW and mode 0600 (`state_files`); anything but a regular file at
  its path is refused.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import zlib
from pathlib import Path

from logsidecar.tail.state_files import JOURNAL_FILE_NAME, STATE_FILE_MODE, UnsafeStateFile

JOURNAL_SCHEMA = "CREATE TABLE IF NOT EXISTS journal (generation INTEGER NOT NULL)"


class OffsetsJournal:
    """The journal file of one store, open for appends once started (callers hold the writer lock)."""

    def __init__(self) -> None:
        self._fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def start(self, state_dir: Path, generation: int) -> None:
        """Empty the journal and start it with `generation`. Raises OSError (the journal is closed)."""
        if self._fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            self._fd = os.open(state_dir / JOURNAL_FILE_NAME, flags, STATE_FILE_MODE)
        try:
            os.ftruncate(self._fd, 0)
            header = journal_header(generation)
            if os.write(self._fd, header) != len(header):
                raise OSError(errno.ENOSPC, "short write")
        except OSError:
            self.close()
            raise

    def append(self, records: bytes) -> None:
        """Append `records` (from `journal_record`) with one write(). Raises OSError."""
        assert self._fd is not None
        if os.write(self._fd, records) != len(records):
            raise OSError(errno.ENOSPC, "short write")

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def database_generation(db: sqlite3.Connection) -> int:
    """The generation in the `journal` table of `db`, creating it (generation 0) if missing."""
    db.execute(JOURNAL_SCHEMA)
    row = db.execute("SELECT generation FROM journal").fetchone()
    if row is None:
        db.execute("INSERT INTO journal (generation) VALUES (0)")
    return int(row[0]) if row is not None else 0


def journal_header(generation: int) -> bytes:
    return b"logsidecar-offsets %d %08x\n" % (generation, zlib.crc32(b"%d" % generation))


def journal_record(generation: int, offset: int, file_key: str) -> bytes:
    """Raises ValueError (UnicodeEncodeError included) for a key a record cannot hold."""
    key = file_key.encode("utf-8", "surrogateescape")
    if b"\n" in key:
        raise ValueError("newline in a file key")
    body = b"%d %s" % (offset, key)
    return b"%s %08x\n" % (body, zlib.crc32(b"%d %s" % (generation, body)))


def read_journal(path: Path, generation: int) -> dict[str, int]:
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
    if not lines or lines[0] + b"\n" != journal_header(generation):
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
