"""The Tailer: follow files like `tail -F`, losing and duplicating nothing.

The poll cycle (one iteration of `run`), with the collaborator and method that implement each step:

 1. `Tailer.wait_for_hints_or_interval` - sleep until the watcher (`watch/`) wakes us (inotify event)
    or its interval passes (poll_interval_s when polling, safety_poll_interval_s under inotify), or
    the earliest partial-line flush is due. After a content hint the cycle starts no sooner than
    `coalescing_hold_s` after the previous one started: what the latency budget leaves once the last
    cycle's own duration is counted, so a writer appending line by line costs one cycle per many
    lines, not one per line, and a line still comes out within the budget (structure hints are not
    delayed).
 2. `FileOpener.match_paths` (opening) - when the watcher saw a create/move/delete (or, polling, its
    `probe` saw one), or discover_interval_s passed: glob the include patterns (minus excludes);
    check each candidate under the file-opening policy (`tail.open_policy`: regular files only,
    symlinks per --follow-symlinks, never our own stdout).
 3. `FileOpener.open_and_fingerprint` - adopt descriptors the inotify watcher opened the moment a
    file was created (so a short-lived file is never lost to a rename); open new candidates through
    the policy, read their fingerprint (first bytes). Errors are reported once per path and kind,
    refusals once per path and reason (`file_refused`; `reports.PathReports`).
 4. `FileOpener.match_against_tracked` - a candidate whose dev+inode we already follow just updates
    its path; a followed file no longer found at any matched path was rotated (renamed away, deleted
    or replaced): it becomes ROTATED and is drained. A new file resumes from its checkpoint (matched
    by dev+inode and fingerprint, or by a full fingerprint) or starts at 0 (start_at=end only for
    files present at startup without a checkpoint): `Resume.start`. At startup
    (`Resume.drain_files_rotated_while_down`), checkpointed files that were rotated while we were
    down are found next to their old path by identity and drained from their checkpoint, and
    (`Resume.read_files_created_after_last_checkpoint`) rotated siblings no checkpoint knows that
    were written after our last durable checkpoint are read from 0. The max_rotated_files_held bound
    is applied here too, releasing drained files only (`Retention.hold_rotated_bound`).
 5. `BatchReader.read_changed_files` (reading) - fstat every followed file; read those that grew, at
    most a per-file byte budget per cycle (fairness: one busy file cannot starve 199 quiet ones),
    rotated files first (they pin descriptors and disk space). Each batch is awaited through `emit`
    (backpressure: while emit is blocked nothing more is read; the file is the buffer). Before, files
    closed by the descriptor budget that changed are reopened by identity; after, idle files beyond
    the budget are closed (`FdBudget`, fd_budget: RLIMIT_NOFILE is raised to its hard limit at start).
 6. (the same pass) - rotated files are read exactly like active ones, to their very end.
 7. `CopyTruncate.handle_truncation` (copytruncate) - a file shorter than our read offset, or whose
    first bytes changed, was truncated (copytruncate) or rewritten: the tail that was copied away is
    read from the copy (a sibling whose content starts with our fingerprint and is at least as long
    as our offset), and the file itself restarts at 0 under a new file_key.
 8. `Retention.retire_drained_readers` (retention) - a rotated file is released only when it is at
    EOF and has not grown for ROTATED_IDLE_RELEASE_S (the writer may still append to it, e.g. Apache
    children finishing requests after a graceful restart). Never on a timer while bytes remain,
    except when more than max_rotated_files_held are held: then idle-at-EOF ones go first, and only
    if that is not enough the oldest is let go with its unread bytes counted in `bytes_abandoned`.
 9. `BatchReader.flush_partial_lines` and `CheckpointSchedule.write` (checkpoint_schedule) - a last
    line without newline is emitted after partial_line_flush_s; every checkpoint_interval_s the
    fingerprints and the GC clock are written and the store is synced (acknowledged offsets are
    written as they come: `Tailer.acknowledge`).

After lost inotify events, `rescan_after_lost_events` replaces step 2. On stop, `drain.read_to_end`
replaces the cycle (see `drain`). The tracked files are a `fileset.FileSet`, keyed by file_key; the
OS identity of a file is an `identity.Inode`.

Restart guarantees: a new file's identity (dev, inode, fingerprint so far, offset 0) is written to
the checkpoint store *before* its first bytes are read, so a kill -9 followed by a rotation while we
are down still finds it next to its old path (by dev+inode, and by fingerprint once it has one) and
drains it from its durable offset. Delivery is at-least-once, and a crash replays only what was in
flight: `acknowledge` makes the offset durable against the death of the process at once: an
append to the store's offsets journal when only offsets moved (a write() into the page cache, no
thread hop), else one transaction of the store's commit thread for every acknowledgement that
arrived meanwhile (group commit, `synchronous=NORMAL`), and returns a future that is done when the
offset is in storage. A pipeline lane sends no further batch before that future is done,
so after a kill -9 the lines read again are at most those sent and not yet acknowledged at the
moment of the kill. Against a power loss the bound is checkpoint_interval_s: the WAL is fsynced
that often (`CheckpointStore.sync`). A failing store does not hold the pipeline: the future is
done anyway, the offsets stay pending, and `checkpoint_error` says the bound does not hold until a
write works again.

Network mounts: in polling mode the filesystem calls of the cycle (directory probes, globs, stats,
opens, fingerprints, reads, closes) on a polled filesystem go through `netfs.FsAccess`, so a server
that stops answering stalls its own files only (said in `file_stalled`), never the loop. Startup's
rotated-while-down scans (`resume`) and copytruncate recovery still call the filesystem directly.

Invariants: offsets under one file_key only grow; `acknowledge` is the only path to the checkpoint
store; every state change is an event from logsidecar.events; the core never logs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from pathlib import Path

from logsidecar import events
from logsidecar.events import Event
from logsidecar.tail import drain
from logsidecar.tail.checkpoint_schedule import CheckpointSchedule
from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.copytruncate import CopyTruncate, SiblingSearch
from logsidecar.tail.counters import TailCounters
from logsidecar.tail.discovery import PathMatcher, static_base
from logsidecar.tail.fd_budget import FdBudget
from logsidecar.tail.fileset import FileSet, FileState
from logsidecar.tail.netfs import FsAccess
from logsidecar.tail.open_policy import FilePolicy
from logsidecar.tail.opening import FileOpener
from logsidecar.tail.options import TailOptions
from logsidecar.tail.reader import ReaderFactory
from logsidecar.tail.reading import BatchReader, Emit
from logsidecar.tail.reports import PathReports, waiting_patterns
from logsidecar.tail.resume import Resume
from logsidecar.tail.retention import ROTATED_IDLE_RELEASE_S, Retention
from logsidecar.tail.watch.base import Watcher
from logsidecar.tail.watch.select import select_watcher

# Wake-up coalescing follows the latency budget. A writer appending line by line (Apache: one write
# per request) sends one IN_MODIFY per line; at low rates most of the cost is per wake-up, not per
# line (a cycle: fstat, fingerprint check, one batch, one write, one acknowledgement). So after a
# content hint a cycle starts no sooner than `coalescing_hold_s` after the previous one started:
# LATENCY_BUDGET_S (the p99 target from a line's write to its delivery), minus LATENCY_SLACK_S (the
# sink's write and the scheduling delays of a busy machine), minus the last cycle's own duration
# (the line waits for the next cycle to start, then for that cycle's work). A steady 1,000 lines/s
# is then ~30 cycles/s of ~30 lines instead of one a line; a hint after a quiet spell is still read
# at once, and a cycle slow enough to spend the budget is followed by the next without a hold.
# Structure hints (create/move/delete) are never held. (Was a fixed 20 ms: ~50 cycles/s at 1k lines/s.)
LATENCY_BUDGET_S = 0.050
LATENCY_SLACK_S = 0.015


def coalescing_hold_s(last_cycle_s: float) -> float:
    """How long after a cycle started the next may start on a content hint (see LATENCY_BUDGET_S)."""
    return max(LATENCY_BUDGET_S - LATENCY_SLACK_S - last_cycle_s, 0.0)


STOP_GRACE_S = 5.0


class Tailer:
    """The poll loop, and the surface the pipeline uses (`run`, `acknowledge`, `drain`, `stop`, `stats`).
    Each step is a collaborator's (see the module docstring); they share the tracked files (`files`),
    the totals (`counters`) and the checkpoint store, and are wired here once."""

    def __init__(self, options: TailOptions, checkpoints: CheckpointStore | None = None) -> None:
        self.options = options
        self.checkpoints = (
            checkpoints if checkpoints is not None else CheckpointStore(options.state_dir, options.start_at)
        )
        self.matcher = PathMatcher(options.include, options.exclude)
        self.policy = FilePolicy(options.follow_symlinks, (static_base(p) for p in self.matcher.include))
        self.counters = TailCounters()
        self.watcher: Watcher | None = None
        # direct calls; polling mode adds a stall guard for network mounts (netfs, watch.select)
        self.fs = FsAccess()
        self.files = FileSet()
        reports = PathReports(self.policy, self.counters)
        self.reports = reports
        readers = ReaderFactory(options, self.fs)
        siblings = SiblingSearch(options, self.policy, reports)
        self.schedule = CheckpointSchedule(options, self.checkpoints, self.files)
        self.retention = Retention(options, self.files, self.checkpoints, self.counters)
        self.copytruncate = CopyTruncate(
            options, self.files, self.counters, reports, siblings, readers, self.retention, self.schedule
        )
        self.resume = Resume(
            options,
            self.checkpoints,
            self.files,
            self.counters,
            self.schedule,
            readers,
            siblings,
            self.matcher,
        )
        # at most this many followed files hold a descriptor; idle ones beyond are closed and reopened
        self.fd_budget = FdBudget(
            self.files, self.counters, reports, self.policy, self.fs, siblings, self.retention
        )
        self.opener = FileOpener(
            options,
            self.files,
            self.counters,
            reports,
            self.matcher,
            self.policy,
            self.fs,
            readers,
            self.resume,
            self.retention,
            self.copytruncate,
            self.schedule,
            self.fd_budget,
        )
        self._siblings = siblings
        self._stopping = asyncio.Event()
        self._draining = asyncio.Event()
        self._finished = asyncio.Event()
        self.reading = BatchReader(
            options,
            self.files,
            self.checkpoints,
            self.counters,
            reports,
            self.copytruncate,
            self._stopping,
            self.fd_budget,
        )
        self._run_task: asyncio.Task[None] | None = None
        self._started_up = False
        self._last_discovery = 0.0
        self._closed = False
        self._following_since = time.time()  # files written before are history, not ours

    # ------------------------------------------------------------------------------------------
    # public surface
    # ------------------------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        """Follow until `stop()`; awaits `emit(batch)` for each batch of complete lines."""
        self._run_task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        self.fd_budget.start()  # raise RLIMIT_NOFILE before the first open; say the limits
        self.watcher = select_watcher(
            self.options, self.matcher.include, self.matcher.wants, self.policy, self.fs
        )
        self.watcher.start(loop)
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
                elif await self.watcher.probe(self.opener.active_paths_moved):
                    await self.match_paths_and_track()
                await self.schedule.persist_identities()
                more = await self.reading.read_changed_files(emit)
                await self.reading.flush_partial_lines(emit)
                await self.retention.retire_drained_readers()
                await self.schedule.write()
                if more:
                    await asyncio.sleep(0)  # let the consumer run; there is more to read at once
                    continue
                await self.wait_for_hints_or_interval(cycle_started, time.monotonic() - cycle_started)
        finally:
            checkpoint_timer.cancel()
            self._finished.set()

    def acknowledge(self, file_key: str, offset: int) -> concurrent.futures.Future[bool] | None:
        """Every record of `file_key` up to `offset` was delivered (called in order per file).

        The offset goes to storage at once: appended to the store's journal on this thread when
        only offsets moved, else in the store's commit thread (a group commit, see "Restart
        guarantees"). Returns that commit's future, done once it is there (or its write
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
        self.schedule.note_work()
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
        """What is left after the acknowledged offsets, per followed file (see `drain.leftovers`)."""
        return drain.leftovers(self.files)

    def input_patterns(self) -> tuple[str, ...]:
        """The include patterns as matched (absolute), for metrics labelled by input."""
        return self.matcher.include

    def waiting_patterns(self) -> dict[str, str]:
        """{pattern: why it has no followed file} (`reports.waiting_patterns`), for readiness."""
        followed = {tracked.reader.path for tracked in self.files.values()}
        return waiting_patterns(self.matcher, followed, self.reports)

    def stats(self) -> dict[str, object]:
        """{"files": [per-file dicts], "counters": totals, "watcher": mechanism}.

        Per file: path, file_key, read_offset, committed_offset, size, bytes_behind (size minus
        committed offset), unread_bytes (size minus read offset), state, lines_read, bytes_read,
        truncated_lines, nul_runs, partial_flushes."""
        totals: dict[str, object] = dict(self.counters.totals())
        totals["rotated_files_held"] = len(self.files.rotated())
        totals["files_followed"] = len(self.files)
        totals["files_open"] = self.fd_budget.open_files()
        totals["fd_budget"] = self.fd_budget.budget
        return {
            "files": self.files.stats(),
            "counters": totals,
            "watcher": self.watcher.mechanism if self.watcher else None,
        }

    # ------------------------------------------------------------------------------------------
    # the cycle's own steps: 1. wait; 2-4 through the opener; after lost events; on stop
    # ------------------------------------------------------------------------------------------
    async def wait_for_hints_or_interval(self, cycle_started: float, cycle_s: float = 0.0) -> None:
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
        # Coalesce a flood of IN_MODIFY within the latency budget (see LATENCY_BUDGET_S).
        hold_until = cycle_started + coalescing_hold_s(cycle_s)
        await self.watcher.wait(max(timeout, 0.0), hold_content_until=hold_until)

    async def match_paths_and_track(self) -> None:
        """Steps 2-4, and at the first discovery the start-up recovery (`resume`)."""
        assert self.watcher is not None
        self._last_discovery = time.monotonic()
        present = await self.opener.match_paths(self._started_up)
        fresh = await self.opener.open_and_fingerprint(present, self.watcher.take_early_opened())
        self.opener.match_against_tracked(present, fresh, startup=not self._started_up)
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

    async def read_to_end(self, emit: Emit) -> None:
        """The drain on stop: match paths once more (a rotation just before the stop made a file we
        have not seen yet), then no more discovery; `drain.read_to_end`."""
        await self.match_paths_and_track()
        await self.schedule.persist_identities()
        await drain.read_to_end(self.reading, self.counters, self._stopping, emit)

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
