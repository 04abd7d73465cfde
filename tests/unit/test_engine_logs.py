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
from pathlib import Path
from typing import Any

import pytest

from logsidecar.containers.engine_logs import EngineLogSource, parse_engine_timestamp
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
    source = EngineLogSource(container, TailOptions(include=("-",), max_batch_lines=1), state_dir)
    got: list[ReadBatch] = []

    async def main() -> None:
        async def emit(batch: ReadBatch) -> None:
            got.append(batch)

        await source.run(emit)
        for batch in got[:deliver]:
            source.acknowledge(batch.file_key, batch.end_offset)
        await source.stop()

    asyncio.run(main())
    return [line for batch in got for line in batch.lines]


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
