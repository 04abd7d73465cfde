"""A checkpoint store as logsidecar wrote it before fingerprints were hashed: the table of that
version, each row's fingerprint the file's first bytes in clear. What an upgrade finds on disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from logsidecar.tail.state_files import DB_FILE_NAME

# (file_key, dev, ino, fingerprint: the first bytes in clear, offset, path, last_seen)
OldRow = tuple[str, int, int, bytes, int, str, float]


def write_old_checkpoint_store(state_dir: Path, rows: list[OldRow]) -> Path:
    """The database of that version in `state_dir` (WAL, as the store used), holding `rows`."""
    path = state_dir / DB_FILE_NAME
    old = sqlite3.connect(path)
    old.execute("PRAGMA journal_mode=WAL")
    old.execute(
        "CREATE TABLE checkpoints (file_key TEXT PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL,"
        " fingerprint BLOB NOT NULL, offset INTEGER NOT NULL, path TEXT NOT NULL, last_seen REAL NOT NULL)"
    )
    with old:
        old.executemany("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    old.close()
    return path
