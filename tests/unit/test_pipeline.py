"""Pipeline: stamping, acknowledgement only after every sink settled (in file order), backpressure,
rejected batches, sink failures and graceful shutdown.

Two test doubles stand in for parts whose timing cannot be produced for real on demand:
- `ScriptedSource` (tests/support/scripted_source.py) for the Tailer: it emits exactly the batches
  the test gives and records the acknowledgements (the real Tailer is exercised by
  tests/integration/tailer/);
- `GatedSink` for a sink whose deliveries the test settles one by one, in any order it chooses.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from logsidecar.events import Event
from logsidecar.pipeline import (
    FormatRule,
    ParserSelector,
    Pipeline,
    PipelineOptions,
    parse_format_rule,
)
from logsidecar.record import LogRecord, Position
from logsidecar.sinks.base import BatchRejected, RejectedRange, Sink, SinkCapabilities
from logsidecar.stamp import record_uid
from logsidecar.tail.options import ReadBatch
from tests.support.captured_events import capture_events
from tests.support.scripted_source import ScriptedSource

RESOURCE = {"service.name": "apache-httpd", "host.name": "test-host"}


class CollectingSink(Sink):
    def __init__(self, name: str = "collect") -> None:
        self.name = name
        self.batches: list[list[LogRecord]] = []

    async def send(self, records: Sequence[LogRecord]) -> None:
        self.batches.append(list(records))


class GatedSink(Sink):
    """Test double: each send waits until the test settles it (`release(i)` / `reject(i)` / `fail(i)`)."""

    capabilities = SinkCapabilities(
        max_concurrent_sends=16
    )  # every batch in flight at once, so the test can settle them in any order

    def __init__(self, name: str = "gated") -> None:
        self.name = name
        self.gates: list[asyncio.Future[BaseException | None]] = []
        self.sizes: list[int] = []

    async def send(self, records: Sequence[LogRecord]) -> None:
        gate: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        self.sizes.append(len(records))
        error = await gate
        if error is not None:
            raise error

    def release(self, index: int, error: BaseException | None = None) -> None:
        self.gates[index].set_result(error)


def batch(
    file_key: str,
    ends: Sequence[int],
    *,
    path: str = "/var/log/apache2/access.log",
    truncated: set[int] | None = None,
) -> ReadBatch:
    return ReadBatch(
        file_key=file_key,
        path=path,
        lines=[f"line {file_key} {end}".encode() for end in ends],
        end_offsets=list(ends),
        truncated=truncated or set(),
    )


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll the event loop until `predicate()` holds (the loop must run for the pipeline to move)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


def make_pipeline(source: ScriptedSource, sinks: Sequence[Sink], **options: Any) -> Pipeline:
    return Pipeline(
        source, sinks, ParserSelector(default_spec="raw"), PipelineOptions(resource=RESOURCE, **options)
    )


def test_records_are_stamped_with_position_file_attributes_uid_truncation_and_resource() -> None:
    async def scenario() -> CollectingSink:
        source = ScriptedSource([batch("k1", [12, 25], truncated={1})])
        sink = CollectingSink()
        pipeline = make_pipeline(source, [sink])
        task = asyncio.create_task(pipeline.run())
        await until(lambda: source.acks == [("k1", 25)])
        pipeline.request_stop()
        await task
        return sink

    sink = asyncio.run(scenario())
    [records] = sink.batches
    assert [r.body for r in records] == ["line k1 12", "line k1 25"]
    assert [r.position for r in records] == [
        Position("k1", "/var/log/apache2/access.log", 12),
        Position("k1", "/var/log/apache2/access.log", 25),
    ]
    for record, end in zip(records, (12, 25), strict=True):
        assert record.attributes["log.file.path"] == "/var/log/apache2/access.log"
        assert record.attributes["log.file.name"] == "access.log"
        assert record.attributes["log.record.uid"] == record_uid("k1", end)
        assert re.fullmatch(r"[0-9a-f]{32}", record.attributes["log.record.uid"])
        assert record.resource == RESOURCE
    assert "logsidecar.truncated" not in records[0].attributes
    assert records[1].attributes["logsidecar.truncated"] is True


def test_record_uid_is_stable_per_file_and_offset_and_differs_otherwise() -> None:
    assert record_uid("k1", 100) == record_uid("k1", 100)
    assert record_uid("k1", 100) != record_uid("k1", 101)
    assert record_uid("k1", 100) != record_uid("k2", 100)
    assert record_uid("k1", 0x1234).endswith("0000000000001234")


def test_batch_is_acknowledged_only_after_every_sink_settled_it() -> None:
    async def scenario() -> None:
        source = ScriptedSource([batch("k", [10])])
        first, second = GatedSink("first"), GatedSink("second")
        pipeline = make_pipeline(source, [first, second])
        task = asyncio.create_task(pipeline.run())
        await until(lambda: len(first.gates) == 1 and len(second.gates) == 1)
        first.release(0)
        await asyncio.sleep(0.01)
        assert source.acks == []
        second.release(0)
        await until(lambda: source.acks == [("k", 10)])
        pipeline.request_stop()
        await task

    asyncio.run(scenario())


def test_batches_settling_out_of_order_are_acknowledged_in_file_order() -> None:
    async def scenario() -> None:
        source = ScriptedSource([batch("a", [10]), batch("a", [20]), batch("b", [5]), batch("a", [30])])
        sink = GatedSink()
        pipeline = make_pipeline(source, [sink])
        task = asyncio.create_task(pipeline.run())
        await until(lambda: len(sink.gates) == 4)
        sink.release(3)  # a:30
        sink.release(1)  # a:20
        sink.release(2)  # b:5 is independent of file a
        await until(lambda: source.acks == [("b", 5)])
        sink.release(0)  # a:10 completes the prefix a:10..30
        await until(lambda: source.acks == [("b", 5), ("a", 30)])
        pipeline.request_stop()
        await task

    asyncio.run(scenario())


def test_rejected_batch_is_settled_counted_and_reported() -> None:
    async def scenario() -> Pipeline:
        source = ScriptedSource([batch("k", [10, 20])])
        sink = GatedSink("otlp")
        pipeline = make_pipeline(source, [sink])
        task = asyncio.create_task(pipeline.run())
        await until(lambda: len(sink.gates) == 1)
        sink.release(0, BatchRejected("payload too large", rejected=2))
        await until(lambda: source.acks == [("k", 20)])
        pipeline.request_stop()
        await task
        return pipeline

    with capture_events() as seen:
        pipeline = asyncio.run(scenario())
    assert pipeline.rejected == {"otlp": 2}
    assert pipeline.sent == {"otlp": 0}
    rejected = [fields for event, fields in seen if event is Event.SINK_REJECTED]
    # Where the lines are: `batch` makes lines of 9 bytes, so the first begins at 10 - 9 - 1.
    files = [{"path": "/var/log/apache2/access.log", "first_offset": 0, "last_offset": 20, "lines": 2}]
    assert rejected == [
        {"sink": "otlp", "reason": "payload too large", "rejected": 2, "records": 2, "files": files}
    ]


class MergingRejectingSink(Sink):
    """Test double for a sink that merges batches (as OTLP does) and whose backend refuses some of the
    records of each merged send, named by `ranges` (a real collector's choice cannot be scripted)."""

    capabilities = SinkCapabilities(batch_timeout_s=0.2, max_batch_records=100)

    def __init__(self, ranges: Sequence[RejectedRange]) -> None:
        self.name = "otlp"
        self.ranges = ranges
        self.sizes: list[int] = []

    async def send(self, records: Sequence[LogRecord]) -> None:
        self.sizes.append(len(records))
        raise BatchRejected("refused", rejected=sum(r.rejected for r in self.ranges), ranges=self.ranges)


def test_rejected_records_of_a_merged_batch_are_reported_with_their_files_and_offsets() -> None:
    # Records 0..4 of the merged send are a:10, a:20, a:30, b:5, b:11; the backend refuses 1..3
    # (a:20, a:30 and b:5) as malformed, and 2 of the last one's request in a partial success.
    sink = MergingRejectingSink(
        [RejectedRange(1, 4, 3, "malformed"), RejectedRange(4, 5, 1, "some", partial=True)]
    )

    async def scenario() -> Pipeline:
        a = ReadBatch("a", "/logs/a.log", [b"x" * 9] * 3, [10, 20, 30])
        b = ReadBatch("b", "/logs/b.log", [b"y" * 4, b"z" * 5], [5, 11])
        source = ScriptedSource([a, b])
        pipeline = make_pipeline(source, [sink])
        task = asyncio.create_task(pipeline.run())
        await until(lambda: sorted(source.acks) == [("a", 30), ("b", 11)])
        pipeline.request_stop()
        await task
        return pipeline

    with capture_events() as seen:
        pipeline = asyncio.run(scenario())
    assert sink.sizes == [5]  # one merged send
    assert pipeline.rejected == {"otlp": 4} and pipeline.sent == {"otlp": 1}
    reports = [(event, fields) for event, fields in seen if "files" in fields]
    assert reports == [
        (
            Event.SINK_REJECTED,
            {
                "sink": "otlp",
                "reason": "malformed",
                "rejected": 3,
                "records": 3,
                "files": [
                    {"path": "/logs/a.log", "first_offset": 10, "last_offset": 30, "lines": 2},
                    {"path": "/logs/b.log", "first_offset": 0, "last_offset": 5, "lines": 1},
                ],
            },
        ),
        (
            Event.SINK_PARTIAL_SUCCESS,
            {
                "sink": "otlp",
                "reason": "some",
                "rejected": 1,
                "records": 1,
                "files": [{"path": "/logs/b.log", "first_offset": 5, "last_offset": 11, "lines": 1}],
            },
        ),
    ]


def test_spent_in_flight_budget_pauses_reading_until_a_batch_settles() -> None:
    async def scenario() -> None:
        source = ScriptedSource([batch("k", [end]) for end in (1, 2, 3, 4, 5)])
        sink = GatedSink()
        pipeline = make_pipeline(source, [sink], max_in_flight_batches=2)
        task = asyncio.create_task(pipeline.run())
        await until(lambda: len(sink.gates) == 2)
        await asyncio.sleep(0.02)
        assert source.emitted == 2  # the third emit() is waiting: reading is paused
        assert len(sink.gates) == 2
        sink.release(0)
        await until(lambda: len(sink.gates) == 3)
        assert source.emitted == 3
        for index in (1, 2):
            sink.release(index)
        await until(lambda: len(sink.gates) == 5)
        for index in (3, 4):
            sink.release(index)
        await until(lambda: source.acks[-1:] == [("k", 5)])
        pipeline.request_stop()
        await task

    asyncio.run(scenario())


def test_line_budget_admits_one_oversized_batch_alone() -> None:
    async def scenario() -> None:
        source = ScriptedSource([batch("k", list(range(1, 11))), batch("k", [11])])
        sink = GatedSink()
        pipeline = make_pipeline(source, [sink], max_in_flight_lines=4)
        task = asyncio.create_task(pipeline.run())
        await until(lambda: len(sink.gates) == 1)
        await asyncio.sleep(0.02)
        assert len(sink.gates) == 1  # the second batch waits for the oversized first one
        sink.release(0)
        await until(lambda: len(sink.gates) == 2)
        sink.release(1)
        await until(lambda: source.acks == [("k", 10), ("k", 11)])
        pipeline.request_stop()
        await task

    asyncio.run(scenario())


def test_failing_sink_stops_the_pipeline_without_acknowledging_and_reraises() -> None:
    async def scenario() -> ScriptedSource:
        source = ScriptedSource([batch("k", [10]), batch("k", [20])])
        sink = GatedSink()
        pipeline = make_pipeline(source, [sink])
        task = asyncio.create_task(pipeline.run())
        await until(lambda: len(sink.gates) == 2)
        sink.release(1)  # the later batch is delivered ...
        sink.release(0, RuntimeError("disk on fire"))  # ... but the earlier one fails for good
        with pytest.raises(RuntimeError, match="disk on fire"):
            await task
        return source

    source = asyncio.run(scenario())
    assert source.acks == []  # nothing past the failed batch may ever be acknowledged
    assert source.acks_at_stop == []


def test_stop_lets_in_flight_batches_settle_before_stopping_the_tailer() -> None:
    async def scenario() -> ScriptedSource:
        source = ScriptedSource([batch("k", [10])])
        sink = GatedSink()
        pipeline = make_pipeline(source, [sink], drain_timeout_s=5.0)
        task = asyncio.create_task(pipeline.run())
        await until(lambda: len(sink.gates) == 1)
        pipeline.request_stop()
        await asyncio.sleep(0.02)
        assert source.acks_at_stop is None  # still waiting for the in-flight batch
        sink.release(0)
        await task
        return source

    source = asyncio.run(scenario())
    assert source.acks_at_stop == [("k", 10)]  # the acknowledgement reached the final checkpoint


def test_stop_abandons_batches_that_do_not_settle_within_the_drain_timeout() -> None:
    async def scenario() -> tuple[ScriptedSource, Pipeline]:
        source = ScriptedSource([batch("k", [10]), batch("j", [7])])
        sink = GatedSink()
        pipeline = make_pipeline(source, [sink], drain_timeout_s=0.1)
        task = asyncio.create_task(pipeline.run())
        await until(lambda: len(sink.gates) == 2)
        sink.release(1)
        await until(lambda: source.acks == [("j", 7)])
        pipeline.request_stop()
        await asyncio.wait_for(task, 5.0)
        return source, pipeline

    source, pipeline = asyncio.run(scenario())
    assert source.acks_at_stop == [("j", 7)]
    assert pipeline.abandoned_batches == 1


class _CrashingParser:
    """Test double for a parser bug (a real parser never raises by contract)."""

    format_name = "crashing"

    def parse(self, lines: Sequence[bytes]) -> list[LogRecord]:
        raise ValueError("bug")


class _CrashingSelector(ParserSelector):
    def state_for(self, file_key: str, path: str):  # type: ignore[override]
        state = super().state_for(file_key, path)
        state.parser = _CrashingParser()  # type: ignore[assignment]
        return state


def test_parser_failure_forwards_the_lines_raw_and_flagged() -> None:
    async def scenario() -> CollectingSink:
        source = ScriptedSource([ReadBatch("k", "/x/access.log", [b"ok", b"\xffbad"], [3, 8])])
        sink = CollectingSink()
        pipeline = Pipeline(
            source, [sink], _CrashingSelector(default_spec="raw"), PipelineOptions(resource=RESOURCE)
        )
        task = asyncio.create_task(pipeline.run())
        await until(lambda: source.acks == [("k", 8)])
        pipeline.request_stop()
        await task
        return sink

    [records] = asyncio.run(scenario()).batches
    assert [r.body for r in records] == ["ok", "\\xffbad"]
    assert all(r.attributes["logsidecar.parse_error"] == "parser failed: ValueError('bug')" for r in records)
    assert "logsidecar.invalid_utf8" not in records[0].attributes
    assert records[1].attributes["logsidecar.invalid_utf8"] is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("combined", FormatRule(None, "combined")),
        ("*error*=error", FormatRule("*error*", "error")),
        ("*access*=logformat:%h %{X=Y}i %>s", FormatRule("*access*", "logformat:%h %{X=Y}i %>s")),
        ("logformat:%h %{X=Y}i", FormatRule(None, "logformat:%h %{X=Y}i")),
    ],
)
def test_format_rules_separate_glob_from_spec(text: str, expected: FormatRule) -> None:
    assert parse_format_rule(text) == expected


def test_parser_selector_uses_the_first_matching_rule_then_the_default() -> None:
    selector = ParserSelector(
        [FormatRule("*error*", "error"), FormatRule("/srv/*/access.log", "common")], default_spec="combined"
    )
    assert selector.spec_for("/var/log/apache2/error.log") == "error"
    assert selector.spec_for("/srv/site/access.log") == "common"
    assert selector.spec_for("/var/log/apache2/other_vhosts_access.log") == "combined"


def test_parser_selector_keeps_one_parser_per_file_and_forgets_the_oldest() -> None:
    selector = ParserSelector(default_spec="raw", max_files=2)
    first = selector.state_for("a", "/a.log")
    assert selector.state_for("a", "/a.log.1") is first  # a rotated file keeps its parser
    selector.state_for("b", "/b.log")
    selector.state_for("c", "/c.log")
    assert selector.state_for("a", "/a.log") is not first


class RecordingObserver:
    """Records the pipeline's per-batch observations (the real one is telemetry.Metrics)."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, str, int, int, int, int]] = []
        self.deliveries: list[tuple[str, int]] = []

    def observe_batch(self, path: str, fmt: str, lines: int, bytes: int, parsed: int, unparsed: int) -> None:  # noqa: A002
        self.batches.append((path, fmt, lines, bytes, parsed, unparsed))

    def observe_delivery(self, sink: str, records: int, latency_s: float) -> None:
        assert latency_s >= 0
        self.deliveries.append((sink, records))


def test_observer_sees_each_batch_and_delivery_and_gauges_show_what_is_in_flight() -> None:
    async def scenario() -> RecordingObserver:
        source = ScriptedSource([batch("k", [10, 20, 30])])
        sink = GatedSink("otlp")
        observer = RecordingObserver()
        pipeline = Pipeline(
            source, [sink], ParserSelector(default_spec="raw"), PipelineOptions(resource=RESOURCE), observer
        )
        assert pipeline.oldest_undelivered_age_s() is None
        task = asyncio.create_task(pipeline.run())
        await until(lambda: len(sink.gates) == 1)
        assert pipeline.queue_depth() == 3
        age = pipeline.oldest_undelivered_age_s()
        assert age is not None and age >= 0
        sink.release(0)
        await until(lambda: source.acks == [("k", 30)])
        assert pipeline.queue_depth() == 0
        assert pipeline.oldest_undelivered_age_s() is None
        pipeline.request_stop()
        await task
        return observer

    observer = asyncio.run(scenario())
    line_bytes = len(b"line k 10") * 3
    assert observer.batches == [("/var/log/apache2/access.log", "raw", 3, line_bytes, 3, 0)]
    assert observer.deliveries == [("otlp", 3)]


class LingeringSink(CollectingSink):
    """A sink that asks the pipeline for bigger batches (as the OTLP sink does)."""

    capabilities = SinkCapabilities(batch_timeout_s=0.2, max_batch_records=5)


def test_sink_asking_for_bigger_batches_gets_them_merged_up_to_its_maximum_and_all_acknowledged() -> None:
    async def scenario() -> tuple[LingeringSink, ScriptedSource]:
        source = ScriptedSource([batch("a", [1, 2]), batch("b", [3, 4]), batch("a", [5, 6]), batch("a", [7])])
        sink = LingeringSink()
        pipeline = make_pipeline(source, [sink])
        task = asyncio.create_task(pipeline.run())
        await until(lambda: ("a", 7) in source.acks)
        pipeline.request_stop()
        await task
        return sink, source

    sink, source = asyncio.run(scenario())
    # 2 + 2, and a third batch would pass max_batch_records (5): it starts the next group, which the
    # last batch joins (3 records; then the timeout ends the wait).
    assert [[r.body for r in records] for records in sink.batches] == [
        ["line a 1", "line a 2", "line b 3", "line b 4"],
        ["line a 5", "line a 6", "line a 7"],
    ]
    assert source.acks == [("a", 2), ("b", 4), ("a", 6), ("a", 7)]


def test_a_group_waits_no_longer_for_batches_the_in_flight_budget_holds_back() -> None:
    linger_s = 5.0

    async def scenario() -> tuple[CollectingSink, float]:
        # Two batches fill the budget; the group could take 100 records, but nothing more can come
        # before a send settles: waiting out the linger would only idle the sink (long lines).
        source = ScriptedSource([batch("k", [1, 2]), batch("k", [3, 4]), batch("k", [5])])
        sink = CollectingSink()
        sink.capabilities = SinkCapabilities(batch_timeout_s=linger_s, max_batch_records=100)
        pipeline = make_pipeline(source, [sink], max_in_flight_batches=2)
        started = asyncio.get_running_loop().time()
        task = asyncio.create_task(pipeline.run())
        await until(lambda: ("k", 4) in source.acks, timeout=linger_s * 2)
        elapsed = asyncio.get_running_loop().time() - started
        pipeline.request_stop()
        await task
        return sink, elapsed

    sink, elapsed = asyncio.run(scenario())
    assert elapsed < linger_s / 2  # the first group went out once the budget was spent
    assert [[r.body for r in records] for records in sink.batches][0] == [
        "line k 1",
        "line k 2",
        "line k 3",
        "line k 4",
    ]


def test_a_sink_without_concurrency_receives_batches_one_at_a_time_in_order() -> None:
    async def scenario() -> GatedSink:
        source = ScriptedSource([batch("k", [end]) for end in (1, 2, 3)])
        sink = GatedSink()
        sink.capabilities = SinkCapabilities(max_concurrent_sends=1)
        pipeline = make_pipeline(source, [sink])
        task = asyncio.create_task(pipeline.run())

        def sends_started(expected: int) -> Callable[[], bool]:
            return lambda: len(sink.gates) == expected

        for index in range(3):
            await until(sends_started(index + 1))
            await asyncio.sleep(0.01)
            assert len(sink.gates) == index + 1  # the next send waits for this one
            sink.release(index)
        await until(lambda: source.acks[-1:] == [("k", 3)])
        pipeline.request_stop()
        await task
        return sink

    assert asyncio.run(scenario()).sizes == [1, 1, 1]


class _AckFailingSource(ScriptedSource):
    """Test double for a tailer whose acknowledge() has a bug (the real one never raises by contract)."""

    def acknowledge(self, file_key: str, offset: int) -> None:
        raise OSError("checkpoint store broke")


def test_a_failing_acknowledgement_stops_the_pipeline_instead_of_stalling_it() -> None:
    async def scenario() -> None:
        source = _AckFailingSource([batch("k", [10]), batch("k", [20])])
        pipeline = make_pipeline(source, [CollectingSink()])
        with pytest.raises(OSError, match="checkpoint store broke"):
            await asyncio.wait_for(pipeline.run(), 10)
        assert source.acks_at_stop == []

    asyncio.run(scenario())


class _DrainingSource(ScriptedSource):
    """Test double for the Tailer's drain: `unread` batches are what its files still hold at the stop;
    `drain` makes `run` emit them, then `run` returns (the real drain: tests/integration/command/test_tail_drain.py)."""

    def __init__(self, batches: Sequence[ReadBatch], unread: Sequence[ReadBatch]) -> None:
        super().__init__(batches)
        self.unread = list(unread)
        self.drain_calls: list[float] = []
        self._drain = asyncio.Event()
        self._finished = asyncio.Event()

    async def run(self, emit: Callable[[ReadBatch], Awaitable[None]]) -> None:
        try:
            for item in self.batches:
                await emit(item)
            draining = asyncio.ensure_future(self._drain.wait())
            stopped = asyncio.ensure_future(self._stopped.wait())
            await asyncio.wait({draining, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if draining.done():
                for item in self.unread:
                    await emit(item)
        finally:
            self._finished.set()

    async def drain(self, timeout_s: float) -> bool:
        self.drain_calls.append(timeout_s)
        self._drain.set()
        await asyncio.wait_for(self._finished.wait(), timeout_s)
        return True


def test_a_stop_drains_the_source_and_delivers_what_it_read_before_stopping_it() -> None:
    async def scenario() -> tuple[_DrainingSource, CollectingSink, Pipeline]:
        source = _DrainingSource([batch("k", [10])], unread=[batch("k", [20, 30]), batch("j", [5])])
        sink = CollectingSink()
        pipeline = make_pipeline(source, [sink], drain_timeout_s=5.0)
        task = asyncio.create_task(pipeline.run())
        await until(lambda: source.acks == [("k", 10)])
        pipeline.request_stop()
        await asyncio.wait_for(task, 5.0)
        return source, sink, pipeline

    source, sink, pipeline = asyncio.run(scenario())
    assert len(source.drain_calls) == 1 and source.drain_calls[0] <= 5.0
    assert [r.body for b in sink.batches for r in b] == ["line k 10", "line k 20", "line k 30", "line j 5"]
    assert source.acks_at_stop == [("k", 10), ("k", 30), ("j", 5)]  # committed at the stop
    assert pipeline.abandoned_batches == 0


def test_a_reload_stop_does_not_drain() -> None:
    async def scenario() -> tuple[_DrainingSource, CollectingSink]:
        source = _DrainingSource([batch("k", [10])], unread=[batch("k", [20])])
        sink = CollectingSink()
        pipeline = make_pipeline(source, [sink])
        task = asyncio.create_task(pipeline.run())
        await until(lambda: source.acks == [("k", 10)])
        pipeline.request_stop(drain=False)
        await asyncio.wait_for(task, 5.0)
        return source, sink

    source, sink = asyncio.run(scenario())
    assert source.drain_calls == []
    assert [r.body for b in sink.batches for r in b] == ["line k 10"]  # the next pipeline reads the rest
