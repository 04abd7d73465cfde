"""The files of the state directory and the rules they are kept by.

The state directory holds only our own files: the checkpoint database (`checkpoints.sqlite`, with
SQLite's WAL companions `-wal` and `-shm`) and the offsets journal (`offsets.journal`, see
`offsets_journal`).

Invariants:
- The state directory is 0700 and its files 0600 (created so, tightened if found wider, when they
  are ours); the files are checked without following symlinks (O_NOFOLLOW), and a symlink (or
  anything but a regular file) planted at one of their paths is refused with `UnsafeStateFile`,
  whose message says which and what to do (the store reports it as `checkpoint_error`).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

DB_FILE_NAME = "checkpoints.sqlite"
# SQLite's companions of the database file (WAL mode); it creates them with the database's mode.
DB_COMPANIONS = ("-wal", "-shm")
JOURNAL_FILE_NAME = "offsets.journal"
STATE_DIR_MODE = 0o700
STATE_FILE_MODE = 0o600


class UnsafeStateFile(OSError):
    """A database file of the state directory is a symlink or not a regular file: never opened."""


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
