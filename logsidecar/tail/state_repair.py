"""Repair of a corrupt checkpoint database: move it aside, salvage what still reads, start anew.

Why. A database SQLite cannot read (not a database, a malformed schema or page, a truncated file)
fails every open the same way: left in place, every restart reports it and re-reads every file
from its start position, forever. The store (`checkpoints.CheckpointStore._load`) calls `repair`
once, at start, when the error says corruption (`is_corruption`); storage failures (full disk,
read-only directory, a refused symlink) are not corruption and keep their report-and-retry path.

How:
- The database, its `-wal`/`-shm` and the offsets journal (it belongs to the database by its
  generation) are renamed to `<name>.corrupt-<UTC timestamp>` in the same directory (the WAL
  companions as `<db copy>-wal`/`-shm`, so SQLite finds them when the copy is opened). rename()
  never follows a link; the copies keep (or are tightened to) 0600 and are never deleted by us.
- Rows are salvaged from the copy, read-only: a scan in rowid order that, when a page fails, skips
  ahead (by doubling steps) to the next rowid that reads. SQLite's `.recover` is a shell command,
  not part of Python's sqlite3. Rows with values of the wrong type are dropped. The journal of the
  copy's generation, if it still reads, raises the salvaged offsets as on a normal open.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

from logsidecar.events import CheckpointError
from logsidecar.tail.offsets_journal import read_journal
from logsidecar.tail.options import StartAt
from logsidecar.tail.state_files import DB_COMPANIONS, DB_FILE_NAME, JOURNAL_FILE_NAME, STATE_FILE_MODE

_CORRUPTION_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_SKIP_LIMIT = 1 << 40  # the farthest a salvage scan looks past an unreadable rowid

Row = tuple[str, int, int, int, bytes, int, str, float]


class CorruptState(sqlite3.DatabaseError):
    """The database opens but is not ours to trust: a wrong schema, or `PRAGMA quick_check` fails."""


@dataclass
class Repair:
    """What `repair` did: where the files went, the rows it salvaged, how many it could not."""

    moved: list[Path] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    lost: int | None = None  # None: the copy could not even be counted


def is_corruption(error: BaseException) -> bool:
    return isinstance(error, CorruptState) or (
        isinstance(error, sqlite3.DatabaseError)
        and getattr(error, "sqlite_errorcode", None) in _CORRUPTION_CODES
    )


def check_schema(db: sqlite3.Connection, columns: str) -> None:
    """Raise CorruptState if a `checkpoints` or `journal` table exists without the columns we use."""
    wanted = {"checkpoints": {c.strip() for c in columns.split(",")}, "journal": {"generation"}}
    for table, needed in wanted.items():
        found = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if found and not needed <= found:
            raise CorruptState(f"table {table} lacks the columns {sorted(needed - found)}: not our schema")


def quick_check(db: sqlite3.Connection) -> None:
    """Raise CorruptState if `PRAGMA quick_check` finds damage (it reads every page once)."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise CorruptState("quick_check: " + "; ".join(problems))


def move_aside(state_dir: Path, columns: str) -> Repair:
    """Move the database files aside and salvage rows from the copy. Raises OSError if the database
    itself cannot be moved (nothing is then changed); a companion that cannot be moved is left."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    suffix = f".corrupt-{stamp}"
    n = 1
    while any(os.path.lexists(state_dir / (name + suffix)) for name in (DB_FILE_NAME, JOURNAL_FILE_NAME)):
        n += 1  # a second repair in the same second: never overwrite a kept copy
        suffix = f".corrupt-{stamp}-{n}"
    result = Repair()
    copy = state_dir / (DB_FILE_NAME + suffix)
    _move(state_dir / DB_FILE_NAME, copy)
    result.moved.append(copy)
    for companion in DB_COMPANIONS:
        if _move_if_present(state_dir / (DB_FILE_NAME + companion), Path(f"{copy}{companion}")):
            result.moved.append(Path(f"{copy}{companion}"))
    journal = state_dir / (JOURNAL_FILE_NAME + suffix)
    if _move_if_present(state_dir / JOURNAL_FILE_NAME, journal):
        result.moved.append(journal)
    _salvage(copy, journal, columns, result)
    return result


def repair(
    state_dir: Path, error: BaseException, columns: str, start_at: StartAt | None
) -> tuple[list[Row], CheckpointError]:
    """If `error` says corruption, move the database aside (`move_aside`). Returns the rows salvaged
    and the one `checkpoint_error` to report (`moved_to` only if it was moved)."""
    if not is_corruption(error):
        return [], CheckpointError(state_dir=str(state_dir), error=str(error))
    try:
        done = move_aside(state_dir, columns)
    except OSError as move_error:  # left in place: every open fails, reported once, retried
        return [], CheckpointError(state_dir=str(state_dir), error=f"{error}; moving it aside: {move_error}")
    return done.rows, repair_report(state_dir, error, done, start_at)


def repair_report(
    state_dir: Path, error: BaseException, done: Repair, start_at: StartAt | None
) -> CheckpointError:
    """The one `checkpoint_error` that says what happened and what will be re-read."""
    lost = "an unknown number of" if done.lost is None else str(done.lost)
    start = {
        StartAt.END: "files present now start at their end (--start-at end)",
        StartAt.BEGINNING: "files present now are read from the beginning (--start-at beginning)",
        None: "files present now start per --start-at (end: at their end; beginning: from byte 0)",
    }[start_at]
    return CheckpointError(
        state_dir=str(state_dir),
        error=f"corrupt checkpoint database: {error}",
        moved_to=str(done.moved[0]),
        moved=[str(p) for p in done.moved],
        salvaged=len(done.rows),
        lost=done.lost,
        action=(
            f"moved aside to {done.moved[0]} (kept, 0600) and started a fresh database; "
            f"{len(done.rows)} checkpoints salvaged resume where they were; {lost} checkpoints could "
            f"not be recovered: for their files, {start}; files created later are read from the beginning"
        ),
    )


def _move(source: Path, target: Path) -> None:
    os.rename(source, target)  # renames a link itself, never its target
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != STATE_FILE_MODE:
            os.fchmod(fd, STATE_FILE_MODE)
    finally:
        os.close(fd)


def _move_if_present(source: Path, target: Path) -> bool:
    try:
        _move(source, target)
    except FileNotFoundError:
        return False
    except OSError:
        return False  # left in place: SQLite ignores a WAL that does not match the new database
    return True


def _salvage(copy: Path, journal: Path, columns: str, result: Repair) -> None:
    try:
        db = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error:
        return
    try:
        result.rows = [row for row in _readable_rows(db, columns) if _well_typed(row)]
        try:
            result.lost = max(
                0, int(db.execute("SELECT count(*) FROM checkpoints").fetchone()[0]) - len(result.rows)
            )
        except sqlite3.Error:
            result.lost = None
        try:
            generation = db.execute("SELECT generation FROM journal").fetchone()
        except sqlite3.Error:
            generation = None
    finally:
        db.close()
    if generation is None or not result.rows:
        return
    try:
        offsets = read_journal(journal, int(generation[0]))
    except (OSError, ValueError):
        return
    result.rows = [
        (key, dev, ino, length, sha, max(offset, offsets.get(key, 0)), path, seen)
        for key, dev, ino, length, sha, offset, path, seen in result.rows
    ]


def _readable_rows(db: sqlite3.Connection, columns: str) -> Iterator[tuple[object, ...]]:
    """Every row that still reads, in rowid order. Past an unreadable page the scan starts again at
    rowids further and further on (doubling steps: a few readable rows just past the damage may be
    skipped; at most ~40 tries per damaged range). An error that is not damage (a missing column)
    ends it."""
    start, step = 0, 1  # our rowids start at 1
    while step <= _SKIP_LIMIT:
        last = None
        try:
            for rowid, *row in db.execute(
                f"SELECT rowid, {columns} FROM checkpoints WHERE rowid >= ? ORDER BY rowid", (start,)
            ):
                last = rowid
                yield tuple(row)
            return
        except sqlite3.Error as error:
            if not is_corruption(error):
                return
        if last is not None:
            start, step = last + 1, 1
        start, step = start + step, step * 2


def _well_typed(row: tuple[object, ...]) -> TypeGuard[Row]:
    key, dev, ino, length, sha, offset, path, seen = row
    return (
        isinstance(key, str)
        and all(isinstance(v, int) and v >= 0 for v in (dev, ino, length, offset))
        and isinstance(sha, bytes)
        and len(sha) == 32
        and isinstance(path, str)
        and isinstance(seen, (int, float))
    )
