"""Named internal events: the one vocabulary that our own logs and metrics hang off.

The core (tailer, pipeline, sinks) never calls a logger or a metrics API directly; it calls
`events.emit(Event.FILE_ADDED, path=..., ...)`. Subscribers turn events into self-logs (see
`selflog`) and metrics. Emitting with no subscriber costs a dict lookup and a loop over nothing.

Each kind has one shape. A kind emitted from one place with fixed keywords is declared by that call;
a kind whose fields differ between call sites (a rotation seen late or at once, a truncation whose
tail was recovered or lost) is a typed event below, `events.emit(FileTruncated(...))`, so every
site fills in the same declared fields. tests/unit/test_event_shapes.py holds both to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from enum import StrEnum
from typing import Any, ClassVar


class Level(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Event(StrEnum):
    # discovery and files
    FILE_WAITING = "file_waiting"  # a configured path does not exist yet; said once
    FILE_ADDED = "file_added"
    FILE_RESUMED = "file_resumed"  # found a checkpoint for it
    FILE_ROTATED = "file_rotated"  # renamed away / replaced at its path; old one drained
    FILE_TRUNCATED = "file_truncated"
    FILE_DRAINED = "file_drained"  # a rotated/deleted file was read to its end and released
    FILE_REMOVED = "file_removed"  # no longer followed
    FILE_SKIPPED = "file_skipped"  # excluded, or older than --ignore-older
    FILE_ERROR = "file_error"  # permission denied, not a regular file, vanished mount ...
    FILE_RECOVERED = "file_recovered"  # a file that was in error (or stalled) is readable again
    FILE_STALLED = "file_stalled"  # a stat/open/read on a network mount did not return in time
    FILE_REFUSED = "file_refused"  # the file-opening policy refused it (tail.open_policy); said once
    COPYTRUNCATE_RECOVERED = "copytruncate_recovered"
    LINE_TRUNCATED = "line_truncated"
    NUL_RUN_SKIPPED = "nul_run_skipped"
    PARTIAL_LINE_FLUSHED = "partial_line_flushed"
    WATCHER_SELECTED = "watcher_selected"
    INOTIFY_OVERFLOW = "inotify_overflow"  # the kernel dropped events; every followed path rescanned
    FD_LIMITS = "fd_limits"  # RLIMIT_NOFILE at start (soft raised to hard) and the followed-files budget
    FILE_CLOSED_IDLE = "file_closed_idle"  # an idle file closed to stay within the descriptor budget
    FILE_REOPENED = "file_reopened"  # ...reopened by identity when it changed
    FILE_LOST_WHILE_CLOSED = "file_lost_while_closed"  # rotated and removed while closed: lines lost
    FORMAT_DETECTED = "format_detected"  # `auto` locked onto a format for a file (or changed it)
    PARSE_FAILING = "parse_failing"  # a file's recent lines mostly do not parse (pipeline.parse_watch)
    PARSE_RECOVERED = "parse_recovered"  # ...they parse again, or the file was released
    # checkpoints
    CHECKPOINT_WRITTEN = "checkpoint_written"
    CHECKPOINT_ERROR = "checkpoint_error"
    CHECKPOINTS_OFF = "checkpoints_off"  # --state-dir none: nothing survives a restart
    # sinks
    SINK_RETRY = "sink_retry"
    SINK_RECOVERED = "sink_recovered"
    SINK_REJECTED = "sink_rejected"
    SINK_PARTIAL_SUCCESS = "sink_partial_success"
    SINK_MISCONFIGURED = "sink_misconfigured"  # auth, endpoint or headers wrong: retried, never dropped
    SINK_RECORD_TRUNCATED = "sink_record_truncated"  # one record over the request cap, cut to fit
    # lifecycle
    STARTED = "started"
    STOPPING = "stopping"
    EXIT_MARKER_FOUND = "exit_marker_found"  # --exit-when-exists: the app stopped; drain and exit
    STOPPED = "stopped"
    STOP_FORCED = "stop_forced"  # a second stop signal, or the stop budget spent: exiting at once
    CONFIG_RELOADED = "config_reloaded"
    CONFIG_ERROR = "config_error"
    # the HTTP endpoint
    HTTP_ACCEPT_FAILED = "http_accept_failed"  # out of file descriptors; counted, reported rarely


# The default level of each event in our own logs; anything not listed is INFO.
EVENT_LEVELS: dict[Event, Level] = {
    Event.FILE_ERROR: Level.WARNING,
    Event.INOTIFY_OVERFLOW: Level.WARNING,
    Event.FILE_STALLED: Level.WARNING,
    Event.FILE_REFUSED: Level.WARNING,
    Event.LINE_TRUNCATED: Level.WARNING,
    Event.NUL_RUN_SKIPPED: Level.WARNING,
    Event.CHECKPOINT_ERROR: Level.ERROR,
    Event.CHECKPOINTS_OFF: Level.WARNING,
    Event.PARSE_FAILING: Level.WARNING,
    Event.SINK_RETRY: Level.WARNING,
    Event.SINK_REJECTED: Level.ERROR,
    Event.SINK_PARTIAL_SUCCESS: Level.WARNING,
    Event.SINK_MISCONFIGURED: Level.ERROR,
    Event.SINK_RECORD_TRUNCATED: Level.WARNING,
    Event.CONFIG_ERROR: Level.ERROR,
    Event.STOP_FORCED: Level.WARNING,
    Event.HTTP_ACCEPT_FAILED: Level.WARNING,
    Event.CHECKPOINT_WRITTEN: Level.DEBUG,
    Event.PARTIAL_LINE_FLUSHED: Level.DEBUG,
    Event.FILE_SKIPPED: Level.DEBUG,
    Event.FILE_CLOSED_IDLE: Level.DEBUG,
    Event.FILE_REOPENED: Level.DEBUG,
    Event.FILE_LOST_WHILE_CLOSED: Level.WARNING,
}


# -- typed events: the kinds whose fields differ between call sites ----------------------------------
# A field without default is always sent (None too); an optional field is left out when None, as a
# keyword not passed was, so the log lines keep the keys they had.


@dataclass(frozen=True, kw_only=True)
class TypedEvent:
    """The declared fields of one event kind (`event`); `emit(instance)` sends them, in this order."""

    event: ClassVar[Event]

    def fields(self) -> dict[str, Any]:
        declared = _DECLARED.get(type(self))
        if declared is None:  # (name, required) of each field, in order: asked once per class
            declared = _DECLARED[type(self)] = tuple((f.name, f.default is MISSING) for f in fields(self))
        sent = {}
        for name, required in declared:
            value = getattr(self, name)
            if value is not None or required:
                sent[name] = value
        return sent


_DECLARED: dict[type[TypedEvent], tuple[tuple[str, bool], ...]] = {}


@dataclass(frozen=True, kw_only=True)
class FileError(TypedEvent):
    event = Event.FILE_ERROR
    path: str
    kind: str  # what failed: permission, not_regular_file, directory, inotify_watch_failed ...
    error: str
    pattern: str | None = None  # the glob nothing can match while a directory is unreadable
    target: str | None = None  # the path is a symlink to this


@dataclass(frozen=True, kw_only=True)
class FileRecovered(TypedEvent):
    event = Event.FILE_RECOVERED
    path: str
    kind: str | None = None  # what had failed: directory, directory_unreadable, stalled; None: the file
    pattern: str | None = None
    operation: str | None = None  # stalled: the call that stalled on this path
    mount: str | None = None
    stalled_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class FileRefused(TypedEvent):
    event = Event.FILE_REFUSED
    path: str
    reason: str
    detail: str
    target: str | None = None  # a link's target, when the refusal is about it


@dataclass(frozen=True, kw_only=True)
class FileSkipped(TypedEvent):
    event = Event.FILE_SKIPPED
    path: str
    reason: str
    mtime: float | None = None  # ignore_older
    file_key: str | None = None  # a copy of this followed file


@dataclass(frozen=True, kw_only=True)
class FileResumed(TypedEvent):
    event = Event.FILE_RESUMED
    path: str
    file_key: str
    offset: int
    rotated_while_down: bool | None = None
    created_after_last_checkpoint: bool | None = None
    created_while_events_were_lost: bool | None = None
    previous_path: str | None = None


@dataclass(frozen=True, kw_only=True)
class FileRotated(TypedEvent):
    event = Event.FILE_ROTATED
    path: str
    file_key: str
    offset: int | None = None  # where reading stood when the rotation was seen
    seen_late: bool | None = None  # found already rotated at start-up


@dataclass(frozen=True, kw_only=True)
class FileTruncated(TypedEvent):
    event = Event.FILE_TRUNCATED
    path: str
    file_key: str
    new_file_key: str
    offset: int
    recovered: bool  # the old tail was read from a copy (copytruncate)
    copy_path: str | None = None
    bytes_known_lost: int | None = None


@dataclass(frozen=True, kw_only=True)
class FileStalled(TypedEvent):
    event = Event.FILE_STALLED
    path: str
    operation: str
    mount: str
    after_s: float | None = None  # it did not return within this
    refused: bool | None = None  # not tried: the mount is already stalled


@dataclass(frozen=True, kw_only=True)
class FileClosedIdle(TypedEvent):
    event = Event.FILE_CLOSED_IDLE
    path: str
    file_key: str | None = None  # None: a new file parked before it was started
    offset: int
    new: bool | None = None


@dataclass(frozen=True, kw_only=True)
class FileReopened(TypedEvent):
    event = Event.FILE_REOPENED
    path: str
    file_key: str
    offset: int
    size: int
    rotated_while_closed: bool | None = None
    previous_path: str | None = None


@dataclass(frozen=True, kw_only=True)
class PartialLineFlushed(TypedEvent):
    event = Event.PARTIAL_LINE_FLUSHED
    path: str
    file_key: str
    offset: int
    reason: str | None = None  # "stopping"; None: it waited partial_line_flush_s


@dataclass(frozen=True, kw_only=True)
class CheckpointWritten(TypedEvent):
    event = Event.CHECKPOINT_WRITTEN
    entries: int
    forgotten: int
    migrated: str | None = None


@dataclass(frozen=True, kw_only=True)
class CheckpointError(TypedEvent):
    event = Event.CHECKPOINT_ERROR
    state_dir: str
    error: str
    # a corrupt database moved aside (tail.state_repair): where, what was kept and what will be re-read
    moved_to: str | None = None
    moved: list[str] | None = None
    salvaged: int | None = None
    lost: int | None = None  # None: unknown
    action: str | None = None
    # the state directory cannot be written (until the next checkpoint_written), and the way out
    failing: bool | None = None
    fix: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConfigErrorEvent(TypedEvent):  # (ConfigError is the settings exception)
    event = Event.CONFIG_ERROR
    key: str | None = None  # the setting it is about
    reason: str
    errors: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class SinkRetry(TypedEvent):
    event = Event.SINK_RETRY
    sink: str
    reason: str
    detail: str | None
    attempt: int
    retry_in_s: float
    records: int | None = None  # None: metrics (cumulative totals, no records)
    endpoint: str
    misconfigured: bool | None = None


@dataclass(frozen=True, kw_only=True)
class SinkRecovered(TypedEvent):
    event = Event.SINK_RECOVERED
    sink: str
    endpoint: str
    outage_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class SinkPartialSuccess(TypedEvent):
    event = Event.SINK_PARTIAL_SUCCESS
    sink: str
    reason: str
    rejected: int | None = None  # None: a warning only, every record accepted
    records: int
    files: list[dict[str, Any]] | None = None  # where the rejected records' lines are
    detail: str | None = None  # the collector's message


@dataclass(frozen=True, kw_only=True)
class SinkRejected(TypedEvent):
    event = Event.SINK_REJECTED
    sink: str
    reason: str
    rejected: int
    records: int
    files: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class Started(TypedEvent):
    event = Event.STARTED
    sinks: list[str] | None = None  # the pipeline
    component: str | None = None  # a part other than the pipeline ("telemetry", "runtime")
    url: str | None = None
    reason: str | None = None  # "runtime": why the run stays in the `tail` process
    level: Level | None = None  # debug for "runtime"


@dataclass(frozen=True, kw_only=True)
class Stopping(TypedEvent):
    event = Event.STOPPING
    in_flight_batches: int | None = None  # the pipeline
    drain: bool | None = None
    drain_timeout_s: float | None = None
    sink: str | None = None  # a sink whose close failed
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Stopped(TypedEvent):
    event = Event.STOPPED
    lines_in: int
    batches_in: int
    acknowledgements: int
    in_flight_batches: int
    in_flight_lines: int
    abandoned_batches: int
    sent: dict[str, int]  # per sink
    rejected: dict[str, int]
    drained: bool  # everything read was delivered and committed
    lines_left: int | None = None
    left: list[dict[str, Any]] | None = None  # per file, what is left after the acknowledged offset
    level: Level | None = None  # warning when a drain did not finish
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ParseFailing(TypedEvent):
    """A file whose recent lines mostly fail to parse (pipeline.parse_watch), with what explains it."""

    event = Event.PARSE_FAILING
    path: str
    unparsed_lines: int
    recent_lines: int
    unparsed_share: float
    format: str | None = None  # the file's format spec
    example: str | None = None  # one line that did not parse (redacted, cut)
    reason: str | None = None
    closest_format: str | None = None  # for auto: the format that got furthest, and where it stopped
    diverged: str | None = None
    fix: str
    failing_files: list[str]


@dataclass(frozen=True, kw_only=True)
class FormatDetected(TypedEvent):
    """`auto` locked onto a format for a file; for a preset's variant, its LogFormat."""

    event = Event.FORMAT_DETECTED
    path: str
    format: str
    logformat: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class StopForced(TypedEvent):
    """The last line when the process leaves without finishing its stop (`os._exit`)."""

    event = Event.STOP_FORCED
    reason: str
    in_flight_batches: int | None = None  # read again after a restart


TYPED_EVENTS: dict[Event, type[TypedEvent]] = {
    typed.event: typed
    for typed in (
        FileError,
        FileRecovered,
        FileRefused,
        FileSkipped,
        FileResumed,
        FileRotated,
        FileTruncated,
        FileStalled,
        FileClosedIdle,
        FileReopened,
        PartialLineFlushed,
        CheckpointWritten,
        CheckpointError,
        ConfigErrorEvent,
        SinkRetry,
        SinkRecovered,
        SinkPartialSuccess,
        SinkRejected,
        Started,
        Stopping,
        Stopped,
        StopForced,
        ParseFailing,
        FormatDetected,
    )
}

Subscriber = Callable[[Event, dict[str, Any]], None]

_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> Callable[[], None]:
    """Register `subscriber`; returns a function that unregisters it."""
    _subscribers.append(subscriber)

    def unsubscribe() -> None:
        if subscriber in _subscribers:
            _subscribers.remove(subscriber)

    return unsubscribe


def emit(event: Event | TypedEvent, **fields: Any) -> None:
    """Tell every subscriber: `emit(Event.X, **fields)` for a kind with one call site, `emit(typed)`
    for a typed event. A failing subscriber must not break the core, so errors are swallowed."""
    if isinstance(event, TypedEvent):
        kind, fields = event.event, event.fields()
    else:
        kind = event
    for subscriber in tuple(_subscribers):
        try:
            subscriber(kind, fields)
        except Exception:  # noqa: BLE001 - observability must never take the pipeline down
            pass
