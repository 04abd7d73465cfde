"""Filesystem calls that cannot stop the event loop: network mounts go through aiofiles, with a deadline.

On NFS, SMB, FUSE and the like a stat, open or read waits for the server, and a dead server makes it
wait for minutes (soft mounts) or for ever (hard mounts). Made on the event loop, one such call would
stop everything: the other files, /healthz, checkpoints. So in polling mode (fstype.needs_polling)
`FsAccess` sends each call on such a mount through aiofiles (aiofiles.os.stat, listdir, and
aiofiles.os.wrap for open, pread and glob) to worker threads, and `StallGuard` waits at most
`stall_after_s` for it:

- A call that has not returned by then is *stalled*: the caller gets `Stalled` (an OSError,
  ETIMEDOUT) and goes on with its other files; `file_stalled` is emitted with the path, the operation
  and the mount (metric logsidecar_io_stalls_total). The call keeps its thread until the server
  answers (a thread blocked in the kernel cannot be cancelled); then `file_recovered`
  (kind="stalled") says for how long, and its late result is discarded (a late descriptor closed).
- Threads are bounded: while a call on a mount is stalled, every new call on that mount fails at once
  with `Stalled`, without taking a thread. A hung mount therefore holds only the calls that were in
  flight on it when it stopped answering (the tailer makes them one at a time: one thread), and one
  outstanding call per path at most. The workers are daemon threads, so a call that never returns
  does not keep the process from exiting.
- Mounts are found in /proc/self/mountinfo by the path's text alone: resolving symlinks would ask the
  filesystem that may hang.

Local filesystems keep the direct path: a page-cache read inline costs a fraction of a thread hop
(reader.py), and aiofiles is the slowest way to read a local file.
"""

from __future__ import annotations

import asyncio
import errno
import glob
import os
import queue
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, TypeVar

import aiofiles.os

from logsidecar import events
from logsidecar.events import FileRecovered, FileStalled
from logsidecar.tail.fstype import Mount, mount_of, mount_table, needs_polling

T = TypeVar("T")

STALL_AFTER_S = 2.0  # a stat or read on a live mount answers in milliseconds; 2 s is a server gone
MAX_THREADS = 8  # a hung mount holds one; the others keep the rest
MOUNT_TABLE_TTL_S = 5.0  # mounts come and go (a volume attached later): the table is re-read this often

_open = aiofiles.os.wrap(os.open)
_pread = aiofiles.os.wrap(os.pread)


def _glob_recursive(pattern: str) -> list[str]:
    return glob.glob(pattern, recursive=True)


_glob = aiofiles.os.wrap(_glob_recursive)


class Stalled(OSError):
    """A filesystem call on `path` did not return within the stall threshold (or its mount is stalled)."""

    def __init__(self, path: str, operation: str, mount: str) -> None:
        super().__init__(
            errno.ETIMEDOUT, f"{operation} on {mount} did not return: the mount is stalled", path
        )
        self.operation = operation
        self.mount = mount


class DaemonThreadExecutor(Executor):
    """Up to `max_threads` daemon worker threads. concurrent.futures' pool joins its threads at
    interpreter exit, so a call stuck on a dead server would keep the process alive after a stop."""

    def __init__(self, max_threads: int, name: str) -> None:
        self._max_threads = max_threads
        self._name = name
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._idle = threading.Semaphore(0)
        self._threads = 0
        self._lock = threading.Lock()
        self._shut_down = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if kwargs:
            raise TypeError("DaemonThreadExecutor.submit takes positional arguments only")
        future: Future[T] = Future()
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._work.put((future, fn, args))
            if not self._idle.acquire(blocking=False) and self._threads < self._max_threads:
                self._threads += 1
                threading.Thread(
                    target=self._worker, name=f"{self._name}-{self._threads}", daemon=True
                ).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stops idle workers; never waits for a call stuck in the kernel (`wait` is not honoured)."""
        with self._lock:
            self._shut_down = True
            for _ in range(self._threads):
                self._work.put(None)

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as error:  # noqa: BLE001 - handed to the waiting coroutine
                    future.set_exception(error)
            del item, future
            self._idle.release()


class StallGuard:
    """Runs filesystem calls on worker threads and waits at most `stall_after_s` for each."""

    def __init__(self, stall_after_s: float = STALL_AFTER_S, max_threads: int = MAX_THREADS) -> None:
        self.stall_after_s = stall_after_s
        self.executor = DaemonThreadExecutor(max_threads, "logsidecar-netfs")
        self._in_flight: dict[str, asyncio.Future[Any]] = {}  # path -> its outstanding call
        self._stalled_mounts: dict[str, int] = {}  # mount point -> stalled calls still outstanding
        self._said: dict[str, set[str]] = {}  # mount point -> paths said stalled while it is
        self.stalls = 0  # calls that passed the threshold, since start

    def stalled(self, mount: str) -> bool:
        return mount in self._stalled_mounts

    async def call(
        self,
        path: str,
        mount: str,
        operation: str,
        run: Callable[..., Awaitable[T]],
        *args: Any,
        discard: Callable[[T], object] | None = None,
    ) -> T:
        """`await run(*args, executor=...)` (an aiofiles call), or raise `Stalled`. `discard` releases
        the result of a call that returns after the caller gave up on it (a late descriptor)."""
        earlier = self._in_flight.get(path)
        if earlier is not None and mount not in self._stalled_mounts:
            await asyncio.wait({earlier}, timeout=self.stall_after_s)  # one outstanding call per path
        if (earlier is not None and not earlier.done()) or mount in self._stalled_mounts:
            self._say_stalled(path, operation, mount, waited=False)
            raise Stalled(path, operation, mount)
        started = time.monotonic()
        future = asyncio.ensure_future(run(*args, executor=self.executor))
        self._in_flight[path] = future
        done, _ = await asyncio.wait({future}, timeout=self.stall_after_s)
        if done:
            if self._in_flight.get(path) is future:
                del self._in_flight[path]
            return future.result()
        self.stalls += 1
        self._stalled_mounts[mount] = self._stalled_mounts.get(mount, 0) + 1
        self._say_stalled(path, operation, mount, waited=True)
        future.add_done_callback(lambda f: self._returned_late(f, path, mount, operation, started, discard))
        raise Stalled(path, operation, mount)

    def _say_stalled(self, path: str, operation: str, mount: str, waited: bool) -> None:
        """Once per path while its mount is stalled: the call that waited names the threshold; a call
        refused because another one on the mount is stuck says so (no thread, no wait)."""
        said = self._said.setdefault(mount, set())
        if path in said:
            return
        said.add(path)
        if waited:
            events.emit(
                FileStalled(path=path, operation=operation, mount=mount, after_s=round(self.stall_after_s, 3))
            )
        else:
            events.emit(FileStalled(path=path, operation=operation, mount=mount, refused=True))

    def _returned_late(
        self,
        future: asyncio.Future[Any],
        path: str,
        mount: str,
        operation: str,
        started: float,
        discard: Callable[[Any], object] | None,
    ) -> None:
        if self._in_flight.get(path) is future:
            del self._in_flight[path]
        left = self._stalled_mounts.get(mount, 0) - 1
        if left > 0:
            self._stalled_mounts[mount] = left
        else:
            self._stalled_mounts.pop(mount, None)
        if future.cancelled():
            return  # the loop is shutting down: the call itself may still be stuck in the kernel
        if future.exception() is None and discard is not None:
            try:
                discard(future.result())
            except OSError:
                pass
        stalled_s = round(time.monotonic() - started, 3)
        events.emit(
            FileRecovered(path=path, kind="stalled", operation=operation, mount=mount, stalled_s=stalled_s)
        )
        said = self._said.get(mount, set())
        said.discard(path)
        if left <= 0:
            for other in sorted(self._said.pop(mount, set())):
                events.emit(FileRecovered(path=other, kind="stalled", mount=mount, stalled_s=stalled_s))

    def close(self) -> None:
        self.executor.shutdown(wait=False)


def _link_target(path: str) -> str | None:
    return os.path.realpath(path) if os.path.islink(path) else None


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class FsAccess:
    """The tailer's filesystem calls: direct on local filesystems; through `guard` (aiofiles, worker
    threads, stall deadline) for paths on mounts that need polling. Without a guard, always direct."""

    def __init__(self, guard: StallGuard | None = None) -> None:
        self.guard = guard
        self._mounts: list[Mount] | None = None
        self._mounts_read = -MOUNT_TABLE_TTL_S

    def guarded_mount(self, path: str) -> str | None:
        """The mount point of `path` when calls on it go through the guard, else None."""
        if self.guard is None:
            return None
        now = time.monotonic()
        if now - self._mounts_read >= MOUNT_TABLE_TTL_S:
            self._mounts, self._mounts_read = mount_table(), now
        if self._mounts is None:
            return "/"  # no mount table: treat everything as one mount that may hang (the safe choice)
        mount = mount_of(os.path.abspath(path), self._mounts)
        if mount is None:
            return "/"
        return mount.point if needs_polling(mount.fs_type) else None

    def is_stalled(self, path: str) -> bool:
        mount = self.guarded_mount(path)
        return mount is not None and self.guard is not None and self.guard.stalled(mount)

    async def stat(self, path: str) -> os.stat_result:
        mount = self.guarded_mount(path)
        if mount is None or self.guard is None:
            return os.stat(path)
        return await self.guard.call(path, mount, "stat", aiofiles.os.stat, path)

    async def fstat(self, fd: int, path: str) -> os.stat_result:
        mount = self.guarded_mount(path)
        if mount is None or self.guard is None:
            return os.fstat(fd)
        return await self.guard.call(path, mount, "fstat", aiofiles.os.stat, fd)

    async def open(self, path: str, flags: int) -> int:
        mount = self.guarded_mount(path)
        if mount is None or self.guard is None:
            return os.open(path, flags)
        executor = self.guard.executor  # a late descriptor is closed off the loop too (see close_file)
        return await self.guard.call(
            path, mount, "open", _open, path, flags, discard=lambda fd: executor.submit(_close_quietly, fd)
        )

    async def pread(self, fd: int, size: int, offset: int, path: str) -> bytes:
        mount = self.guarded_mount(path)
        if mount is None or self.guard is None:
            return os.pread(fd, size, offset)
        return await self.guard.call(path, mount, "read", _pread, fd, size, offset)

    async def read_head(self, fd: int, size: int, path: str) -> bytes:
        """The first `size` bytes (a fingerprint); b"" when unreadable. Raises Stalled."""
        try:
            return await self.pread(fd, size, 0, path)
        except Stalled:
            raise
        except OSError:
            return b""

    async def link_target_directories(self, paths: Iterable[str]) -> set[Path]:
        """The directories holding the targets of those `paths` that are symlinks (stalled ones left out)."""
        found: set[Path] = set()
        for path in paths:
            try:
                target = await self.call(path, "stat", _link_target, path)
            except Stalled:
                continue
            if target is not None:
                found.add(Path(os.path.dirname(target)))
        return found

    def close_file(self, fd: int, path: str) -> None:
        """Close a descriptor without waiting: on a network mount close() may wait for the server
        (NFS close-to-open, FUSE flush), so it is left to a worker thread."""
        if self.guarded_mount(path) is None or self.guard is None:
            _close_quietly(fd)
        else:
            self.guard.executor.submit(_close_quietly, fd)

    async def is_dir(self, path: str) -> bool:
        try:
            st = await self.stat(path)
        except Stalled:
            raise
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode)

    async def glob(self, pattern: str, base: str) -> list[str]:
        """glob.glob(pattern, recursive=True); `base` (its static directory) names the mount."""
        mount = self.guarded_mount(base)
        if mount is None or self.guard is None:
            return glob.glob(pattern, recursive=True)
        return await self.guard.call(base, mount, "scandir", _glob, pattern)

    async def call(self, path: str, operation: str, fn: Callable[..., T], *args: Any) -> T:
        """Any other blocking call about `path` (a directory walk), under the same rules."""
        mount = self.guarded_mount(path)
        if mount is None or self.guard is None:
            return fn(*args)
        return await self.guard.call(path, mount, operation, aiofiles.os.wrap(fn), *args)

    def close(self) -> None:
        if self.guard is not None:
            self.guard.close()


_UNPROBED = (-1, -1, -1)


class DirectoryProbe:
    """Polling mode's "did a watched directory change?" (its mtime moves on every create, rename and
    delete inside it), asked through `FsAccess`, so a stalled mount's directories are skipped, not
    waited for. A directory's first signature is taken at its first probe."""

    def __init__(self) -> None:
        self._signatures: dict[str, tuple[int, int, int] | None] = {}

    def watch(self, directories: set[str]) -> None:
        self._signatures = {d: self._signatures.get(d, _UNPROBED) for d in directories}

    async def changed(self, fs: FsAccess) -> bool:
        changed = False
        for directory, before in list(self._signatures.items()):
            try:
                st = await fs.stat(directory)
                now: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
            except Stalled:
                continue
            except OSError:
                now = None
            if now != before:
                changed |= before != _UNPROBED
                self._signatures[directory] = now
        return changed
