"""PathReports says each path's problem once, and its memory of what it said is bounded."""

from __future__ import annotations

from typing import Any

from logsidecar import events
from logsidecar.events import Event
from logsidecar.tail.counters import TailCounters
from logsidecar.tail.open_policy import FilePolicy
from logsidecar.tail.reports import MAX_PATHS_SAID, PathReports


def test_errors_are_said_once_per_path_and_the_memory_of_them_is_bounded() -> None:
    said: list[str] = []

    def listen(event: Event, fields: dict[str, Any]) -> None:
        if event is Event.FILE_ERROR:
            said.append(fields["path"])

    unsubscribe = events.subscribe(listen)
    try:
        reports = PathReports(FilePolicy(), TailCounters())
        paths = [f"/nowhere/{i}.log" for i in range(MAX_PATHS_SAID + 10)]
        for path in paths:
            reports.error(path, "EACCES")
        reports.error(paths[-1], "EACCES")  # remembered: not said again
        assert said == paths
        assert len(reports._said) == MAX_PATHS_SAID  # noqa: SLF001 - the bound under test
        reports.error(paths[0], "EACCES")  # the oldest was forgotten: said again
        assert said == [*paths, paths[0]]
    finally:
        unsubscribe()
