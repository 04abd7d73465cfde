"""The Tailer: follow files like `tail -F`, losing and duplicating nothing.

The poll cycle (one iteration of `run`), with the methods that implement each step:

 1. `wait_for_hints_or_interval` - sleep until the watcher wakes us (inotify event) or the interval
    passes (poll_interval_s when polling, safety_poll_interval_s under inotify), or the earliest
    partial-line flush is due. After a content hint the cycle starts no sooner than MIN_CYCLE_S
    after the previous one started, so a writer appending line by line costs one cycle per many
    lines, not one per line (structure hints are not delayed).
 2. `match_paths` - when the watcher saw a create/move/delete, or discover_interval_s passed: glob
    the include patterns (minus excludes); check each candidate under the file-opening policy
    (`tail.open_policy`: regular files only, symlinks per --follow-symlinks, never our own stdout).
 3. `open_and_fingerprint` - adopt descriptors the inotify watcher opened the moment a file was
    created (so a short-lived file is never lost to a rename); open new candidates through the
    policy, read their fingerprint (first bytes). Errors are reported once per path and kind,
    refusals once per path and reason (`file_refused`).
 4. `match_against_tracked` - a candidate whose dev+inode we already follow just updates its path;
    a followed file no longer found at any matched path was rotated (renamed away, deleted or
    replaced): it becomes ROTATED and is drained. A new file resumes from its checkpoint (matched by
    dev+inode and fingerprint, or by a full fingerprint) or starts at 0 (start_at=end only for files
    present at startup without a checkpoint). At startup (`drain_files_rotated_while_down`),
    checkpointed files that were rotated while we were down are found next to their old path by
    identity and drained from their checkpoint, and (`read_files_created_after_last_checkpoint`)
    rotated siblings no checkpoint knows that were written after our last durable checkpoint are
    read from 0. The max_rotated_files_held bound is applied here too, releasing drained files only.
 5. `read_changed_files` - fstat every followed file; read those that grew, at most a per-file byte
    budget per cycle (fairness: one busy file cannot starve 199 quiet ones), rotated files first (they
    pin descriptors and disk space). Each batch is awaited through `emit` (backpressure: while emit is
    blocked nothing more is read; the file is the buffer).
 6. `drain_rotated_files` - rotated files are read exactly like active ones, to their very end.
 7. `handle_truncation` - a file shorter than our read offset, or whose first bytes changed, was
    truncated (copytruncate) or rewritten: the tail that was copied away is read from the copy
    (a sibling whose content starts with our fingerprint and is at least as long as our offset),
    and the file itself restarts at 0 under a new file_key.
 8. `retire_drained_readers` - a rotated file is released only when it is at EOF and has not grown
    for ROTATED_IDLE_RELEASE_S (the writer may still append to it, e.g. Apache children finishing
    requests after a graceful restart). Never on a timer while bytes remain, except when more than
    max_rotated_files_held are held: then idle-at-EOF ones go first, and only if that is not enough
    the oldest is let go with its unread bytes counted in `bytes_abandoned` (and said in an event).
 9. `flush_partial_lines` and `write_checkpoints` - a last line without newline is emitted after
    partial_line_flush_s; every checkpoint_interval_s the fingerprints and the GC clock are
    written and the store is synced (acknowledged offsets are written as they come: `acknowledge`).

On stop (`drain`, then `stop`): after one last match of the paths, discovery ends; `read_to_end` reads
every followed file, active and rotated, until a pass finds nothing more, and emits each file's last
line even without its newline (partial_line_flushed, reason "stopping"); then `run` returns. `stop`
commits the acknowledged offsets and returns what is left after them per file (`leftovers`): where a
restart resumes, bytes and lines read but not acknowledged, bytes and lines not read.

Copytruncate loss bound (documented, unavoidable for any tailer): bytes the writer appended after
logrotate finished copying and before it truncated are in neither file. If the copy is not visible in
the same directory when we notice the truncation (compressed at once without `delaycompress`,
`olddir` elsewhere, or removed), the bytes between our read offset and the truncation point are lost
too; that is at most what was written since our previous read of that file (under inotify: usually
nothing; when polling: at most poll_interval_s of writes). Such losses are counted in
`bytes_possibly_lost` and said in the `file_truncated` event (`recovered=False`).

Restart guarantees: a new file's identity (dev, inode, fingerprint so far, offset 0) is written to
the checkpoint store *before* its first bytes are read, so a kill -9 followed by a rotation while we
are down still finds it next to its old path (by dev+inode, and by fingerprint once it has one) and
drains it from its durable offset. Delivery is at-least-once, and a crash replays only what was in
flight: `acknowledge` commits the offset at once, in the store's commit thread, one transaction
for every acknowledgement that arrived while the previous commit ran (group commit,
`synchronous=NORMAL`: durable against the death of the process), and returns a future that is done
when the offset is in storage. A pipeline lane sends no further batch before that future is done,
so after a kill -9 the lines read again are at most those sent and not yet acknowledged at the
moment of the kill. Against a power loss the bound is checkpoint_interval_s: the WAL is fsynced
that often (`CheckpointStore.sync`). A failing store does not hold the pipeline: the future is
done anyway, the offsets stay pending, and `checkpoint_error` says the bound does not hold until a
write works again.

Polling bound: with stat polling (network filesystems) a file must stay at a followed path for at
least poll_interval_s to be seen; one renamed away sooner (and not matched by the glob under its new
name) is not known to us. inotify has no such bound: files are opened from the IN_CREATE event.

Network mounts: in polling mode the filesystem calls of the cycle (directory probes, globs, stats,
opens, fingerprints, reads, closes) on a polled filesystem go through `netfs.FsAccess`, so a server
that stops answering stalls its own files only (said in `file_stalled`), never the loop. Startup's
rotated-while-down scans and copytruncate recovery still call the filesystem directly.

Invariants: offsets under one file_key only grow; `acknowledge` is the only path to the checkpoint
store; every state change is an event from logsidecar.events; the core never logs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from logsidecar import events
from logsidecar.events import Event
from logsidecar.tail.checkpoint_schedule import CheckpointSchedule
from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.copytruncate import CopyTruncate, SiblingSearch
from logsidecar.tail.counters import TailCounters
from logsidecar.tail.discovery import PathMatcher, static_base
from logsidecar.tail.fileset import FileSet, FileState, TrackedFile
from logsidecar.tail.identity import (
    Inode,
)
from logsidecar.tail.netfs import FsAccess, Stalled
from logsidecar.tail.open_policy import FilePolicy, Refused
from logsidecar.tail.options import ReadBatch, TailOptions
from logsidecar.tail.reader import FileReader, Framed, ReaderFactory
from logsidecar.tail.reports import PathReports
from logsidecar.tail.resume import Resume
from logsidecar.tail.retention import ROTATED_IDLE_RELEASE_S, Retention
from logsidecar.tail.watch.base import Watcher
from logsidecar.tail.watch.select import select_watcher

READ_BUDGET_CHUNKS = 4  # per file per cycle, in read_chunk_bytes
# Wake-up coalescing: after an inotify hint, a cycle starts at most MIN_CYCLE_S after the previous
# one started. A writer appending line by line (Apache: one write per request) sends one IN_MODIFY
# per line; without this every line would cost a whole cycle (fstat, fingerprint check, one pipeline
# batch). 20 ms makes a steady 1,000 lines/s ~50 cycles/s of ~20 lines each (benchmarks/
# tail_end_to_end.py: CPU at 1k lines/s 31 % -> 19 %) and adds at most 20 ms of latency; a
# hint after a quiet spell is still read at once. Structure hints (create/move/delete) skip it.
MIN_CYCLE_S = 0.020
STOP_GRACE_S = 5.0
# `leftovers` counts the lines left after the acknowledged offsets by reading them: at most this much
# per stop (~30 ms at the ~2 GiB/s measured from the page cache), so a huge backlog cannot hold up the exit.
LEFTOVER_COUNT_MAX_BYTES = 64 * 1024 * 1024


Emit = Callable[[ReadBatch], Awaitable[None]]


class Tailer:
    def __init__(self, options: TailOptions, checkpoints: CheckpointStore | None = None) -> None:
        self.options = options
        self.checkpoints = checkpoints if checkpoints is not None else CheckpointStore(options.state_dir)
        self.matcher = PathMatcher(options.include, options.exclude)
        self.policy = FilePolicy(options.follow_symlinks, (static_base(p) for p in self.matcher.include))
        self.counters = TailCounters()
        self.watcher: Watcher | None = None
        self.files = FileSet()
        self.reports = PathReports(self.policy, self.counters)
        self.schedule = CheckpointSchedule(options, self.checkpoints, self.files)
        self.retention = Retention(options, self.files, self.checkpoints, self.counters)
        self._vanished_dirs: set[Path] = set()
        self._stopping = asyncio.Event()
        self._draining = asyncio.Event()
        self._finished = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._started_up = False
        self._last_discovery = 0.0
        self.fs = FsAccess()  # direct calls; polling mode adds a stall guard for network mounts (netfs)
        self._readers = ReaderFactory(options, self.fs)
        self._siblings = SiblingSearch(options, self.policy, self.reports)
        self.copytruncate = CopyTruncate(
            options,
            self.files,
            self.counters,
            self.reports,
            self._siblings,
            self._readers,
            self.retention,
            self.schedule,
        )
        self.resume = Resume(
            options,
            self.checkpoints,
            self.files,
            self.counters,
            self.schedule,
            self._readers,
            self._siblings,
            self.matcher,
            self.policy,
            self.reports,
        )
        self._closed = False
        self._following_since = time.time()  # files written before are history, not ours

    # ------------------------------------------------------------------------------------------
    # public surface
    # ------------------------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        """Follow until `stop()`; awaits `emit(batch)` for each batch of complete lines."""
        self._run_task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        self.watcher = select_watcher(
            self.options, self.matcher.include, self.matcher.wants, self.policy, self.fs
        )
        self.watcher.start(loop)
        # Acknowledgements keep arriving while `emit` blocks (backpressure, a sink outage): a timer
        # writes them down too, so a crash then replays only the last interval, not the whole stall.
        checkpoint_timer = asyncio.create_task(self.schedule.write_periodically(self._stopping))
        try:
            while not self._stopping.is_set():
                if self._draining.is_set():
                    await self.read_to_end(emit)
                    break
                self.counters.cycles += 1
                cycle_started = time.monotonic()
                structure_changed = self.watcher.take_structure_changed()
                events_lost = self.watcher.take_events_lost()
                if events_lost:
                    await self.rescan_after_lost_events(events_lost)
                elif (
                    structure_changed
                    or not self._started_up
                    or (cycle_started - self._last_discovery >= self.options.discover_interval_s)
                ):
                    await self.match_paths_and_track()
                elif await self.watcher.probe(self._active_paths_moved):
                    await self.match_paths_and_track()
                await self.schedule.persist_identities()
                more = await self.read_changed_files(emit)
                await self.flush_partial_lines(emit)
                await self.retention.retire_drained_readers()
                await self.schedule.write()
                if more:
                    await asyncio.sleep(0)  # let the consumer run; there is more to read at once
                    continue
                await self.wait_for_hints_or_interval(cycle_started)
        finally:
            checkpoint_timer.cancel()
            self._finished.set()

    def acknowledge(self, file_key: str, offset: int) -> concurrent.futures.Future[bool] | None:
        """Every record of `file_key` up to `offset` was delivered (called in order per file).

        The offset goes to storage at once, in the store's commit thread (a group commit, see
        "Restart guarantees"). Returns that commit's future, done once it is there (or its write
        failed, to be retried by the next one), or None when there is nothing to write (no state
        dir). A thread's future: check `done()` before waiting on it, most of the time it is."""
        tracked = self.files.get(file_key)
        if tracked is not None:
            if offset > tracked.committed_offset:
                tracked.committed_offset = offset
            stored = self.checkpoints.get(file_key)
            if stored is not None and stored.fingerprint.length < len(tracked.reader.fingerprint):
                # An offset goes to storage with the fingerprint it was read under: a restart matches
                # a file first stored empty (fingerprint b"") only at offset 0.
                self.schedule.track(tracked.reader)
        self.checkpoints.commit(file_key, offset)
        self.retention.settled(file_key, offset)
        if not self.checkpoints.has_pending():
            return None  # nothing new to write (or a store in memory only)
        return self.checkpoints.flush_soon()

    async def drain(self, timeout_s: float) -> bool:
        """Stop discovering files; read every followed file to its end (`read_to_end`); `run` then
        returns. True when it did within `timeout_s`; else reading stops where it is (the rest is left
        to `leftovers`). Emitting goes on meanwhile: the consumer must keep taking batches."""
        self._draining.set()
        if self.watcher is not None:
            self.watcher.wake()
        task = self._run_task
        if task is None or task.done():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._finished.wait()), timeout=max(timeout_s, 0.0))
        except TimeoutError:
            self._stopping.set()  # checked between chunks: reading ends once emit returns
            return False
        return True

    async def stop(self) -> list[dict[str, object]]:
        """Stop reading, write checkpoints one last time, release files. Returns `leftovers()`, as it
        was when reading stopped."""
        self._stopping.set()
        if self.watcher is not None:
            self.watcher.wake()
        task = self._run_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._finished.wait()), timeout=STOP_GRACE_S)
            except TimeoutError:
                task.cancel()  # emit() is blocked (the consumer is gone): stop waiting for it
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down anyway
                    pass
        if self._closed:
            return []
        try:
            left = self.leftovers()
        finally:
            self._close()
        return left

    def leftovers(self) -> list[dict[str, object]]:
        """Per followed file with bytes after its acknowledged offset: `path`, `file_key`, `from_offset`
        (the acknowledged offset: a restart resumes there), `undelivered_bytes`/`undelivered_lines` (read,
        not acknowledged), `unread_bytes`/`unread_lines` (not read). Lines are counted by reading them,
        at most LEFTOVER_COUNT_MAX_BYTES in all; beyond that a count is None (the bytes stay exact)."""
        left: list[dict[str, object]] = []
        count_budget = LEFTOVER_COUNT_MAX_BYTES
        for key, tracked in self.files.items():
            reader = tracked.reader
            size = reader.size
            # A file on a network mount is neither stat'ed nor counted here: its server may be the
            # reason we are late, and a call on the event loop would hang the exit (netfs).
            local = reader.fd >= 0 and reader.fs is None
            if local:
                try:
                    size = os.fstat(reader.fd).st_size
                except OSError:
                    pass
            start = tracked.committed_offset
            read_end = min(max(reader.read_offset, start), size)
            if size <= start:
                continue
            counts: list[int | None] = []
            for begin, end in ((start, read_end), (read_end, size)):
                count = None
                if end - begin <= count_budget and local:
                    count_budget -= end - begin
                    count = _count_lines(reader.fd, begin, end)
                counts.append(count)
            left.append(
                {
                    "path": reader.path,
                    "file_key": key,
                    "from_offset": start,
                    "undelivered_bytes": read_end - start,
                    "undelivered_lines": counts[0],
                    "unread_bytes": size - read_end,
                    "unread_lines": counts[1],
                }
            )
        return left

    def stats(self) -> dict[str, object]:
        """{"files": [per-file dicts], "counters": totals, "watcher": mechanism}.

        Per file: path, file_key, read_offset, committed_offset, size, bytes_behind (size minus
        committed offset), unread_bytes (size minus read offset), state, lines_read, bytes_read,
        truncated_lines, nul_runs, partial_flushes."""
        totals: dict[str, object] = dict(self.counters.totals())
        totals["rotated_files_held"] = len(self.files.rotated())
        totals["files_followed"] = len(self.files)
        return {
            "files": self.files.stats(),
            "counters": totals,
            "watcher": self.watcher.mechanism if self.watcher else None,
        }

    # ------------------------------------------------------------------------------------------
    # 1. wait for hints or the interval
    # ------------------------------------------------------------------------------------------
    async def wait_for_hints_or_interval(self, cycle_started: float) -> None:
        assert self.watcher is not None
        now = time.monotonic()
        timeout = self.watcher.interval_s
        timeout = min(timeout, self._last_discovery + self.options.discover_interval_s - now)
        timeout = min(timeout, self.schedule.due_in(now))
        for tracked in self.files.values():
            reader = tracked.reader
            if reader.partial_since is not None and reader.framer.has_partial:
                timeout = min(timeout, reader.partial_since + self.options.partial_line_flush_s - now)
            if tracked.state is FileState.ROTATED:
                timeout = min(timeout, tracked.last_growth + ROTATED_IDLE_RELEASE_S - now)
        # Coalesce a flood of IN_MODIFY: at most one cycle per MIN_CYCLE_S (see there).
        await self.watcher.wait(max(timeout, 0.0), hold_content_until=cycle_started + MIN_CYCLE_S)

    # ------------------------------------------------------------------------------------------
    # 2-4. match paths; open and fingerprint; match against tracked files
    # ------------------------------------------------------------------------------------------
    async def match_paths_and_track(self) -> None:
        assert self.watcher is not None
        self._last_discovery = time.monotonic()
        present = await self.match_paths()
        fresh = await self.open_and_fingerprint(present)
        self.match_against_tracked(present, fresh)
        await self.retention.hold_rotated_bound(may_abandon=False)  # at once, but never at the cost of bytes
        if not self._started_up:
            self._started_up = True
            with self._siblings.listing_cached():  # startup looks at the same directories once per checkpoint
                self.resume.drain_files_rotated_while_down()
                self.resume.read_files_created_after_last_checkpoint()
        dirs = await self.matcher.directories_to_watch_through(sorted(present.values()), self.fs)
        dirs.update(Path(os.path.dirname(t.reader.path)) for t in self.files.values())
        dirs.update(await self.fs.link_target_directories(present.values()))
        self.watcher.watch_directories(dirs)

    async def rescan_after_lost_events(self, overflows: int) -> None:
        """The kernel's inotify queue overflowed: creations, renames and deletions were lost, and
        early opening (which holds a short-lived file before it is rotated away) missed them. Rescan
        everything: re-glob and stat every followed path (a followed file replaced at its path is
        marked rotated and drained through its descriptor, the new one opened), then look next to
        every followed path for files nobody knows that were created and rotated away meanwhile and
        read them from 0. The cycle then reads every file to its end. A file written before we
        started or before forget_after_s is history; known inodes, copies of known content and
        compressed files are skipped, as at startup."""
        assert self.watcher is not None
        added, rotations = self.counters.files_added, self.counters.rotations
        await self.match_paths_and_track()
        since = max(self._following_since, time.time() - self.options.forget_after_s)
        with self._siblings.listing_cached():
            self.resume.read_files_created_after_last_checkpoint(since=since)
        self.counters.inotify_overflows += overflows
        events.emit(
            Event.INOTIFY_OVERFLOW,
            overflows=overflows,
            files_added=self.counters.files_added - added,
            rotations=self.counters.rotations - rotations,
            hint="events were lost and every followed path was rescanned; if this repeats, raise "
            "fs.inotify.max_queued_events",
        )

    async def match_paths(self) -> dict[Inode, str]:
        """Step 2: glob, then stat each candidate. Returns {inode: path} of regular files."""
        await self._check_base_directories()
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
            except Refused as refused:
                self.reports.refused(refused)
                continue
            except OSError as error:
                self.reports.error(path, error)
                continue
            present.setdefault(Inode.of(st), path)
        if stalled_mounts:
            # Not seen on a stalled mount is not gone: its followed files stay as they are.
            for tracked in self.files.values():
                reader = tracked.reader
                if tracked.state is FileState.ACTIVE and self.fs.guarded_mount(reader.path) in stalled_mounts:
                    present.setdefault(reader.inode, reader.path)
        return present

    async def open_and_fingerprint(self, present: dict[Inode, str]) -> list[FileReader]:
        """Step 3: readers for files we do not follow yet (early-opened ones first)."""
        assert self.watcher is not None
        tracked_inodes = {t.reader.inode for t in self.files.values()}
        fresh: list[FileReader] = []
        for path, fd, st in self.watcher.take_early_opened():
            inode = Inode.of(st)
            if inode not in present and self._still_at(path, inode):
                # Created after our glob (the rename's event woke us first): it is at a followed
                # path, not rotated; else it would be "rotated" now and active again next cycle.
                present[inode] = path
            if inode in tracked_inodes or any(r.inode == inode for r in fresh):
                os.close(fd)
                continue
            reader = self._readers.new(fd, present.get(inode, path), st)
            if self.copytruncate.is_copy_of_followed(reader):
                reader.close()
                continue
            fresh.append(reader)
        known = tracked_inodes | {r.inode for r in fresh}
        now = time.time()
        for inode, path in present.items():
            if inode in known:
                continue
            try:
                fd, st = await self.fs.call(path, "open", self.policy.open_file, path)
            except (FileNotFoundError, Stalled):
                continue
            except Refused as refused:
                self.reports.refused(refused)
                continue
            except OSError as error:
                self.reports.error(path, error)
                continue
            if Inode.of(st) in known:
                os.close(fd)  # replaced between stat and open by a file we already follow
                continue
            ignore_older = self.options.ignore_older_s
            if (
                ignore_older is not None
                and st.st_mtime < now - ignore_older
                and inode not in self.files.skipped
            ):
                os.close(fd)
                self.files.skipped.add(inode)
                events.emit(Event.FILE_SKIPPED, path=path, reason="ignore_older", mtime=st.st_mtime)
                continue
            if inode in self.files.skipped:
                if ignore_older is not None and st.st_mtime < now - ignore_older:
                    os.close(fd)
                    continue
                self.files.skipped.discard(inode)
            try:
                fingerprint = await self.fs.read_head(fd, self.options.fingerprint_bytes, path)
                reader = self._readers.make(fd, path, st, "", fingerprint, 0)
            except Stalled:
                self.fs.close_file(fd, path)
                continue
            if self.copytruncate.is_copy_of_followed(reader):
                reader.close()
                continue
            fresh.append(reader)
            known.add(inode)
        return fresh

    def _still_at(self, path: str, inode: Inode) -> bool:
        """`path` is a followed path and holds `inode` now."""
        if not self.matcher.wants(path):
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        return Inode.of(st) == inode

    def match_against_tracked(self, present: dict[Inode, str], fresh: list[FileReader]) -> None:
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
        first = not self._started_up
        for reader in fresh:
            state = FileState.ACTIVE if reader.inode in present else FileState.ROTATED
            self.resume.start(reader, state, startup=first)
        if self.reports:
            for tracked in self.files.values():
                if tracked.state is FileState.ACTIVE:
                    self.reports.recovered(tracked.reader.path)  # followed again: say so once

    # ------------------------------------------------------------------------------------------
    # 5-7. read changed files; drain rotated files; handle truncation
    # ------------------------------------------------------------------------------------------
    async def read_changed_files(self, emit: Emit) -> bool:
        """Step 5. Returns True when some file still has unread bytes after its budget."""
        more = False
        budget = self.options.read_chunk_bytes * READ_BUDGET_CHUNKS
        # rotated files first: they pin descriptors and disk space (step 6)
        order = sorted(self.files.items(), key=lambda item: item[1].state is not FileState.ROTATED)
        for key, tracked in order:
            if self._stopping.is_set():
                return False
            if self.files.get(key) is not tracked or tracked.reader.fd < 0:
                continue
            more |= await self._read_file(key, tracked, budget, emit)
        return more

    async def _read_file(self, key: str, tracked: TrackedFile, budget: int, emit: Emit) -> bool:
        reader = tracked.reader
        try:
            st = await reader.fstat()
        except Stalled:
            return False  # said by the stall guard; the file is read again once its mount answers
        except OSError as error:
            self.reports.error(reader.path, error)
            return False
        tracked.deleted = st.st_nlink == 0
        size = st.st_size
        if size == reader.scan_offset and size == reader.size:
            return False
        if tracked.state is FileState.ACTIVE and (
            size < reader.scan_offset or await self._content_replaced(reader)
        ):
            leftover = self.copytruncate.handle_truncation(key, tracked)  # step 7
            if leftover.lines:
                await self._emit_framed(reader, leftover, emit)
            return True
        if reader.scan_offset == 0 and self.copytruncate.is_copy_of_followed(reader):
            # It started empty (so it looked new) and is now filling up as a copy of a followed file.
            reader.close()
            self.files.pop(key)
            self.checkpoints.forget(key)
            return False
        if tracked.state is FileState.ROTATED:
            if size < reader.scan_offset:
                reader.size = size  # a rotated file shrank: nothing more to read from it
                return False
            if len(reader.fingerprint) < self.options.fingerprint_bytes:
                # only grows the fingerprint (it is what a restart matches)
                await self._content_replaced(reader)
        reader.size = size
        read = 0
        while read < budget and reader.scan_offset < reader.size and not self._stopping.is_set():
            framed = Framed()
            got = await self._read_chunk(reader, framed)
            if got == 0:
                break
            read += got
            tracked.last_growth = time.monotonic()
            await self._emit_framed(reader, framed, emit)
            if reader.fd < 0:
                break
        return reader.scan_offset < reader.size

    async def _read_chunk(self, reader: FileReader, framed: Framed) -> int:
        try:
            got = await reader.read_once(self.options.read_chunk_bytes, framed)
        except Stalled:
            return 0  # said by the stall guard
        except OSError as error:
            self.reports.error(reader.path, error)
            return 0
        self.counters.bytes_read += got
        if reader.framer.has_partial:
            if reader.partial_since is None or got:
                reader.partial_since = time.monotonic()
        else:
            reader.partial_since = None
        return got

    async def _emit_framed(self, reader: FileReader, framed: Framed, emit: Emit) -> None:
        if framed.nul_runs:
            events.emit(
                Event.NUL_RUN_SKIPPED,
                path=reader.path,
                file_key=reader.file_key,
                runs=framed.nul_runs,
                bytes=framed.nul_bytes,
            )
            self.counters.nul_runs += framed.nul_runs
        if not framed.lines:
            return
        tracked = self.files.get(reader.file_key)
        if tracked is not None and tracked.reader is reader:
            tracked.emitted_offset = framed.end_offsets[-1]
        self.counters.lines_read += len(framed.lines)
        for index in sorted(framed.truncated):
            self.counters.truncated_lines += 1
            events.emit(
                Event.LINE_TRUNCATED,
                path=reader.path,
                file_key=reader.file_key,
                offset=framed.end_offsets[index],
                max_line_bytes=self.options.max_line_bytes,
            )
        step = self.options.max_batch_lines
        total = len(framed.lines)
        for start in range(0, total, step):
            stop = min(start + step, total)
            if start == 0 and stop == total:
                batch = reader.batch(framed)
            else:
                truncated = {i - start for i in framed.truncated if start <= i < stop}
                batch = ReadBatch(
                    reader.file_key,
                    reader.path,
                    framed.lines[start:stop],
                    framed.end_offsets[start:stop],
                    truncated,
                )
            await emit(batch)

    async def _content_replaced(self, reader: FileReader) -> bool:
        try:
            return await reader.fingerprint_changed()
        except OSError:
            return False

    # ------------------------------------------------------------------------------------------
    # 8-9. retire drained readers; partial lines; checkpoints
    # ------------------------------------------------------------------------------------------
    async def flush_partial_lines(self, emit: Emit, stopping: bool = False) -> None:
        """A last line without newline goes out after partial_line_flush_s, or at once when `stopping`."""
        now = time.monotonic()
        for tracked in self.files.values():
            reader = tracked.reader
            if reader.partial_since is None or not reader.framer.has_partial:
                continue
            rotated_idle = (
                tracked.state is FileState.ROTATED
                and reader.at_eof
                and (now - tracked.last_growth >= ROTATED_IDLE_RELEASE_S)
            )
            # Only the end of the file is a partial line: a line cut by a chunk boundary whose rest is
            # known to be in the file (emit blocked past the delay) waits for its next read.
            timed_out = reader.at_eof and now - reader.partial_since >= self.options.partial_line_flush_s
            if stopping or timed_out or rotated_idle:
                framed = Framed()
                if reader.flush_partial(framed):
                    events.emit(
                        Event.PARTIAL_LINE_FLUSHED,
                        path=reader.path,
                        file_key=reader.file_key,
                        offset=reader.scan_offset,
                        **({"reason": "stopping"} if stopping else {}),
                    )
                    await self._emit_framed(reader, framed, emit)

    async def read_to_end(self, emit: Emit) -> None:
        """The drain on stop: match paths once more (a rotation just before the stop made a file we
        have not seen yet), then no more discovery; read every followed file (rotated ones first, as
        always) until a pass over all of them reads nothing more, then emit each file's last line even
        without its newline. Under a writer faster than us it goes on until `drain`'s deadline."""
        await self.match_paths_and_track()
        await self.schedule.persist_identities()
        empty_passes = 0
        while not self._stopping.is_set():
            before = self.counters.bytes_read
            more = await self.read_changed_files(emit)
            empty_passes = empty_passes + 1 if self.counters.bytes_read == before else 0
            # (`more` with nothing read: a truncation was just handled, or a read failed: once more)
            if empty_passes and (not more or empty_passes > 1):
                break
            await asyncio.sleep(0)  # let the consumer run
        if not self._stopping.is_set():
            await self.flush_partial_lines(emit, stopping=True)

    # ------------------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------------------
    async def _active_paths_moved(self) -> bool:
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

    async def _check_base_directories(self) -> None:
        for pattern in self.matcher.include:
            base = static_base(pattern)
            try:
                is_dir = await self.fs.is_dir(str(base))
            except Stalled:
                continue  # unknown until its mount answers
            if is_dir:
                if base in self._vanished_dirs:
                    self._vanished_dirs.discard(base)
                    events.emit(Event.FILE_RECOVERED, path=str(base), kind="directory")
            elif (
                self._started_up
                and base not in self._vanished_dirs
                and any(os.path.dirname(t.reader.path) == str(base) for t in self.files.values())
            ):
                self._vanished_dirs.add(base)
                self.counters.file_errors += 1
                events.emit(Event.FILE_ERROR, path=str(base), error="directory vanished", kind="directory")

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.checkpoints.touch(self.files.keys())
            self.checkpoints.close()
        finally:
            for tracked in self.files.values():
                tracked.reader.close()
            if self.watcher is not None:
                self.watcher.close()
            self.fs.close()


def _count_lines(fd: int, begin: int, end: int) -> int | None:
    """Lines in [begin, end) of `fd`, a last one without newline included; None if unreadable."""
    count = 0
    last = b"\n"
    offset = begin
    try:
        while offset < end:
            chunk = os.pread(fd, min(1024 * 1024, end - offset), offset)
            if not chunk:
                break
            count += chunk.count(b"\n")
            last = chunk[-1:]
            offset += len(chunk)
    except OSError:
        return None
    return count + int(last != b"\n")
