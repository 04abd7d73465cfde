"""Which paths to follow: include globs (with `**`), excludes, and the directories to watch.

`PathMatcher.scan()` lists the regular-file candidates now matching; `wants(path)` answers for one
path (the inotify watcher uses it to pre-open files the moment they are created). The tailer uses
`scan_through` and `directories_to_watch_through`, which list directories through `netfs.FsAccess`:
on a network mount in a worker thread with a stall deadline, so a dead server never stops the loop.
Hidden files match only patterns that name them (glob semantics). Matching is by name only: whether a
matched symlink, FIFO or directory is followed is the file-opening policy's call (`tail.open_policy`);
a followed symlink's identity is its target's.

Invariants: matching is pure (no events, no state) except the one-shot `file_waiting` bookkeeping,
which says once per pattern that nothing matches it (never repeated: no event loop), and the
`blocked_directory` bookkeeping: a pattern that matches nothing because a directory on its path
cannot be entered or listed (a non-root reader, a 0700 directory on a read-only mount) is a warning
naming that directory, said once until it becomes readable (`file_recovered`); it is retried every scan.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from logsidecar import events
from logsidecar.events import Event, FileError, FileRecovered
from logsidecar.tail.netfs import FsAccess, Stalled

_GLOB_CHARS = re.compile(r"[*?\[]")


def translate_glob(pattern: str) -> re.Pattern[str]:
    """A compiled regex for a path glob: `*` and `?` stay inside one component, `**` spans any."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def static_base(pattern: str) -> Path:
    """The longest leading directory of `pattern` without glob characters."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts[:-1]:
        if _GLOB_CHARS.search(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


# Rotated-and-compressed generations (`access.log.2.gz`) match globs like `access.log*` but hold no
# text to follow: they are never followed (their content was read before logrotate compressed it).
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".Z")


class PathMatcher:
    def __init__(self, include: tuple[str, ...], exclude: tuple[str, ...] = ()) -> None:
        self.include = tuple(os.path.abspath(os.path.expanduser(p)) for p in include)
        self.exclude = tuple(os.path.abspath(os.path.expanduser(p)) for p in exclude)
        self._include_res = [translate_glob(p) for p in self.include]
        self._exclude_res = [translate_glob(p) for p in self.exclude]
        self._waiting_said: set[str] = set()
        self._blocked: dict[str, str] = {}  # pattern -> the directory that keeps it from matching
        self._blocked_why: dict[str, str] = {}  # pattern -> why that directory blocks it
        self._matched: dict[str, list[str]] = {}  # pattern -> what it matched at the last scan

    def wants(self, path: str) -> bool:
        path = os.path.abspath(path)
        if not any(r.match(path) for r in self._include_res):
            return False
        if self.excluded(path):
            return False
        if os.path.basename(path).startswith("."):
            # glob semantics: hidden files only when the pattern names them explicitly
            return any(
                r.match(path) and os.path.basename(p).startswith(".")
                for r, p in zip(self._include_res, self.include, strict=True)
            )
        return True

    def excluded(self, path: str) -> bool:
        return path.endswith(COMPRESSED_SUFFIXES) or any(r.match(path) for r in self._exclude_res)

    def scan(self) -> list[str]:
        """Paths matching now (sorted, deduplicated, excludes removed). Not yet stat-checked."""
        found: set[str] = set()
        for pattern in self.include:
            if _GLOB_CHARS.search(pattern):
                matches = glob.glob(pattern, recursive=True)
            else:
                matches = [pattern] if os.path.lexists(pattern) else []
            self._note_blocked(pattern, None if matches else blocked_directory(pattern))
            found.update(self._kept(pattern, matches))
        return sorted(found)

    async def scan_through(self, fs: FsAccess) -> tuple[list[str], list[Stalled]]:
        """`scan()` with each pattern's directory listing made through `fs` (on a network mount:
        aiofiles in a worker thread, with a stall deadline). A pattern whose mount is stalled matches
        nothing this time; its `Stalled` is returned so the caller knows the answer is missing, not no."""
        found: set[str] = set()
        stalled: list[Stalled] = []
        for pattern in self.include:
            try:
                if _GLOB_CHARS.search(pattern):
                    matches = await fs.glob(pattern, str(static_base(pattern)))
                else:
                    exists = await fs.call(pattern, "stat", os.path.lexists, pattern)
                    matches = [pattern] if exists else []
                blocked = None if matches else await fs.call(pattern, "stat", blocked_directory, pattern)
            except Stalled as error:
                stalled.append(error)
                continue
            self._note_blocked(pattern, blocked)
            found.update(self._kept(pattern, matches))
        return sorted(found), stalled

    def _note_blocked(self, pattern: str, blocked: tuple[str, str] | None) -> None:
        """Warn (once per directory) that `pattern` matches nothing because of an unreadable
        directory; say when it is readable again. The pattern keeps being scanned either way."""
        before = self._blocked.get(pattern)
        if blocked is None:
            self._blocked_why.pop(pattern, None)
            if before is not None:
                del self._blocked[pattern]
                events.emit(FileRecovered(path=before, kind="directory_unreadable", pattern=pattern))
            return
        directory, error = blocked
        self._blocked_why[pattern] = error
        if before != directory:
            self._blocked[pattern] = directory
            self._waiting_said.add(pattern)  # the warning says more than file_waiting would
            events.emit(
                FileError(
                    path=directory,
                    kind="directory_unreadable",
                    pattern=pattern,
                    error=f"{error}; nothing under it can match {pattern}. Give this user read and search "
                    "(r-x) permission on it, or run as a user that has it; retried at every scan",
                )
            )

    def matched(self, pattern: str) -> list[str]:
        """What `pattern` matched at the last scan (excludes removed)."""
        return self._matched.get(pattern, [])

    def blocked_why(self, pattern: str) -> str | None:
        """Why an unreadable directory keeps `pattern` from matching, at the last scan; None if nothing does."""
        return self._blocked_why.get(pattern)

    def _kept(self, pattern: str, matches: list[str]) -> list[str]:
        matches = [m for m in matches if not self.excluded(m)]
        self._matched[pattern] = matches
        if not matches and pattern not in self._waiting_said:
            # Said once per pattern: a path briefly missing during a rotation is not news, and a
            # followed file that goes away is reported as rotated/drained by the tailer.
            self._waiting_said.add(pattern)
            events.emit(Event.FILE_WAITING, pattern=pattern)
        return matches

    def directories_to_watch(self, matched: list[str]) -> set[Path]:
        """The directories whose events matter: each pattern's static base (when it exists), every
        directory under it for `**` patterns, and the directory of each matched file."""
        dirs: set[Path] = {Path(os.path.dirname(p)) for p in matched}
        for pattern in self.include:
            dirs.update(pattern_directories(pattern))
        return dirs

    async def directories_to_watch_through(self, matched: list[str], fs: FsAccess) -> set[Path]:
        """`directories_to_watch()` with the listing made through `fs`; a stalled pattern adds only the
        directories of its matched files."""
        dirs: set[Path] = {Path(os.path.dirname(p)) for p in matched}
        for pattern in self.include:
            try:
                dirs.update(await fs.call(str(static_base(pattern)), "scandir", pattern_directories, pattern))
            except Stalled:
                continue
        return dirs


def blocked_directory(pattern: str) -> tuple[str, str] | None:
    """The directory on `pattern`'s fixed path that this process cannot enter (no search permission)
    or list (no read permission, for a glob in it), with the error; None when nothing blocks it (a
    missing directory is not blocked: it may be created). Blocking calls."""
    base = static_base(os.path.abspath(pattern))
    parent = Path(base.anchor)
    for directory in (*reversed(base.parents[:-1]), base):
        try:
            os.stat(directory)
        except PermissionError as error:
            return str(parent), f"cannot enter {parent} ({error.strerror})"
        except OSError:
            return None
        parent = directory
    if _GLOB_CHARS.search(pattern) and os.path.isdir(base):
        try:
            os.listdir(base)
        except PermissionError as error:
            return str(base), f"cannot list {base} ({error.strerror})"
        except OSError:
            return None
    return None


def pattern_directories(pattern: str) -> set[Path]:
    """The static base of `pattern` (when it is a directory), every directory under it for a `**`
    pattern, and the directories its directory part matches for a glob there. Blocking calls."""
    base = static_base(pattern)
    if not os.path.isdir(base):  # False, not PermissionError, for a directory we cannot enter
        return set()
    dirs = {base}
    directory_part = os.path.dirname(pattern)
    if "**" in pattern:
        for root, subdirs, _files in os.walk(base):
            dirs.update(Path(root, d) for d in subdirs)
    elif _GLOB_CHARS.search(directory_part):
        dirs.update(Path(d) for d in glob.glob(directory_part) if os.path.isdir(d))
    return dirs
