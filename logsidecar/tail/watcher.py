"""Watchers only WAKE the tailer; the tailer stats files to decide what changed.

Two backends behind one small interface:
- `InotifyWatcher` (watchdog's raw `InotifyFD` reader on the directories holding the followed paths):
  wakes the tailer on IN_CREATE / IN_MOVED_* / IN_MODIFY / IN_DELETE / IN_ATTRIB, and for creations
  and moves *into* a followed path it opens the new file immediately, in the inotify thread, so a
  file that lives at its path for only a few milliseconds (fast rename rotation) is held by a
  descriptor before it can be renamed away. The tailer adopts these early descriptors. A slow stat
  interval stays on as a safety net (events can be lost: queue overflow, filesystems that do not
  deliver them). IN_MODIFY comes through a second inotify instance that is read at most every
  MODIFY_HINT_COALESCE_S: meanwhile the kernel merges the identical IN_MODIFY events of a writer
  appending line by line (one per write), so 1,000 lines/s cost ~100 reads instead of 1,000. The
  structure instance (create/move/delete) is read at once, so early opening is never delayed. `ObserverInotifyWatcher` is the same through watchdog's Observer, for old watchdogs.
- `PollingWatcher`: wakes every `poll_interval_s`; nothing else.

Invariants: a watcher never reads file content and never decides anything; losing a hint costs at
most one interval, never data. Wakes are coalesced: a flood of IN_MODIFY costs one flag check each.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from logsidecar import events
from logsidecar.events import Event

try:  # watchdog >= 6: the raw inotify reader
    from watchdog.observers.inotify_c import CallbackId, InotifyEvent, InotifyFD, Mask, WatchDescriptor
    from watchdog.observers.inotify_c import InotifyConstants as IN

    INOTIFY_FD_AVAILABLE = True
except ImportError:  # pragma: no cover - older watchdog: ObserverInotifyWatcher
    InotifyFD = None  # type: ignore[assignment,misc]
    IN = None  # type: ignore[assignment,misc]
    INOTIFY_FD_AVAILABLE = False


MODIFY_HINT_COALESCE_S = 0.010  # content hints wait this long at most (the tailer settles 20 ms anyway)

if InotifyFD is not None:

    class _CoalescingInotifyFD(InotifyFD):  # type: ignore[misc,valid-type]
        """An InotifyFD that pauses after each read so the kernel merges repeated IN_MODIFY events
        (it merges an event identical to the last unread one). Only for content hints."""

        def run(self) -> None:
            while self.should_keep_running():
                for event in self.read_events():
                    self.handle_event(event)
                self.stopped_event.wait(MODIFY_HINT_COALESCE_S)


class Watcher:
    """Base: wait for a hint or the interval."""

    mechanism = "none"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self.structure_changed = True  # a create/move/delete was seen: run discovery now

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def watch_directories(self, directories: set[Path]) -> None:
        """Follow exactly these directories (recursive where the pattern needs it is the caller's
        business: it passes every directory it wants)."""

    def wake(self) -> None:
        """Wake the tailer now (from the event loop's thread)."""
        self._wake.set()

    async def wait(self, timeout_s: float) -> bool:
        """Sleep until a hint arrives or `timeout_s` passes. Returns True when woken by a hint."""
        if not self._wake.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(timeout_s, 0.0))
            except TimeoutError:
                return False
        self._wake.clear()
        return True

    def take_early_opened(self) -> list[tuple[str, int, os.stat_result]]:
        return []

    def take_structure_changed(self) -> bool:
        """True (once) when a create/move/delete was seen since the last call."""
        changed, self.structure_changed = self.structure_changed, False
        return changed

    def close(self) -> None:
        pass


class PollingWatcher(Watcher):
    """Wakes every interval. `probe()` tells cheaply whether a watched directory changed (its mtime
    moves on every create, rename and delete inside it), so discovery runs at the poll interval only
    when something appeared or went, not a glob per poll."""

    mechanism = "poll"

    def __init__(self, interval_s: float) -> None:
        super().__init__(interval_s)
        self._directories: dict[Path, tuple[int, int, int] | None] = {}

    def watch_directories(self, directories: set[Path]) -> None:
        self._directories = {d: self._directories.get(d, self._signature(d)) for d in directories}

    def probe(self) -> bool:
        changed = False
        for directory, before in self._directories.items():
            now = self._signature(directory)
            if now != before:
                self._directories[directory] = now
                changed = True
        return changed

    @staticmethod
    def _signature(directory: Path) -> tuple[int, int, int] | None:
        try:
            st = os.stat(directory)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_ctime_ns


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ObserverInotifyWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.watcher._on_observer_event(event)


class _EventThreadWatcher(Watcher):
    """What both inotify watchers share: a watcher thread that opens new files at once (so a file
    renamed away moments later is still held) and wakes the tailer's loop, at most once per wake-up."""

    def __init__(self, interval_s: float, wants_path: Callable[[str], bool]) -> None:
        super().__init__(interval_s)
        self._wants_path = wants_path
        self._lock = threading.Lock()
        self._early: list[tuple[str, int, os.stat_result]] = []
        self._pending_wake = threading.Event()
        self.events_seen = 0
        self.early_opened = 0
        self._started = False

    def take_early_opened(self) -> list[tuple[str, int, os.stat_result]]:
        with self._lock:
            early, self._early = self._early, []
        return early

    def take_structure_changed(self) -> bool:
        with self._lock:
            changed, self.structure_changed = self.structure_changed, False
        return changed

    def _close_early_opened(self) -> None:
        """On close: files opened early that the tailer never took over are released."""
        for _path, fd, _st in self.take_early_opened():
            try:
                os.close(fd)
            except OSError:
                pass

    def _wake_soon(self) -> None:
        if not self._pending_wake.is_set() and self._loop is not None:
            self._pending_wake.set()
            try:
                self._loop.call_soon_threadsafe(self._wake_from_thread)
            except RuntimeError:
                pass  # loop closed

    def _wake_from_thread(self) -> None:
        self._pending_wake.clear()
        self._wake.set()

    def _open_early(self, path: str) -> None:
        fd_and_stat = open_if_wanted(path, self._wants_path)
        if fd_and_stat is not None:
            with self._lock:
                self._early.append((path, *fd_and_stat))
            self.early_opened += 1


class InotifyWatcher(_EventThreadWatcher):
    """inotify on the followed directories, through watchdog's low-level `InotifyFD` (one reader
    thread, raw events). Not watchdog's Observer: its move-event grouper holds every event queued
    behind an unpaired IN_MOVED_FROM (a rename *out of* the directory) for 0.5 s, and a file created
    right after such a rename could be rotated away before we hear of it."""

    mechanism = "inotify"
    STRUCTURE = (
        (
            IN.IN_CREATE
            | IN.IN_MOVED_TO
            | IN.IN_MOVED_FROM
            | IN.IN_DELETE
            | IN.IN_ATTRIB
            | IN.IN_DELETE_SELF
            | IN.IN_MOVE_SELF
        )
        if IN is not None
        else 0
    )

    def __init__(self, interval_s: float, wants_path: Callable[[str], bool]) -> None:
        super().__init__(interval_s, wants_path)
        assert InotifyFD is not None
        self._inotify = InotifyFD()  # STRUCTURE events: read at once (early opening)
        self._modify_inotify = _CoalescingInotifyFD()  # IN_MODIFY only: read coalesced
        self._callback_id = CallbackId(id(self))
        self._watches: dict[Path, tuple[int, int, int, int]] = {}  # dir -> (wd, modify wd, dev, ino)
        self._dir_by_wd: dict[int, Path] = {}
        self.unwatchable: set[Path] = set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        super().start(loop)
        self._inotify.start()
        self._modify_inotify.start()
        self._started = True

    def watch_directories(self, directories: set[Path]) -> None:
        for directory in list(self._watches):
            wd, modify_wd, dev, ino = self._watches[directory]
            try:
                st = os.stat(directory)
                same = (st.st_dev, st.st_ino) == (dev, ino)
            except OSError:
                same = False
            if directory not in directories or not same:
                with self._lock:
                    del self._watches[directory]
                    self._dir_by_wd.pop(wd, None)
                self._remove_watch(self._inotify, wd)
                self._remove_watch(self._modify_inotify, modify_wd)
        for directory in directories:
            if directory in self._watches:
                continue
            try:
                st = os.stat(directory)
                if not stat.S_ISDIR(st.st_mode):
                    continue
                wd = self._inotify.add_callback(
                    os.fsencode(directory), Mask(self.STRUCTURE), self, self._callback_id
                )
                try:
                    modify_wd = self._modify_inotify.add_callback(
                        os.fsencode(directory), Mask(IN.IN_MODIFY), self, self._callback_id
                    )
                except OSError:
                    self._remove_watch(self._inotify, wd)
                    raise
            except OSError as error:
                if error.errno in (errno.ENOSPC, errno.EMFILE) and directory not in self.unwatchable:
                    # out of inotify watches (fs.inotify.max_user_watches): the tailer polls instead
                    self.unwatchable.add(directory)
                    events.emit(
                        Event.FILE_ERROR,
                        path=str(directory),
                        kind="inotify_watch_failed",
                        error=error.strerror or str(error),
                    )
                continue  # vanished or unreadable: the next discovery retries
            self.unwatchable.discard(directory)
            with self._lock:
                self._watches[directory] = (wd, modify_wd, st.st_dev, st.st_ino)
                self._dir_by_wd[wd] = directory

    def _remove_watch(self, inotify: InotifyFD, wd: int) -> None:
        try:
            inotify.remove_callbacks([(WatchDescriptor(wd), self._callback_id)])
        except (KeyError, OSError, ValueError):
            pass

    def close(self) -> None:
        if self._started:
            self._inotify.stop()
            self._modify_inotify.stop()
            self._inotify.join(timeout=5)
            self._modify_inotify.join(timeout=5)
        self._close_early_opened()

    # -- inotify threads (watchdog's WatchCallback protocol) --------------------------------------
    def on_event(self, event: InotifyEvent) -> None:
        self.events_seen += 1
        mask = event.mask
        if mask & self.STRUCTURE:
            if mask & (IN.IN_CREATE | IN.IN_MOVED_TO) and not mask & IN.IN_ISDIR and event.name:
                directory = self._dir_by_wd.get(event.wd)
                if directory is not None:
                    self._open_early(os.path.join(directory, os.fsdecode(event.name)))
            with self._lock:
                self.structure_changed = True
        self._wake_soon()

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        with self._lock:
            self.structure_changed = True
        self._wake_soon()

    def on_queue_overflow(self) -> None:
        with self._lock:
            self.structure_changed = True  # events were lost: rescan now
        self._wake_soon()


def open_if_wanted(path: str, wants_path: Callable[[str], bool]) -> tuple[int, os.stat_result] | None:
    """Open a just-created followed regular file (in a watcher thread), or None."""
    if not wants_path(path):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None  # the tailer's own discovery reports errors
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return fd, st


class ObserverInotifyWatcher(_EventThreadWatcher):
    """Fallback for watchdog versions without `InotifyFD`: the Observer API (moves out of a
    directory delay later events by watchdog's 0.5 s move-grouping window)."""

    mechanism = "inotify"

    def __init__(self, interval_s: float, wants_path: Callable[[str], bool]) -> None:
        super().__init__(interval_s, wants_path)
        self._observer: BaseObserver = Observer()
        self._observer.daemon = True
        self._handler = _Handler(self)
        self._watches: dict[Path, tuple[ObservedWatch, int, int]] = {}  # dir -> (watch, dev, ino)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        super().start(loop)
        self._observer.start()
        self._started = True

    def watch_directories(self, directories: set[Path]) -> None:
        for directory in list(self._watches):
            watch, dev, ino = self._watches[directory]
            try:
                st = os.stat(directory)
                same = (st.st_dev, st.st_ino) == (dev, ino)
            except OSError:
                same = False
            if directory not in directories or not same:
                try:
                    self._observer.unschedule(watch)
                except (KeyError, OSError, ValueError):
                    pass
                del self._watches[directory]
        for directory in directories:
            if directory in self._watches:
                continue
            try:
                st = os.stat(directory)
                if not stat.S_ISDIR(st.st_mode):
                    continue
                watch = self._observer.schedule(self._handler, str(directory), recursive=False)
            except OSError:
                continue  # vanished or unreadable: the next discovery retries
            self._watches[directory] = (watch, st.st_dev, st.st_ino)

    def close(self) -> None:
        if self._started:
            self._observer.stop()
            self._observer.join(timeout=5)
        self._close_early_opened()

    # -- observer thread -------------------------------------------------------------------------
    def _on_observer_event(self, event: FileSystemEvent) -> None:
        self.events_seen += 1
        kind = event.event_type
        if kind in ("created", "moved", "deleted"):
            path = event.dest_path if kind == "moved" else event.src_path
            if kind != "deleted" and not event.is_directory:
                self._open_early(os.fsdecode(path))
            with self._lock:
                self.structure_changed = True
        elif kind in ("closed", "closed_no_write", "opened"):
            return  # no content change
        self._wake_soon()
