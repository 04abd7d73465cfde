"""The descriptor budget: how many followed files may be open at once, and closing idle ones beyond it.

Every followed file holds a descriptor. With a low RLIMIT_NOFILE (1024 is a common soft limit, 64 in
some sandboxes) and many files, opens fail with EMFILE and the files past the limit are never read.
So:

- When the Tailer starts (`raise_nofile_limit`), the soft RLIMIT_NOFILE is raised to the hard limit
  (what an unprivileged process may do) and the limits are said in an `fd_limits` event.
- `budget_for(limit)` descriptors of that limit may be held by followed files; `RESERVED_FDS` stay for
  the rest of the process (see there), but never more than half of the limit.
- Above the budget, idle files are closed ("parked": the reader keeps its offsets, fingerprint and
  partial line, its descriptor is -1, the file stays ACTIVE): ACTIVE files at EOF, least recently
  grown first (`FdBudget.slots`). A ROTATED file is never parked: it is at no followed path, so it
  could not be found again by path, and it may have unread bytes.
- New files found while at the budget are opened, fingerprinted and started as usual (their identity
  is durable before their first byte is read) and then parked at once (`Slots.keep`); a file that is
  not at a followed path (rotated as it was created) is kept open.
- Every cycle, at the start of the read step (and of each pass of the drain on stop),
  `reopen_changed` stats the path of each parked file (what the read step's fstat is for an open
  one). Same inode and same size: it stays parked. Same inode and another size: it is reopened by
  path through the file-opening policy, the inode is checked again on the open descriptor, and the
  read step goes on at the remembered offset, checking the fingerprint as for any file (content
  replaced or truncated under the same inode: copytruncate's recovery). Another inode, or none: it
  was rotated while closed; it is marked ROTATED and found next to its path by identity (inode and
  fingerprint, at least as long as our offset: `SiblingSearch.find_copy`, as at startup), then
  drained from where we were. Files waiting for a slot longest go first; the loop comes back at once
  while some still wait.

Loss bound: a parked file that is rotated *and deleted* while closed cannot be found again: what was
written to it after it was parked is lost (an open file would have been drained through its
descriptor). That is said in `file_lost_while_closed`. Only idle files are parked, least recently
grown first, and only above the budget, so with a budget above the number of followed files nothing
is ever closed.

Closes and reopens are counted (`files_closed_idle`, `files_reopened`) and said in `file_closed_idle`
and `file_reopened` events (debug level: under a small budget there is one per file per change).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

from logsidecar import events
from logsidecar.events import Event, FileClosedIdle, FileReopened
from logsidecar.tail.copytruncate import SiblingSearch
from logsidecar.tail.counters import TailCounters
from logsidecar.tail.fileset import FileSet, FileState, TrackedFile
from logsidecar.tail.identity import Inode, StoredFingerprint
from logsidecar.tail.netfs import FsAccess, Stalled
from logsidecar.tail.open_policy import FilePolicy, Refused
from logsidecar.tail.reader import FileReader
from logsidecar.tail.reports import PathReports
from logsidecar.tail.retention import Retention

# Descriptors left to everything but followed files: the HTTP endpoint (telemetry.MAX_CONNECTIONS =
# 64 connections and its listener; it lowers its own cap on EMFILE), the state db (database, -wal,
# -shm), inotify and the event loop (epoll, self-pipe), stdio, the OTLP channel and resolver sockets,
# and transient opens (fingerprinting a new candidate before it is parked, sibling searches, files
# the inotify watcher opens early on creation).
RESERVED_FDS = 96


def budget_for(limit: int) -> int:
    """Followed files that may be open at once under a soft RLIMIT_NOFILE of `limit`: the limit minus
    RESERVED_FDS, but at least half of it (a small limit is shared; the others degrade on EMFILE)."""
    return max(limit - RESERVED_FDS, limit // 2, 1)


def raise_nofile_limit() -> tuple[int, int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit. Returns (soft before, soft now, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        target = soft  # "unlimited" cannot be a soft value for NOFILE: keep what we have
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            target = soft
        return soft, target, hard
    return soft, soft, hard


def current_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def evictable(files: FileSet) -> list[tuple[str, TrackedFile]]:
    """Files that may be parked, first to go first: open ACTIVE files at EOF (as last read), least
    recently grown first. Never a ROTATED file."""
    idle = [
        (key, tracked)
        for key, tracked in files.items()
        if tracked.state is FileState.ACTIVE and tracked.reader.fd >= 0 and tracked.reader.at_eof
    ]
    idle.sort(key=lambda item: item[1].last_growth)
    return idle


class Slots:
    """Open descriptors of followed files against the budget, for one step: `take` a slot, parking
    the least recently grown idle file when there is none free."""

    def __init__(self, budget: FdBudget) -> None:
        self.budget = budget
        self.open = sum(1 for t in budget.files.values() if t.reader.fd >= 0)
        self._idle: Iterator[tuple[str, TrackedFile]] | None = None  # computed when first needed

    def take(self) -> bool:
        """One more descriptor may be held. False when the budget is full of files that are not idle."""
        if self.open < self.budget.budget:
            self.open += 1
            return True
        if self._idle is None:
            self._idle = iter(evictable(self.budget.files))
        for key, tracked in self._idle:
            reader = tracked.reader
            if tracked.state is FileState.ACTIVE and reader.fd >= 0 and reader.at_eof:
                self.budget.park(key, tracked)
                return True  # its slot is ours: `open` is unchanged
        return False

    def keep(self, reader: FileReader, may_park: bool) -> None:
        """A new file was opened (and fingerprinted): it keeps its descriptor if there is a slot; else,
        when `may_park` (it is at a followed path), it is parked at once and read when a slot frees."""
        if self.take() or not may_park:
            return
        reader.close()
        self.budget.counters.files_closed_idle += 1
        events.emit(FileClosedIdle(path=reader.path, offset=reader.scan_offset, new=True))


class FdBudget:
    def __init__(
        self,
        files: FileSet,
        counters: TailCounters,
        reports: PathReports,
        policy: FilePolicy,
        fs: FsAccess,
        siblings: SiblingSearch,
        retention: Retention,
    ) -> None:
        self.files = files
        self.counters = counters
        self.reports = reports
        self.policy = policy
        self.fs = fs
        self.siblings = siblings
        self.retention = retention
        self.budget = budget_for(current_limit())

    def start(self) -> None:
        """Raise the soft limit to the hard one, size the budget from it, and say both."""
        before, soft, hard = raise_nofile_limit()
        self.budget = budget_for(soft if soft != resource.RLIM_INFINITY else current_limit())
        events.emit(
            Event.FD_LIMITS,
            soft_limit_before=before,
            soft_limit=soft,
            hard_limit=hard,
            followed_files_budget=self.budget,
            reserved=RESERVED_FDS,
        )

    def slots(self) -> Slots:
        return Slots(self)

    def open_files(self) -> int:
        return sum(1 for t in self.files.values() if t.reader.fd >= 0)

    def park(self, key: str, tracked: TrackedFile) -> None:
        """Close an idle ACTIVE file's descriptor; it keeps its offsets and is reopened when it changes."""
        assert tracked.state is FileState.ACTIVE, "a rotated file is never parked"
        reader = tracked.reader
        reader.close()
        self.counters.files_closed_idle += 1
        events.emit(FileClosedIdle(path=reader.path, file_key=key, offset=reader.scan_offset))

    def park_over_budget(self) -> None:
        """After the read step: back within the budget (early-opened and rotated files may push past
        it), parking idle files."""
        excess = self.open_files() - self.budget
        if excess <= 0:
            return
        for key, tracked in evictable(self.files)[:excess]:
            self.park(key, tracked)

    async def reopen_changed(self) -> bool:
        """Reopen parked files that changed, as slots allow; find the ones rotated while closed.
        Returns True when some changed file still waits for a slot."""
        parked = [(k, t) for k, t in self.files.items() if t.reader.fd < 0]
        if not parked:
            return False
        slots = self.slots()
        wanted: list[tuple[str, TrackedFile]] = []
        for key, tracked in parked:
            reader = tracked.reader
            if tracked.state is FileState.ROTATED:
                self._find_rotated(key, tracked)  # discovery saw it gone from its path
                continue
            try:
                st: os.stat_result | None = await self.fs.stat(reader.path)
            except Stalled:
                continue  # unknown until its mount answers
            except OSError:
                st = None
            if st is None or Inode.of(st) != reader.inode:
                self.retention.mark_rotated(key, tracked)
                self._find_rotated(key, tracked)
            elif st.st_size != reader.scan_offset or st.st_size != reader.size:
                wanted.append((key, tracked))
        wanted.sort(key=lambda item: item[1].last_growth)  # waiting longest first
        for key, tracked in wanted:
            if not slots.take():
                return True
            if not await self._reopen(key, tracked):
                slots.open -= 1
        return False

    async def _reopen(self, key: str, tracked: TrackedFile) -> bool:
        """Reopen a parked file by path; True when it holds its descriptor again."""
        reader = tracked.reader
        path = reader.path
        try:
            fd, st = await self.fs.call(path, "open", self.policy.open_file, path)
        except Stalled:
            return False
        except (OSError, Refused):
            # gone, or no longer a file we may open at that path: it was replaced there
            st = None
        if st is None or Inode.of(st) != reader.inode:
            if st is not None:
                self.fs.close_file(fd, path)
            self.retention.mark_rotated(key, tracked)
            self._find_rotated(key, tracked)
            return False
        reader.continue_in(fd, path, st)
        self.counters.files_reopened += 1
        events.emit(FileReopened(path=path, file_key=key, offset=reader.scan_offset, size=st.st_size))
        return True

    def _find_rotated(self, key: str, tracked: TrackedFile) -> None:
        """A parked file was rotated while closed: find it next to its path by identity and drain it
        from our offset, whatever the budget (`park_over_budget` makes up for it). Not found (deleted):
        it is released; what was written to it after it was parked is lost, and said."""
        reader = tracked.reader
        others = self.files.inodes() - {reader.inode}
        found = self.siblings.find_copy(
            reader.path,
            StoredFingerprint.of(reader.fingerprint),
            reader.scan_offset,
            others,
            same_inode=reader.inode,
        )
        if found is None:
            events.emit(
                Event.FILE_LOST_WHILE_CLOSED,
                path=reader.path,
                file_key=key,
                offset=reader.scan_offset,
                hint="rotated and removed while closed by the descriptor budget; lines written to it "
                "after it was closed are lost. Raise the hard RLIMIT_NOFILE (ulimit -Hn) above the "
                "number of followed files",
            )
            self.retention.release(key, tracked, abandoned=0)
            return
        fd, path, st, _head = found
        previous = reader.path
        reader.continue_in(fd, path, st)
        self.counters.files_reopened += 1
        events.emit(
            FileReopened(
                path=path,
                file_key=key,
                offset=reader.scan_offset,
                size=st.st_size,
                rotated_while_closed=True,
                previous_path=previous,
            )
        )
