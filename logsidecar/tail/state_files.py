"""The files of the state directory and the rules they are kept by.

The state directory holds only our own files: the checkpoint database (`checkpoints.sqlite`, with
SQLite's WAL companions `-wal` and `-shm`) and the offsets journal (`offsets.journal`, see
`offsets_journal`).

Invariants:
- The state directory is 0700 and its files 0600 (created so, tightened if found wider, when they
  are ours); the files are checked without following symlinks (O_NOFOLLOW), and a symlink (or
  anything but a regular file) planted at one of their paths is refused with `UnsafeStateFile`,
  whose message says which and what to do (the store reports it as `checkpoint_error`).
- `check_state_dir` is what `tail` runs before it starts: a state directory that cannot be made or
  written stops it with `StateDirUnusable`, whose message names the path and the two ways out
  (another `--state-dir DIR`, or `--state-dir none`: no checkpoints). Running on without checkpoints
  is never chosen silently.
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


class StateDirUnusable(Exception):
    """The state directory cannot be made or written; the message says where, why and the fix."""


def check_state_dir(state_dir: Path) -> None:
    """Make the state directory and its database file as the store will, then write and remove one
    probe file in it (a read-only mount or a full disk refuses even root). Raises StateDirUnusable."""
    probe = state_dir / f".write-probe-{os.getpid()}"
    try:
        prepare_state_files(state_dir)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as error:
        why = error.strerror if error.filename == str(state_dir) else state_error_text(error)
        raise StateDirUnusable(
            f"cannot keep checkpoints in {state_dir}: {why}. Choose a directory "
            "this user can write with --state-dir DIR (or LOGSIDECAR_STATE_DIR), or run without "
            "checkpoints with --state-dir none (after a restart every file is read again from "
            "--start-at)"
        ) from None


def state_error_text(error: BaseException) -> str:
    """An OSError as its reason and path ("Permission denied: /var/lib/x"), never its repr."""
    if not isinstance(error, OSError):
        return str(error)
    if isinstance(error, UnsafeStateFile):
        return str(error.strerror)  # it says which file and what to do
    reason = error.strerror or str(error)
    return f"{reason}: {error.filename}" if error.filename else reason


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
