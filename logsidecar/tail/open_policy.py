"""Which files may be opened for reading, and how: the one file-opening policy.

Whoever writes into a followed directory (the web server, or whoever compromised it) is less trusted
than we are: a planted `access.log -> /etc/shadow` or `token.log -> /run/secrets/...` must not be
forwarded, a FIFO must not hang us, and a log linked to our own stdout must not feed our output back
to us forever. Every read-open of a log goes through `FilePolicy.open_file`; `inspect` is the same
check without opening (discovery).

Rules, in order:
- Our own stdout and stderr (device + inode of fds 1 and 2) are never followed: the official httpd
  image links its logs to /dev/stdout, and `logsidecar ... > file` would read its own records back.
- Symlinks anywhere below the base directory (the fixed part of the followed glob) follow
  `FollowSymlinks`: `never` refuses them, `within` (the default) follows them only when the file they
  resolve to is inside the base directory, `anywhere` follows them.
- Only regular files are read. The type is checked on an `O_PATH | O_NOFOLLOW` descriptor, which
  opens nothing: no FIFO blocks, no device driver sees an open.
- The read-open cannot be redirected: it reopens that very descriptor (`/proc/self/fd/N`, no path
  lookup), or, without /proc, the resolved path with `O_NOFOLLOW | O_NONBLOCK`; and the device and inode
  of what was opened must be the ones checked, else it is closed unread. Where the O_PATH descriptor
  really is (its /proc link) is checked against the base too, so a directory swapped for a symlink
  between resolution and opening is caught. A link swapped between a log and a secret is thus either
  the log or refused, never the secret.

A refusal is a `Refused` (path, reason, detail); `report` says it once per path and reason as a
`file_refused` event (the metrics count those by reason). Errors of the filesystem (ENOENT, EACCES)
stay OSError: they are not refusals.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from enum import StrEnum
from typing import NamedTuple

from logsidecar import events
from logsidecar.events import FileRefused

# Refusals said once per (path, reason); beyond this many the oldest are forgotten (said again if seen
# again): a directory where a writer creates endless FIFOs must not grow our memory without bound.
MAX_REFUSALS_REMEMBERED = 4096
# Where a descriptor can be reopened (and located) without a path lookup.
_PROC_FD = "/proc/self/fd"
# Link targets that mean "the writer logs to a stream": our explanation says what to do instead.
STREAM_TARGETS = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/")


class FollowSymlinks(StrEnum):
    NEVER = "never"  # a symlink anywhere below the base directory is refused
    WITHIN = "within"  # followed when the file it resolves to is inside the base directory
    ANYWHERE = "anywhere"  # followed wherever it points (the directory's writer is trusted)


class Reason(StrEnum):
    SYMLINK = "symlink"  # follow_symlinks=never
    OUTSIDE_BASE = "outside_base"  # resolves outside the base directory
    NOT_REGULAR = "not_regular"  # FIFO, device, directory, socket
    OWN_OUTPUT = "own_output"  # our own stdout or stderr
    CHANGED = "changed_while_opening"  # swapped between the check and the open


class Refused(Exception):
    """A path the policy will not open; `detail` is the sentence for the operator."""

    def __init__(self, path: str, reason: Reason, detail: str, target: str | None = None) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.reason = reason
        self.detail = detail
        self.target = target


class Opened(NamedTuple):
    fd: int  # O_RDONLY | O_NONBLOCK | O_CLOEXEC (O_NONBLOCK changes nothing for a regular file)
    st: os.stat_result


def file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "regular file" if stat.S_ISREG(mode) else "special file"


def is_inside(path: str, directory: str) -> bool:
    """`path` is `directory` or below it (both absolute and normalised)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def stream_link(path: str) -> str | None:
    """The target when `path` is a symlink to a process's stdout/stderr (/dev/stdout,
    /proc/self/fd/1 ...), else None."""
    try:
        target = os.readlink(path)
    except OSError:
        return None
    return target if target.startswith(STREAM_TARGETS) else None


STDOUT_LOGGING_ADVICE = (
    "the writer logs to its own stdout/stderr through this link (the official httpd image links its "
    "logs to /proc/self/fd/1 and /proc/self/fd/2), so nothing is written to a file: read those logs with "
    "`docker logs <container>`, or configure Apache to write files (CustomLog/ErrorLog to a file on the "
    "shared volume, after removing the link)"
)


def own_outputs() -> set[tuple[int, int]]:
    """Device and inode of our stdout and stderr (whatever they are: file, pipe, terminal)."""
    found = set()
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def _fd_location(fd: int) -> str | None:
    """Where an open descriptor really is (its /proc link), or None without /proc."""
    try:
        location = os.readlink(f"{_PROC_FD}/{fd}")
    except OSError:
        return None
    return location.removesuffix(" (deleted)")


class FilePolicy:
    """The policy for files under `bases` (the fixed directories of the followed globs). A path under
    none of them has its own directory as base."""

    def __init__(
        self,
        follow_symlinks: FollowSymlinks = FollowSymlinks.WITHIN,
        bases: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        self.follow_symlinks = FollowSymlinks(follow_symlinks)  # "within" works as well as the member
        # longest first: a path under nested bases belongs to the innermost one
        self.bases = sorted({os.path.abspath(b) for b in bases}, key=len, reverse=True)
        # Resolved once, now: the base directories are the operator's choice as they are at start (one
        # may be a symlink), and a writer who later replaces one with a link cannot move them.
        self._real_bases = {base: os.path.realpath(base) for base in self.bases}
        self._own_outputs = own_outputs()  # our stdout/stderr do not change under us
        self._said: dict[tuple[str, Reason], None] = {}
        self.refusals: dict[Reason, int] = {}  # said refusals, by reason

    def base_for(self, path: str) -> str:
        for base in self.bases:
            if is_inside(path, base):
                return base
        return os.path.dirname(path)

    def inspect(self, path: str) -> os.stat_result:
        """The stat of the regular file `path` leads to, when the policy allows following it.
        Raises Refused, or OSError (FileNotFoundError for a dangling link)."""
        return self._check(path)[1]

    def open_file(self, path: str) -> Opened:
        """Open `path` for reading under the policy. Raises Refused or OSError."""
        resolved, expected = self._check(path)
        path_fd = os.open(resolved, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            checked = os.fstat(path_fd)
            self._check_type(path, checked)  # a link or a FIFO swapped in after the check
            if (checked.st_dev, checked.st_ino) != (expected.st_dev, expected.st_ino):
                raise Refused(path, Reason.CHANGED, "it was replaced while being opened (retried later)")
            self._check_location(path, path_fd)
            fd = self._reopen(path_fd, resolved)
        finally:
            os.close(path_fd)
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        if (st.st_dev, st.st_ino) != (checked.st_dev, checked.st_ino):
            os.close(fd)
            raise Refused(path, Reason.CHANGED, "it was replaced while being opened (retried later)")
        return Opened(fd, st)

    def report(self, refused: Refused) -> bool:
        """Say `refused` as a file_refused event, once per path and reason. True when said now."""
        key = (refused.path, refused.reason)
        if key in self._said:
            return False
        if len(self._said) >= MAX_REFUSALS_REMEMBERED:
            del self._said[next(iter(self._said))]
        self._said[key] = None
        self.refusals[refused.reason] = self.refusals.get(refused.reason, 0) + 1
        events.emit(
            FileRefused(
                path=refused.path, reason=refused.reason.value, detail=refused.detail, target=refused.target
            )
        )
        return True

    # -- the checks ----------------------------------------------------------------------------
    def _real_base(self, base: str) -> str:
        real = self._real_bases.get(base)
        return real if real is not None else os.path.realpath(base)

    def _check(self, path: str) -> tuple[str, os.stat_result]:
        """(the resolved path, its stat) after the path-level checks."""
        path = os.path.abspath(path)
        base = self.base_for(path)
        real_base = self._real_base(base)
        # Common case first, one lstat per component below the base (usually one): no symlink on
        # the way, the path is the real base plus the same components.
        prefix = base.rstrip("/") + "/"
        relative = path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, base)
        resolved = real_base.rstrip("/")
        st: os.stat_result | None = None
        for part in relative.split("/"):
            resolved = f"{resolved}/{part}"
            st = os.lstat(resolved)
            if stat.S_ISLNK(st.st_mode):
                st = None
                break
        through_link = st is None
        if st is None:
            resolved = os.path.realpath(path)
            # Through the kernel, not `resolved`: a link to /dev/stdout resolves to a "pipe:[N]" name.
            st = os.stat(path)
        if (st.st_dev, st.st_ino) in self._own_outputs:
            raise Refused(path, Reason.OWN_OUTPUT, self._own_output_detail(path), target=resolved)
        if through_link:  # a symlink below the base directory
            if self.follow_symlinks is FollowSymlinks.NEVER:
                raise Refused(
                    path,
                    Reason.SYMLINK,
                    self._link_detail(path, "symlinks are not followed (--follow-symlinks never)"),
                    target=resolved,
                )
            if self.follow_symlinks is FollowSymlinks.WITHIN and not is_inside(resolved, real_base):
                raise Refused(
                    path,
                    Reason.OUTSIDE_BASE,
                    self._link_detail(
                        path,
                        f"a symlink to {resolved}, outside {base}; not followed "
                        "(--follow-symlinks anywhere follows it)",
                    ),
                    target=resolved,
                )
        self._check_type(path, st)
        return resolved, st

    def _check_type(self, path: str, st: os.stat_result) -> None:
        if stat.S_ISREG(st.st_mode):
            return
        if stat.S_ISLNK(st.st_mode):
            raise Refused(path, Reason.CHANGED, "it was replaced while being opened (retried later)")
        raise Refused(path, Reason.NOT_REGULAR, f"not a regular file (a {file_kind(st.st_mode)}); never read")

    def _check_location(self, path: str, path_fd: int) -> None:
        """The descriptor's real location obeys the rule too (a directory on the way may have been
        swapped for a symlink after `realpath`)."""
        if self.follow_symlinks is FollowSymlinks.ANYWHERE:
            return
        location = _fd_location(path_fd)
        if location is None:
            return  # no /proc: the realpath check and the inode comparison stand alone
        path = os.path.abspath(path)
        if not is_inside(location, self._real_base(self.base_for(path))):
            raise Refused(path, Reason.CHANGED, "it was replaced while being opened (retried later)")

    @staticmethod
    def _reopen(path_fd: int, resolved: str) -> int:
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            return os.open(f"{_PROC_FD}/{path_fd}", flags)
        except FileNotFoundError:
            # no /proc: open by path, refusing a symlink; the caller compares device and inode
            return os.open(resolved, flags | os.O_NOFOLLOW)

    @staticmethod
    def _link_detail(path: str, detail: str) -> str:
        if stream_link(path) is not None:
            return f"{detail}; {STDOUT_LOGGING_ADVICE}"
        return detail

    @staticmethod
    def _own_output_detail(path: str) -> str:
        detail = "it is our own stdout or stderr: reading it would read our own output back forever"
        if stream_link(path) is not None:
            return f"{detail}; {STDOUT_LOGGING_ADVICE}"
        return detail
