"""`--exit-when-exists PATH`: wait for the file that says the app container has stopped.

A classic (non-native) sidecar never stops by itself, so a Job whose Pod has one never completes
(kubernetes#25908). The app says it is done by creating a file on the shared log volume, after its
last log line: its container's command does it once the app process has exited (a preStop hook runs
before the app is even signalled, and not at all when the app exits by itself). The supervisor then
stops exactly as on SIGTERM: no more discovery, every followed file read to its end, delivered and
committed within --drain-timeout, exit 0.

The path is checked every `POLL_S` (a stat on the executor: a stalled network mount must not block
the event loop), only while the option is set; a file that already exists at start means the app
stopped before us (a sidecar restarted after the app finished): drain and exit at once.
"""

from __future__ import annotations

import asyncio
import os

# How often the path is checked. A Job completes at most this much later than it could; a stat per
# half second costs nothing.
POLL_S = 0.5


async def wait_for_exit_marker(path: str, poll_s: float = POLL_S) -> None:
    """Return once `path` exists (as anything, even a dangling symlink)."""
    loop = asyncio.get_running_loop()
    while not await loop.run_in_executor(None, _exists, path):
        await asyncio.sleep(poll_s)


def _exists(path: str) -> bool:
    return os.path.lexists(path)
