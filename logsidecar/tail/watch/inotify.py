"""inotify: wake the tailer on changes in the followed directories (see `base` for the interface).

- `InotifyWatcher`: two inotify instances on the directories holding the followed paths.
  Structure events (IN_CREATE / IN_MOVED_* / IN_DELETE / IN_ATTRIB) come through watchdog's raw
  `InotifyFD` reader thread, read at once: for creations and moves *into* a followed path it opens
  the new file immediately, in that thread, so a file that lives at its path for only a few
  milliseconds (fast rename rotation) is held by a descriptor before it can be renamed away. The
  tailer adopts these early descriptors. Content hints (IN_MODIFY) come through `ModifyHints`, a
  non-blocking inotify descriptor read on the event loop itself, no thread: the loop blocks on it
  (epoll) for the whole wait, so an idle tailer wakes only for its intervals (no timer at the end
  of a hold); after the first IN_MODIFY, while a cycle must not start yet (`hold_content_until`, the
  tailer's coalescing within its latency budget) nobody reads it, so the kernel merges the identical
  IN_MODIFY events of a writer appending line by line into one, and a steady writer costs one timer
  wake-up and one read() per cycle.
  When the kernel's structure queue overflows (fs.inotify.max_queued_events; the process was
  frozen or starved while a burst of creates and renames happened), the events in between are gone:
  watchdog (>= 7.1) calls `on_events_lost()`, and the watcher tells the tailer, through
  `take_events_lost()`, to rescan everything it follows. A slow stat interval stays on as a safety
  net for filesystems that do not deliver events at all; where a directory cannot be watched (out of
  inotify watches) the interval becomes the poll interval.

Only watchdog's `InotifyFD` is used, not its Observer: `InotifyFD` exists in every watchdog we
support (>= 7.1, the first release that reports a queue overflow at all: 7.0 drops the event), and the
Observer's move-event grouper holds every event queued behind an unpaired IN_MOVED_FROM for 0.5 s.

Invariants: those of `base`; a flood of IN_MODIFY costs at most one wake-up per hold period.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchDescriptor,
    inotify_add_watch,
    inotify_init,
    inotify_rm_watch,
)
from watchdog.observers.inotify_c import InotifyConstants as IN

from logsidecar import events
from logsidecar.events import FileError
from logsidecar.tail.open_policy import FilePolicy, Refused
from logsidecar.tail.watch.base import EarlyOpened, Watcher

# watchdog logs an overflow (a warning) through `logging`; with no handler configured, Python's
# last-resort handler would print it as plain text into our JSON-lines stderr. The tailer says it as
# an `inotify_overflow` event; an application that configures logging still gets watchdog's records.
logging.getLogger("watchdog").addHandler(logging.NullHandler())

HINT_READ_BYTES = 64 * 1024  # inotify events are 16 bytes + name: one read() drains thousands


class ModifyHints:
    """A non-blocking inotify instance for IN_MODIFY only, read on the event loop (no thread).

    Events are not parsed: any event means "some watched file may have grown" (an IN_IGNORED or
    IN_Q_OVERFLOW too: a spurious cycle costs an fstat per file, a lost hint an interval)."""

    def __init__(self) -> None:
        fd = inotify_init()
        if fd < 0:
            raise _ctypes_os_error()
        os.set_blocking(fd, False)
        os.set_inheritable(fd, False)
        self.fd = fd
        # Two paths to one directory (a symlink, a bind mount) share one watch: count its users.
        self._users: dict[int, int] = {}

    def add(self, directory: Path) -> int:
        wd = inotify_add_watch(self.fd, os.fsencode(directory), IN.IN_MODIFY)
        if wd < 0:
            raise _ctypes_os_error(str(directory))
        self._users[wd] = self._users.get(wd, 0) + 1
        return int(wd)

    def remove(self, wd: int) -> None:
        users = self._users.pop(wd, 0) - 1
        if users > 0:
            self._users[wd] = users
        elif self.fd >= 0:
            # fails harmlessly when the directory is already gone (its watch went with IN_IGNORED)
            inotify_rm_watch(self.fd, WatchDescriptor(wd))

    def drain(self) -> bool:
        """Read every pending event; True when there was at least one."""
        seen = False
        while self.fd >= 0:
            try:
                data = os.read(self.fd, HINT_READ_BYTES)
            except OSError:
                return seen  # EAGAIN: nothing (more) pending
            if not data:
                return seen
            seen = True
            if len(data) <= HINT_READ_BYTES // 2:
                return True  # a short read emptied the queue (saves the EAGAIN read)
        return seen

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _ctypes_os_error(path: str | None = None) -> OSError:
    code = ctypes.get_errno() or errno.EIO
    return OSError(code, os.strerror(code), path) if path else OSError(code, os.strerror(code))


class InotifyWatcher(Watcher):
    """inotify on the followed directories, through watchdog's low-level `InotifyFD` (one reader
    thread, raw events). Its callbacks (watchdog's `WatchCallback` protocol, below) run in watchdog's
    dispatcher thread: they open new files at once (so a file renamed away moments later is still
    held) and wake the tailer's loop, at most once per wake-up. Not watchdog's Observer: its
    move-event grouper holds every event queued behind an unpaired IN_MOVED_FROM (a rename *out of*
    the directory) for 0.5 s, and a file created right after such a rename could be rotated away
    before we hear of it."""

    mechanism = "inotify"
    STRUCTURE = (
        IN.IN_CREATE
        | IN.IN_MOVED_TO
        | IN.IN_MOVED_FROM
        | IN.IN_DELETE
        | IN.IN_ATTRIB
        | IN.IN_DELETE_SELF
        | IN.IN_MOVE_SELF
    )

    def __init__(
        self,
        interval_s: float,
        wants_path: Callable[[str], bool],
        policy: FilePolicy | None = None,
        unwatchable_interval_s: float | None = None,
    ) -> None:
        super().__init__(interval_s)
        self._safety_interval_s = interval_s
        # while a directory cannot be watched, it is covered by stat polling at this interval
        self._unwatchable_interval_s = (
            unwatchable_interval_s if unwatchable_interval_s is not None else interval_s
        )
        self._wants_path = wants_path
        self._policy = policy if policy is not None else FilePolicy()
        self._lock = threading.Lock()
        self._early: list[EarlyOpened] = []
        self._pending_wake = threading.Event()
        self._content_hinted = False  # the current wait was woken by an IN_MODIFY
        self._events_lost = 0  # overflows not yet taken by the tailer
        self.events_seen = 0
        self.early_opened = 0
        self._started = False
        self._inotify = InotifyFD()  # STRUCTURE events: read at once (early opening)
        try:
            self._modify_hints = ModifyHints()  # IN_MODIFY only: read on the loop, coalesced
        except OSError:
            self._inotify.close()
            raise
        self._callback_id = CallbackId(id(self))
        self._watches: dict[Path, tuple[int, int, int, int]] = {}  # dir -> (wd, modify wd, dev, ino)
        self._dir_by_wd: dict[int, Path] = {}
        self.unwatchable: set[Path] = set()

    def take_early_opened(self) -> list[EarlyOpened]:
        with self._lock:
            early, self._early = self._early, []
        return early

    def take_structure_changed(self) -> bool:
        with self._lock:
            changed, self.structure_changed = self.structure_changed, False
        return changed

    def take_events_lost(self) -> int:
        with self._lock:
            lost, self._events_lost = self._events_lost, 0
        return lost

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        super().start(loop)
        self._inotify.start()
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
                self._modify_hints.remove(modify_wd)
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
                    modify_wd = self._modify_hints.add(directory)
                except OSError:
                    self._remove_watch(self._inotify, wd)
                    raise
            except OSError as error:
                if error.errno in (errno.ENOSPC, errno.EMFILE) and directory not in self.unwatchable:
                    # out of inotify watches (fs.inotify.max_user_watches): the tailer polls instead
                    self.unwatchable.add(directory)
                    events.emit(
                        FileError(
                            path=str(directory),
                            kind="inotify_watch_failed",
                            error=error.strerror or str(error),
                        )
                    )
                continue  # vanished or unreadable: the next discovery retries
            self.unwatchable.discard(directory)
            with self._lock:
                self._watches[directory] = (wd, modify_wd, st.st_dev, st.st_ino)
                self._dir_by_wd[wd] = directory
        self.interval_s = self._unwatchable_interval_s if self.unwatchable else self._safety_interval_s

    def _remove_watch(self, inotify: InotifyFD, wd: int) -> None:
        try:
            inotify.remove_callbacks([(WatchDescriptor(wd), self._callback_id)])
        except (KeyError, OSError, ValueError):
            pass

    async def wait(self, timeout_s: float, hold_content_until: float = 0.0) -> bool:
        """As `Watcher.wait`. The hint descriptor is watched (epoll) for the whole timeout, so an idle
        wait is one sleep, with no timer at the end of the hold. The first IN_MODIFY wakes the wait
        without reading the descriptor, which is then left alone until `hold_content_until` (only the
        structure thread or `wake()` end the hold sooner): meanwhile the kernel merges the identical
        IN_MODIFY events of a writer appending line by line into one, drained in one read()."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        loop = self._loop
        assert loop is not None
        self._content_hinted = False
        loop.add_reader(self._modify_hints.fd, self._on_modify_readable)
        try:
            woke = await self._wait_for_wake(deadline - time.monotonic())
        finally:
            loop.remove_reader(self._modify_hints.fd)
        # A structure hint may have set the wake in the same loop turn as the content hint (one
        # clear took both): its flag, set before its wake, says not to hold.
        if woke and self._content_hinted and not self._urgent and not self.structure_changed:
            hold = min(hold_content_until, deadline) - time.monotonic()
            if hold > 0:
                await self._wait_for_wake(hold)  # a structure hint or wake() ends the hold
        self._modify_hints.drain()
        self._urgent = False
        return woke

    def _on_modify_readable(self) -> None:
        # A followed file grew: wake the tailer, and leave the events unread (see `wait`).
        assert self._loop is not None
        self._loop.remove_reader(self._modify_hints.fd)
        self._content_hinted = True
        self.events_seen += 1
        self._wake.set()

    def close(self) -> None:
        if self._started:
            self._inotify.stop()
            self._inotify.join(timeout=5)
        self._modify_hints.close()
        self._close_early_opened()

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
        fd_and_stat = open_if_wanted(path, self._wants_path, self._policy)
        if fd_and_stat is not None:
            with self._lock:
                self._early.append((path, *fd_and_stat))
            self.early_opened += 1

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
        """The kernel dropped events (IN_Q_OVERFLOW). Nothing to repair here: our watches are one
        per directory, not recursive, and the kernel keeps them; the loss is handled in
        `on_events_lost`, which watchdog calls once every callback has returned from this."""

    def on_events_lost(self) -> None:
        """Events between the last one delivered and now are gone, whichever: the tailer must
        re-glob, stat every followed path and look for files created and rotated away meanwhile."""
        with self._lock:
            self._events_lost += 1
            self.structure_changed = True  # never held: the rescan runs at once
        self._wake_soon()


def open_if_wanted(
    path: str, wants_path: Callable[[str], bool], policy: FilePolicy
) -> tuple[int, os.stat_result] | None:
    """Open a just-created followed regular file (in a watcher thread) under the file-opening policy
    (a FIFO, device or directory is never opened), or None."""
    if not wants_path(path):
        return None
    try:
        return policy.open_file(path)
    except (OSError, Refused):
        return None  # the tailer's own discovery reports refusals and errors
