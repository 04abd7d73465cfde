"""Every event kind has one declared shape (issue 15).

A kind whose fields differ between call sites is a typed event (`logsidecar.events.TYPED_EVENTS`),
emitted only as `events.emit(SomeEvent(...))`; any other kind is emitted as
`events.emit(Event.X, field=...)` with the same field names at every call site, and never with
`**fields` (whose keys no reader can see). Checked over the package's source with `ast`.
"""

from __future__ import annotations

import ast
import dataclasses
import io
from collections import defaultdict
from typing import Any

from logsidecar import events
from logsidecar.events import TYPED_EVENTS, Event, FileTruncated, SinkRetry, Stopped, TypedEvent
from logsidecar.pipeline.core import Pipeline, PipelineOptions
from logsidecar.pipeline.parsing import ParserSelector
from logsidecar.sinks.stdout import StdoutSink
from tests.support.paths import PACKAGE

TYPED_NAMES = {typed.__name__ for typed in TYPED_EVENTS.values()}


def _is_emit(node: ast.Call) -> bool:
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "emit"
        and isinstance(func.value, ast.Name)
        and func.value.id == "events"
    )


def _event_kind(node: ast.expr) -> str | None:
    """`X` of `Event.X`, else None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Event":
        return node.attr
    return None


def shape_problems(sources: dict[str, str]) -> list[str]:
    """What breaks "one declared shape per kind" in `sources` (file name -> Python source)."""
    problems: list[str] = []
    shapes: dict[str, dict[frozenset[str], str]] = defaultdict(dict)
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if not (isinstance(node, ast.Call) and _is_emit(node)) or not node.args:
                continue
            where = f"{name}:{node.lineno}"
            kind = _event_kind(node.args[0])
            if kind is None:  # a typed event: its class declares the fields
                if node.keywords or len(node.args) != 1:
                    problems.append(f"{where}: a typed event takes no other arguments")
                continue
            if Event[kind] in TYPED_EVENTS:
                problems.append(
                    f"{where}: Event.{kind} is typed: emit {TYPED_EVENTS[Event[kind]].__name__}(...)"
                )
                continue
            if any(keyword.arg is None for keyword in node.keywords):
                problems.append(f"{where}: Event.{kind} with **fields: declare a typed event")
                continue
            shapes[kind].setdefault(frozenset(keyword.arg or "" for keyword in node.keywords), where)
    for kind, seen in sorted(shapes.items()):
        if len(seen) > 1:
            sites = "; ".join(f"{sorted(fields)} at {where}" for fields, where in seen.items())
            problems.append(f"Event.{kind} has {len(seen)} shapes ({sites}): declare a typed event")
    return problems


def package_sources() -> dict[str, str]:
    return {
        str(path.relative_to(PACKAGE.parent)): path.read_text(encoding="utf-8")
        for path in PACKAGE.rglob("*.py")
    }


def test_every_emitted_kind_has_one_declared_shape() -> None:
    sources = package_sources()
    assert shape_problems(sources) == []
    # the check saw the emits: every typed event is used somewhere
    text = "\n".join(sources.values())
    assert all(f"{name}(" in text for name in TYPED_NAMES)


def test_the_shape_check_can_fail() -> None:
    source = """
from logsidecar import events
from logsidecar.events import Event, FileRotated
events.emit(Event.FILE_ADDED, path="a", offset=0)
events.emit(Event.FILE_ADDED, path="a")
events.emit(Event.FILE_DRAINED, **extra)
events.emit(Event.FILE_ROTATED, path="a", file_key="k")
events.emit(FileRotated(path="a", file_key="k"), offset=1)
events.emit(Event.FILE_WAITING, pattern="*.log")
"""
    problems = shape_problems({"example.py": source})
    assert problems == [
        "example.py:6: Event.FILE_DRAINED with **fields: declare a typed event",
        "example.py:7: Event.FILE_ROTATED is typed: emit FileRotated(...)",
        "example.py:8: a typed event takes no other arguments",
        "Event.FILE_ADDED has 2 shapes (['offset', 'path'] at example.py:4; ['path'] at example.py:5): "
        "declare a typed event",
    ]


def test_each_typed_event_declares_one_kind_and_is_registered() -> None:
    declared = [typed for typed in TypedEvent.__subclasses__()]
    assert sorted(t.__name__ for t in declared) == sorted(TYPED_NAMES)
    assert len({typed.event for typed in declared}) == len(declared)
    for kind, typed in TYPED_EVENTS.items():
        assert typed.event is kind
        assert dataclasses.is_dataclass(typed) and typed.__dataclass_params__.frozen  # type: ignore[attr-defined]


def _received(typed: TypedEvent) -> tuple[Event, dict[str, Any]]:
    seen: list[tuple[Event, dict[str, Any]]] = []
    unsubscribe = events.subscribe(lambda kind, fields: seen.append((kind, fields)))
    try:
        events.emit(typed)
    finally:
        unsubscribe()
    assert len(seen) == 1
    return seen[0]


def test_a_typed_event_sends_its_fields_in_declared_order_and_leaves_out_unset_optional_ones() -> None:
    kind, fields = _received(
        FileTruncated(
            path="/l/a.log", file_key="k1", new_file_key="k2", offset=7, recovered=False, bytes_known_lost=3
        )
    )
    assert kind is Event.FILE_TRUNCATED
    assert list(fields.items()) == [
        ("path", "/l/a.log"),
        ("file_key", "k1"),
        ("new_file_key", "k2"),
        ("offset", 7),
        ("recovered", False),  # a required field is sent even when false
        ("bytes_known_lost", 3),
    ]


def test_a_required_field_is_sent_even_when_none() -> None:
    kind, fields = _received(
        SinkRetry(
            sink="otlp", reason="unavailable", detail=None, attempt=1, retry_in_s=0.5, endpoint="http://c"
        )
    )
    assert kind is Event.SINK_RETRY
    assert fields == {
        "sink": "otlp",
        "reason": "unavailable",
        "detail": None,
        "attempt": 1,
        "retry_in_s": 0.5,
        "endpoint": "http://c",
    }


def test_stopped_declares_every_counter_the_pipeline_reports() -> None:
    """`Stopped(**pipeline.stats(), ...)` is the last line of a run: a counter added to stats() must be
    declared here too, or the stop would fail."""
    sink = StdoutSink(stream=io.BytesIO())
    pipeline = Pipeline(None, [sink], ParserSelector(default_spec="raw"), PipelineOptions(resource={}))  # type: ignore[arg-type]
    stats = pipeline.stats()
    _kind, fields = _received(Stopped(**stats, drained=True))
    assert fields == {**stats, "drained": True}
