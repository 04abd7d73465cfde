"""The engine-log position: timestamps parsed to the nanosecond, and lines that share one timestamp
counted so that a restart neither repeats nor loses any of them.

Several lines with the very same nanosecond timestamp cannot be made on demand with a real engine,
so `EngineStreamDouble` (a test double of the SDK's `container.logs(stream=True)`) serves fixed
chunks; everything else (framing, batching, acknowledgement, the saved file) is the real code. The
real engine is exercised in tests/e2e/test_engine_logs.py."""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import ScopeLogs

from logsidecar.containers.engine_logs import EngineLogSource, parse_engine_timestamp
from logsidecar.fastpath import JSON_LINES, OTLP_RECORDS
from logsidecar.pipeline.parsing import BatchParser, ParserSelector
from logsidecar.record import TIMESTAMP_SOURCE, LogRecord, encode_json_lines
from logsidecar.sinks.base import JsonLines, OtlpLogRecords
from logsidecar.stamp import EPOCH, BatchStamp, uid_prefix
from logsidecar.tail.options import ReadBatch, TailOptions


def test_engine_timestamps_are_read_to_the_nanosecond() -> None:
    assert parse_engine_timestamp(b"1970-01-01T00:00:01Z") == 1_000_000_000
    assert parse_engine_timestamp(b"2026-12-05T13:00:00.123456789Z") == 1796475600_123456789
    assert parse_engine_timestamp(b"2026-12-05T13:00:00.5Z") == 1796475600_500000000  # zeros trimmed
    for bad in (
        b"2026-12-05 13:00:00Z",
        b"2026-12-05T13:00:00+01:00",
        b"x",
        b"2026-12-05T13:00:00.1234567890Z",
    ):
        with pytest.raises(ValueError):
            parse_engine_timestamp(bad)


class EngineStreamDouble:
    """Test double of a container for `logs(stream=True, ...)`: the same chunks on every call (as the
    engine answers `since` with everything from that time on); records the `since` asked for."""

    def __init__(self, lines: list[bytes]) -> None:
        self.id = "c" * 64
        self.name = "web"
        self.attrs: dict[str, Any] = {"State": {"Running": False}}
        self.lines = lines
        self.since: list[float | None] = []

    def logs(self, **kwargs: Any) -> list[bytes]:
        self.since.append(kwargs["since"])
        return list(self.lines)

    def reload(self) -> None:
        pass


def run_once(container: EngineStreamDouble, state_dir: Path, deliver: int | None = None) -> list[bytes]:
    """One run of the source to the stream's end; the first `deliver` lines are acknowledged."""
    return [line for batch in run_batches(container, state_dir, deliver) for line in batch.lines]


def run_batches(
    container: EngineStreamDouble, state_dir: Path | None, deliver: int | None = None, batch_lines: int = 1
) -> list[ReadBatch]:
    """The batches of one run of the source to the stream's end; the first `deliver` acknowledged."""
    source = EngineLogSource(container, TailOptions(include=("-",), max_batch_lines=batch_lines), state_dir)
    got: list[ReadBatch] = []

    async def main() -> None:
        async def emit(batch: ReadBatch) -> None:
            got.append(batch)

        await source.run(emit)
        for batch in got[:deliver]:
            source.acknowledge(batch.file_key, batch.end_offset)
        await source.stop()

    asyncio.run(main())
    return got


def test_a_restart_resumes_after_the_last_delivered_line_even_among_equal_timestamps(tmp_path: Path) -> None:
    t1, t2 = b"2026-12-05T13:00:00.000000001Z", b"2026-12-05T13:00:00.000000002Z"
    lines = [t1 + b" a", t2 + b" b", t2 + b" c", t2 + b" d", t2 + b" e"]
    container = EngineStreamDouble([line + b"\n" for line in lines])
    # Three delivered: a, b, c. b and c share d's and e's timestamp.
    assert run_once(container, tmp_path, deliver=3) == [b"a", b"b", b"c", b"d", b"e"]
    saved_file = tmp_path / "engine-logs" / f"{container.id}.json"
    saved = json.loads(saved_file.read_text())
    assert (saved["time"], saved["same"]) == ("2026-12-05T13:00:00.000000002Z", 2)
    assert stat.S_IMODE(saved_file.stat().st_mode) == 0o600
    # The restart asks from one second before, and skips what was delivered: d and e, once each.
    assert run_once(container, tmp_path, deliver=None) == [b"d", b"e"]
    assert container.since[1] == pytest.approx(1796475600 - 1, abs=1e-3)
    assert run_once(container, tmp_path) == []  # everything delivered: nothing again


def test_no_state_dir_keeps_nothing(tmp_path: Path) -> None:
    container = EngineStreamDouble([b"2026-12-05T13:00:00Z a\n"])
    source = EngineLogSource(container, TailOptions(include=("-",)), None)
    assert source.position_path is None
    assert run_once(container, None) == [b"a"]  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# -- the engine's time as the record's, for a line that has none of its own ------------------------

WITH_TIME = b'192.0.2.1 - - [05/Dec/2026:14:00:00 +0100] "GET /a HTTP/1.1" 200 5 "-" "curl/8"'
NOT_APACHE = b"AH00558: apache2: Could not reliably determine the server's fully qualified domain name"
NO_TIME_FORMAT = 'logformat:%h "%r" %>s %b'  # an access log without %t
NO_TIME = b'192.0.2.1 "GET /b HTTP/1.1" 404 7'
ENGINE_TIMES = [b"2026-12-05T13:00:01.123456789Z", b"2026-12-05T13:00:02.5Z"]
ENCODINGS = [
    pytest.param(None, id="records"),
    pytest.param(JSON_LINES, id="json-lines"),
    pytest.param(OTLP_RECORDS, id="otlp-records"),
]


def engine_payload(spec: str, lines: list[bytes], encoding: str | None) -> Any:
    """`lines`, stamped with ENGINE_TIMES by the engine, read by the source in one batch and parsed as
    `spec` by the pipeline's BatchParser into `encoding`."""
    container = EngineStreamDouble(
        [b"".join(t + b" " + line + b"\n" for t, line in zip(ENGINE_TIMES, lines, strict=True))]
    )  # one chunk: one batch
    [batch] = run_batches(container, None, batch_lines=10)
    assert batch.engine_times_ns == [parse_engine_timestamp(t) for t in ENGINE_TIMES]
    return BatchParser(ParserSelector(default_spec=spec), {}, encoding).parse(batch)


def times_and_sources(payload: Any) -> list[tuple[int, str | None]]:
    """(timestamp in ns since the epoch, 0 when none; logsidecar.timestamp_source) of each record,
    read back from whichever form the payload has."""
    if isinstance(payload, OtlpLogRecords):
        # Each is a framed `log_records` field of a ScopeLogs (what the sink puts in its request).
        records = ScopeLogs.FromString(b"".join(payload.records)).log_records
        return [
            (
                r.time_unix_nano,
                next((a.value.string_value for a in r.attributes if a.key == TIMESTAMP_SOURCE), None),
            )
            for r in records
        ]
    data = payload.data if isinstance(payload, JsonLines) else encode_json_lines(payload)
    result = []
    for line in data.splitlines():
        record = json.loads(line)
        stamp = record["timestamp"]
        ns = (
            0
            if stamp is None
            else (datetime.fromisoformat(stamp) - EPOCH) // timedelta(microseconds=1) * 1000
        )
        result.append((ns, record["attributes"].get(TIMESTAMP_SOURCE)))
    return result


def engine_ns(index: int) -> int:
    """The engine's time of line `index`, to the microsecond (a record's times hold no finer)."""
    return parse_engine_timestamp(ENGINE_TIMES[index]) // 1000 * 1000


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_line_without_its_own_time_takes_the_engines_flagged_and_one_with_keeps_its_own(
    encoding: str | None,
) -> None:
    payload = engine_payload("combined", [WITH_TIME, NOT_APACHE], encoding)
    own = int(datetime(2026, 12, 5, 13, tzinfo=UTC).timestamp()) * 1_000_000_000  # 14:00 +0100
    assert times_and_sources(payload) == [(own, None), (engine_ns(1), "engine")]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_an_access_log_format_without_t_takes_the_engines_time_flagged(encoding: str | None) -> None:
    # Parsed lines (the direct writers would write them with no time: such batches take the record path).
    payload = engine_payload(NO_TIME_FORMAT, [NO_TIME, NO_TIME], encoding)
    assert times_and_sources(payload) == [(engine_ns(0), "engine"), (engine_ns(1), "engine")]


def test_the_stamp_gives_the_engine_time_only_to_records_without_one() -> None:
    own = LogRecord(body="a", timestamp=datetime(2026, 12, 5, 14, tzinfo=UTC))
    none = [LogRecord(body="b"), LogRecord(body="c")]
    stamp = BatchStamp("k", "-", uid_prefix("k"), [2, 4, 6], (), {}, None, [1, 2_000_001_999, 3_000])
    stamp.apply([own, *none])
    assert own.timestamp == datetime(2026, 12, 5, 14, tzinfo=UTC) and TIMESTAMP_SOURCE not in own.attributes
    assert [r.timestamp for r in none] == [
        datetime(1970, 1, 1, 0, 0, 2, 1, tzinfo=UTC),  # nanoseconds cut to microseconds, no float rounding
        datetime(1970, 1, 1, 0, 0, 0, 3, tzinfo=UTC),
    ]
    assert {r.attributes[TIMESTAMP_SOURCE] for r in none} == {"engine"}
    # A subset of the batch's lines (indices) takes the times of those lines.
    later = LogRecord(body="c")
    stamp.apply([later], indices=[2])
    assert later.timestamp == datetime(1970, 1, 1, 0, 0, 0, 3, tzinfo=UTC)
    # Lines read from files carry no engine times: nothing is filled in.
    plain = LogRecord(body="d")
    BatchStamp("k", "/l", uid_prefix("k"), [2], (), {}).apply([plain])
    assert plain.timestamp is None and TIMESTAMP_SOURCE not in plain.attributes
