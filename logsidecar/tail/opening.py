"""Steps 2-4 of the poll cycle: match paths, open and fingerprint new files, match them against the
tracked ones.

A candidate is checked under the file-opening policy (`tail.open_policy`: regular files only, symlinks
per --follow-symlinks, never our own stdout). Descriptors the inotify watcher opened the moment a file
was created are adopted first (so a short-lived file is never lost to a rename). A candidate whose
dev+inode we already follow just updates its path; a followed file no longer found at any matched path
was rotated (renamed away, deleted or replaced): it becomes ROTATED and is drained. New files start
where `resume` says. Errors are reported once per path and kind, refusals once per path and reason.

Network mounts: in polling mode the globs, stats, opens and fingerprints here go through
`netfs.FsAccess`; a file not seen on a stalled mount is not gone: it stays as it is.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from logsidecar import events
from logsidecar.events import FileError, FileRecovered, FileSkipped
from logsidecar.tail.checkpoint_schedule import CheckpointSchedule
from logsidecar.tail.copytruncate import CopyTruncate
from logsidecar.tail.counters import TailCounters
from logsidecar.tail.discovery import PathMatcher, static_base
from logsidecar.tail.fd_budget import FdBudget
from logsidecar.tail.fileset import FileSet, FileState
from logsidecar.tail.identity import Inode
from logsidecar.tail.netfs import FsAccess, Stalled
from logsidecar.tail.open_policy import FilePolicy, Refused
from logsidecar.tail.options import TailOptions
from logsidecar.tail.reader import FileReader, ReaderFactory
from logsidecar.tail.reports import PathReports
from logsidecar.tail.resume import Resume
from logsidecar.tail.retention import Retention
from logsidecar.tail.watch.base import EarlyOpened


class FileOpener:
    def __init__(
        self,
        options: TailOptions,
        files: FileSet,
        counters: TailCounters,
        reports: PathReports,
        matcher: PathMatcher,
        policy: FilePolicy,
        fs: FsAccess,
        readers: ReaderFactory,
        resume: Resume,
        retention: Retention,
        copytruncate: CopyTruncate,
        schedule: CheckpointSchedule,
        fd_budget: FdBudget | None = None,
    ) -> None:
        self.options = options
        self.files = files
        self.counters = counters
        self.reports = reports
        self.matcher = matcher
        self.policy = policy
        self.fs = fs
        self.readers = readers
        self.resume = resume
        self.retention = retention
        self.copytruncate = copytruncate
        self.schedule = schedule
        self.fd_budget = fd_budget
        self._vanished_dirs: set[Path] = set()

    async def match_paths(self, started_up: bool) -> dict[Inode, str]:
        """Step 2: glob, then stat each candidate. Returns {inode: path} of regular files."""
        await self._check_base_directories(started_up)
        present: dict[Inode, str] = {}
        paths, stalled = await self.matcher.scan_through(self.fs)
        stalled_mounts = {error.mount for error in stalled}
        for path in paths:
            try:
                # the policy's lstat walk, through the stall guard on a network mount
                st = await self.fs.call(path, "stat", self.policy.inspect, path)
            except FileNotFoundError:
                continue  # vanished since the glob (or a dangling symlink): nothing to follow yet
            except Stalled as error:
                stalled_mounts.add(error.mount)
                continue
            except (Refused, OSError) as error:
                self._report(path, error)
                continue
            present.setdefault(Inode.of(st), path)
        if stalled_mounts:
            # Not seen on a stalled mount is not gone: its followed files stay as they are.
            for tracked in self.files.values():
                reader = tracked.reader
                if tracked.state is FileState.ACTIVE and self.fs.guarded_mount(reader.path) in stalled_mounts:
                    present.setdefault(reader.inode, reader.path)
        return present

    async def open_and_fingerprint(
        self, present: dict[Inode, str], early: list[EarlyOpened]
    ) -> list[FileReader]:
        """Step 3: readers for files we do not follow yet (`early`-opened ones first)."""
        tracked_inodes = self.files.inodes()
        skipped = self.files.skipped
        fresh: list[FileReader] = []
        # within the descriptor budget: a new file beyond it is parked once fingerprinted (fd_budget)
        slots = self.fd_budget.slots() if self.fd_budget is not None else None
        for path, fd, st in early:
            inode = Inode.of(st)
            if inode not in present and self._still_at(path, inode):
                # Created after our glob (the rename's event woke us first): it is at a followed
                # path, not rotated; else it would be "rotated" now and active again next cycle.
                present[inode] = path
            if inode in tracked_inodes or any(r.inode == inode for r in fresh):
                os.close(fd)
                continue
            reader = self.readers.new(fd, present.get(inode, path), st)
            if self.copytruncate.is_copy_of_followed(reader):
                reader.close()
                continue
            fresh.append(reader)
            if slots is not None:
                slots.keep(reader, may_park=inode in present)
        known = tracked_inodes | {r.inode for r in fresh}
        now = time.time()
        for inode, path in present.items():
            if inode in known:
                continue
            try:
                fd, st = await self.fs.call(path, "open", self.policy.open_file, path)
            except (FileNotFoundError, Stalled):
                continue
            except (Refused, OSError) as error:
                self._report(path, error)
                continue
            if Inode.of(st) in known:
                os.close(fd)  # replaced between stat and open by a file we already follow
                continue
            ignore_older = self.options.ignore_older_s
            if ignore_older is not None and st.st_mtime < now - ignore_older and inode not in skipped:
                os.close(fd)
                skipped.add(inode)
                events.emit(FileSkipped(path=path, reason="ignore_older", mtime=st.st_mtime))
                continue
            if inode in skipped:
                if ignore_older is not None and st.st_mtime < now - ignore_older:
                    os.close(fd)
                    continue
                skipped.discard(inode)
            try:
                fingerprint = await self.fs.read_head(fd, self.options.fingerprint_bytes, path)
                reader = self.readers.make(fd, path, st, "", fingerprint, 0)
            except Stalled:
                self.fs.close_file(fd, path)
                continue
            if self.copytruncate.is_copy_of_followed(reader):
                reader.close()
                continue
            fresh.append(reader)
            known.add(inode)
            if slots is not None:
                slots.keep(reader, may_park=True)
        return fresh

    def match_against_tracked(
        self, present: dict[Inode, str], fresh: list[FileReader], startup: bool
    ) -> None:
        """Step 4: update paths, mark rotated files, start new files at the right offset."""
        for key, tracked in self.files.items():
            reader = tracked.reader
            path = present.get(reader.inode)
            if path is not None:
                if path != reader.path:
                    reader.path = (
                        path  # renamed to another followed path (e.g. access.log.1 under access.log*)
                    )
                    self.schedule.track(reader)
                if tracked.state is FileState.ROTATED and reader.fd >= 0:
                    tracked.state = FileState.ACTIVE  # moved back under a followed path
                    tracked.rotated_at = None
            elif tracked.state is FileState.ACTIVE:
                self.retention.mark_rotated(key, tracked)
        for reader in fresh:
            state = FileState.ACTIVE if reader.inode in present else FileState.ROTATED
            self.resume.start(reader, state, startup=startup)
        if self.reports:
            for tracked in self.files.values():
                if tracked.state is FileState.ACTIVE:
                    self.reports.recovered(tracked.reader.path)  # followed again: say so once

    async def active_paths_moved(self) -> bool:
        """Poll mode: a cheap stat of each followed path tells whether a rotation happened."""
        for tracked in self.files.values():
            if tracked.state is not FileState.ACTIVE:
                continue
            reader = tracked.reader
            try:
                st = await self.fs.stat(reader.path)
            except Stalled:
                continue  # unknown until its mount answers
            except OSError:
                return True
            if Inode.of(st) != reader.inode:
                return True
        return False

    def _report(self, path: str, error: Refused | OSError) -> None:
        """A candidate the policy refused or that failed: said once per path (PathReports)."""
        if isinstance(error, Refused):
            self.reports.refused(error)
        else:
            self.reports.error(path, error)

    def _still_at(self, path: str, inode: Inode) -> bool:
        """`path` is a followed path and holds `inode` now."""
        if not self.matcher.wants(path):
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        return Inode.of(st) == inode

    async def _check_base_directories(self, started_up: bool) -> None:
        for pattern in self.matcher.include:
            base = static_base(pattern)
            try:
                is_dir = await self.fs.is_dir(str(base))
            except Stalled:
                continue  # unknown until its mount answers
            if is_dir:
                if base in self._vanished_dirs:
                    self._vanished_dirs.discard(base)
                    events.emit(FileRecovered(path=str(base), kind="directory"))
            elif (
                started_up
                and base not in self._vanished_dirs
                and any(os.path.dirname(t.reader.path) == str(base) for t in self.files.values())
            ):
                self._vanished_dirs.add(base)
                self.counters.file_errors += 1
                events.emit(FileError(path=str(base), kind="directory", error="directory vanished"))
