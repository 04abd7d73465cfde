"""Values shared between the tailer and its consumer (the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from logsidecar.tail.open_policy import FollowSymlinks


class WatchMode(StrEnum):
    AUTO = "auto"  # inotify + slow stat safety net; polling where inotify is known to miss writes
    INOTIFY = "inotify"
    POLL = "poll"


class StartAt(StrEnum):
    BEGINNING = "beginning"
    END = "end"


@dataclass(frozen=True, slots=True)
class TailOptions:
    include: tuple[str, ...]  # paths or globs (`**` allowed)
    exclude: tuple[str, ...] = ()
    state_dir: Path | None = None  # None: checkpoints kept in memory only
    watch: WatchMode = WatchMode.AUTO
    start_at: StartAt = StartAt.BEGINNING  # only for files with no checkpoint
    ignore_older_s: float | None = None
    max_line_bytes: int = 1024 * 1024
    read_chunk_bytes: int = 256 * 1024
    max_batch_lines: int = 4096
    partial_line_flush_s: float = 5.0  # a last line with no newline is emitted after this long
    poll_interval_s: float = 0.25  # stat polling period in poll mode
    safety_poll_interval_s: float = 2.0  # slow stat safety net under inotify
    discover_interval_s: float = 1.0  # glob re-scan for new files
    max_rotated_files_held: int = 64  # rotated files kept open until drained
    checkpoint_interval_s: float = 1.0
    forget_after_s: float = 24 * 3600.0  # checkpoint entries of files gone this long are garbage-collected
    fingerprint_bytes: int = 1024
    follow_symlinks: FollowSymlinks = FollowSymlinks.WITHIN  # see tail.open_policy


@dataclass(slots=True)
class ReadBatch:
    """Complete lines read from one file, in file order.

    `end_offsets[i]` is the byte offset just past line i's newline (or past the bytes of a
    truncated/partial-flushed line), so acknowledging it resumes with line i+1. Lines carry no
    newline. `truncated` holds the indices of lines cut at max_line_bytes. `engine_times_ns[i]`, for
    lines read through a container engine's log API, is the engine's time of line i (when the container
    wrote it, nanoseconds since the epoch): the time of a line that has none of its own.
    """

    file_key: str
    path: str
    lines: list[bytes]
    end_offsets: list[int]
    truncated: set[int] = field(default_factory=set)
    engine_times_ns: list[int] | None = None

    @property
    def end_offset(self) -> int:
        return self.end_offsets[-1]
