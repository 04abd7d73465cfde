"""Which watcher: inotify, or stat polling where inotify is known to miss writes.

`--watch auto` looks at the filesystem under each include pattern's static base (the nearest
existing directory): one that needs polling (network, fuse, overlay... see `fstype.needs_polling`)
makes the whole tailer poll. Polling also installs the stall guard on the tailer's filesystem calls
(`netfs.FsAccess`), so a network server that stops answering never blocks the loop. When no inotify
instance can be had (fs.inotify.max_user_instances, or no inotify at all) the tailer polls, and says so.
The choice is said once, in `watcher_selected`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from logsidecar import events
from logsidecar.events import Event, FileError
from logsidecar.tail.discovery import static_base
from logsidecar.tail.fstype import filesystem_type, needs_polling
from logsidecar.tail.netfs import FsAccess, StallGuard
from logsidecar.tail.open_policy import FilePolicy
from logsidecar.tail.options import TailOptions, WatchMode
from logsidecar.tail.watch.base import Watcher
from logsidecar.tail.watch.inotify import InotifyWatcher
from logsidecar.tail.watch.polling import PollingWatcher


def select_watcher(
    options: TailOptions,
    include: tuple[str, ...],
    wants_path: Callable[[str], bool],
    policy: FilePolicy,
    fs: FsAccess,
) -> Watcher:
    """The watcher for `options.watch` over the `include` patterns; in polling mode `fs` gets its
    stall guard (network filesystems: never block the loop on a call)."""
    mode = options.watch
    fs_types: dict[str, str | None] = {}
    if mode is WatchMode.AUTO:
        for pattern in include:
            base = static_base(pattern)
            while not os.path.exists(base) and base != base.parent:  # False for a directory we cannot enter
                base = base.parent
            fs_types[str(base)] = filesystem_type(base)
        mode = WatchMode.POLL if any(needs_polling(t) for t in fs_types.values()) else WatchMode.INOTIFY
    watcher: Watcher
    if mode is WatchMode.POLL:
        fs.guard = StallGuard()
        watcher = PollingWatcher(options.poll_interval_s, fs)
    else:
        try:
            # directories inotify cannot watch are covered by stat polling at the poll interval
            watcher = InotifyWatcher(
                options.safety_poll_interval_s,
                wants_path,
                policy,
                unwatchable_interval_s=options.poll_interval_s,
            )
        except OSError as error:
            events.emit(FileError(path="", kind="inotify_unavailable", error=str(error)))
            watcher = PollingWatcher(options.poll_interval_s, fs)
    events.emit(
        Event.WATCHER_SELECTED,
        mechanism=watcher.mechanism,
        requested=options.watch.value,
        filesystems=fs_types,
    )
    return watcher
