"""Named internal events: the one vocabulary that our own logs and metrics hang off.

The core (tailer, pipeline, sinks) never calls a logger or a metrics API directly; it calls
`events.emit(Event.FILE_ROTATED, path=..., ...)`. Subscribers turn events into self-logs (see
`selflog`) and metrics. Emitting with no subscriber costs a dict lookup and a loop over nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any


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
    Event.HTTP_ACCEPT_FAILED: Level.WARNING,
    Event.CHECKPOINT_WRITTEN: Level.DEBUG,
    Event.PARTIAL_LINE_FLUSHED: Level.DEBUG,
    Event.FILE_SKIPPED: Level.DEBUG,
    Event.FILE_CLOSED_IDLE: Level.DEBUG,
    Event.FILE_REOPENED: Level.DEBUG,
    Event.FILE_LOST_WHILE_CLOSED: Level.WARNING,
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


def emit(event: Event, **fields: Any) -> None:
    """Tell every subscriber. A failing subscriber must not break the core, so errors are swallowed."""
    for subscriber in tuple(_subscribers):
        try:
            subscriber(event, fields)
        except Exception:  # noqa: BLE001 - observability must never take the pipeline down
            pass
