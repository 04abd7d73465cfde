"""Our own events (logsidecar.events) as a test sees them: `capture_events()` subscribes a list to
every event for the length of a `with` block, and `of(seen, event)` picks the fields of one kind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from logsidecar import events
from logsidecar.events import Event

CapturedEvents = list[tuple[Event, dict[str, Any]]]


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Every event emitted inside the block, in order, with a copy of its fields."""
    seen: CapturedEvents = []
    unsubscribe = events.subscribe(lambda event, fields: seen.append((event, dict(fields))))
    try:
        yield seen
    finally:
        unsubscribe()


def of(seen: CapturedEvents, event: Event) -> list[dict[str, Any]]:
    """The fields of each `event` in `seen`, in order."""
    return [fields for kind, fields in seen if kind is event]
