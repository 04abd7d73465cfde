"""The tailer's totals since start (per-file counters live on each reader: `reader.ReaderCounters`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TailCounters:
    """Totals since start (per-file counters live on each reader and are listed by stats())."""

    files_added: int = 0
    rotations: int = 0
    truncations: int = 0
    copytruncate_recovered: int = 0
    files_drained: int = 0
    bytes_abandoned: int = 0
    bytes_possibly_lost: int = 0
    file_errors: int = 0
    files_refused: int = 0  # by the file-opening policy (tail.open_policy), once per path and reason
    lines_read: int = 0
    bytes_read: int = 0
    truncated_lines: int = 0
    nul_runs: int = 0
    cycles: int = 0
    inotify_overflows: int = 0  # kernel queue overflows, each followed by a full rescan
    files_closed_idle: int = 0  # idle files closed to stay within the descriptor budget (fd_budget)
    files_reopened: int = 0  # ...and reopened by identity when they changed

    def totals(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]
