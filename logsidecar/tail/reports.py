"""Problems with paths, said once: errors once per path and kind, refusals once per path and reason
(`file_refused`, by the file-opening policy), and `file_recovered` once a path that had one is
followed again. A failing path is retried silently at every discovery.

The memory of what was said is bounded (MAX_PATHS_SAID, oldest first out): a volume where thousands of
paths fail once and vanish must not grow it; a path forgotten that fails again is said again."""

from __future__ import annotations

import errno
import os

from logsidecar import events
from logsidecar.events import FileError, FileRecovered
from logsidecar.tail.counters import TailCounters
from logsidecar.tail.discovery import PathMatcher
from logsidecar.tail.open_policy import FilePolicy, Refused

MAX_PATHS_SAID = 4096


class PathReports:
    def __init__(self, policy: FilePolicy, counters: TailCounters) -> None:
        self.policy = policy
        self.counters = counters
        self._said: dict[str, str] = {}  # path -> error kind said once

    def __bool__(self) -> bool:
        """Some path has a problem said and not yet recovered."""
        return bool(self._said)

    def error(self, path: str, error: OSError | str) -> None:
        if isinstance(error, OSError):
            kind = errno.errorcode.get(error.errno or 0, "OSError")
            message = error.strerror or str(error)
        else:
            kind = message = error
        if self._said.get(path) == kind:
            return  # said once; retried silently every discovery
        self._remember(path, kind)
        self.counters.file_errors += 1
        target = None
        if os.path.islink(path):
            target = os.path.realpath(path)
            if target.startswith(("/dev/", "/proc/")):
                # the official httpd image links its logs to /dev/stdout: nothing lands on the volume
                message = f"{message}: a symlink to {target}; the writer logs to a stream, not to this file"
        events.emit(FileError(path=path, kind=kind, error=message, target=target))

    def refused(self, refused: Refused) -> None:
        if self.policy.report(refused):
            self.counters.files_refused += 1
            self._remember(refused.path, refused.reason)  # followed later: file_recovered, once

    def _remember(self, path: str, said: str) -> None:
        self._said.pop(path, None)  # re-inserted last: the oldest said goes first
        self._said[path] = said
        if len(self._said) > MAX_PATHS_SAID:
            del self._said[next(iter(self._said))]

    def problem(self, path: str) -> str | None:
        """The error kind or refusal reason said for `path` and not yet recovered."""
        return self._said.get(path)

    def recovered(self, path: str) -> None:
        if self._said.pop(path, None) is not None:
            events.emit(FileRecovered(path=path))


def waiting_patterns(matcher: PathMatcher, followed: set[str], reports: PathReports) -> dict[str, str]:
    """{pattern: why it has no followed file}: "no file matches", "unreadable: ..." (a directory
    on its path cannot be entered or listed), or "refused: ..." (every match refused or failing)."""
    waiting = {}
    for pattern in matcher.include:
        matches = matcher.matched(pattern)
        if any(m in followed for m in matches):
            continue
        blocked = matcher.blocked_why(pattern)
        if blocked:
            waiting[pattern] = f"unreadable: {blocked}"
        elif not matches:
            waiting[pattern] = "no file matches"
        else:
            shown = ", ".join(f"{m} ({reports.problem(m) or 'not opened yet'})" for m in matches[:3])
            more = f" and {len(matches) - 3} more" if len(matches) > 3 else ""
            waiting[pattern] = f"refused: {shown}{more}"
    return waiting
