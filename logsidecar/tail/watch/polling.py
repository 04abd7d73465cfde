"""Stat polling: wake every interval, and look for changes no event will tell of.

For filesystems where inotify misses writes (NFS, SMB, fuse, 9p/virtiofs, overlay; see `select`), and
where no inotify instance is left. `probe()` tells cheaply whether a watched directory changed (its
mtime moves on every create, rename and delete inside it), so discovery runs at the poll interval only
when something appeared or went, not a glob per poll. On a network mount (`fs` has a stall guard) the
directories are probed through the guard (`netfs.DirectoryProbe`): a server that stops answering
stalls its own directories only, never the loop.

Polling bound: with stat polling a file must stay at a followed path for at least poll_interval_s to
be seen; one renamed away sooner (and not matched by the glob under its new name) is not known to us.
inotify has no such bound: files are opened from the IN_CREATE event.
"""

from __future__ import annotations

import os
from pathlib import Path

from logsidecar.tail.netfs import DirectoryProbe, FsAccess
from logsidecar.tail.watch.base import PathsMoved, Watcher


class PollingWatcher(Watcher):
    """Wakes every interval; `probe()` looks at the watched directories, then at the followed paths."""

    mechanism = "poll"

    def __init__(self, interval_s: float, fs: FsAccess | None = None) -> None:
        super().__init__(interval_s)
        self._fs = fs if fs is not None else FsAccess()
        self._directories: dict[Path, tuple[int, int, int] | None] = {}
        self._network_directories = DirectoryProbe()

    def watch_directories(self, directories: set[Path]) -> None:
        if self._fs.guard is not None:
            self._network_directories.watch({str(d) for d in directories})  # probed through the stall guard
            directories = set()
        self._directories = {d: self._directories.get(d, self._signature(d)) for d in directories}

    async def probe(self, paths_moved: PathsMoved) -> bool:
        return (
            self._local_directories_changed()
            or await self._network_directories.changed(self._fs)
            or await paths_moved()
        )

    def _local_directories_changed(self) -> bool:
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
