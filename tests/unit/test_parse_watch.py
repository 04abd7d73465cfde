"""`ParseWatch`: when a file's recent lines mostly fail to parse, one warning per file (again at
most every WARN_EVERY_S), and a recovery when they parse again or the file is released."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from logsidecar import events
from logsidecar.events import Event
from logsidecar.pipeline.parse_watch import FAILING_SHARE, MIN_LINES, WARN_EVERY_S, WINDOW_LINES, ParseWatch


class FakeClock:
    """A test double for time.monotonic: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def seen() -> Iterator[list[tuple[Event, dict[str, Any]]]]:
    got: list[tuple[Event, dict[str, Any]]] = []
    unsubscribe = events.subscribe(lambda event, fields: got.append((event, fields)))
    yield got
    unsubscribe()


def explain(path: str, lines: Sequence[bytes]) -> dict[str, Any]:
    return {"example": lines[-1].decode(), "reason": "no known format matched"}


def lines(count: int) -> list[bytes]:
    return [f"line {n}".encode() for n in range(count)]


def test_a_file_mostly_unparsed_is_warned_about_once_then_every_warn_interval(seen: list) -> None:
    clock = FakeClock()
    watch = ParseWatch(explain, clock)
    watch.note("k", "/logs/a.log", lines(MIN_LINES - 1), MIN_LINES - 1)
    assert seen == []  # too few lines to judge
    watch.note("k", "/logs/a.log", lines(1), 1)
    [(event, fields)] = seen
    assert event is Event.PARSE_FAILING
    assert fields["path"] == "/logs/a.log" and fields["unparsed_share"] == 1.0
    assert (fields["unparsed_lines"], fields["recent_lines"]) == (MIN_LINES, MIN_LINES)
    assert fields["example"] == "line 0" and fields["failing_files"] == ["/logs/a.log"]
    clock.now += WARN_EVERY_S - 1
    watch.note("k", "/logs/a.log", lines(10), 10)
    assert len(seen) == 1  # rate-limited
    clock.now += 1
    watch.note("k", "/logs/a.log", lines(10), 10)
    assert [e for e, _ in seen] == [Event.PARSE_FAILING, Event.PARSE_FAILING]


def test_half_or_less_unparsed_is_not_failing_and_a_file_that_parses_again_recovers(seen: list) -> None:
    watch = ParseWatch(explain, FakeClock())
    half = int(MIN_LINES * FAILING_SHARE)
    watch.note("ok", "/logs/ok.log", lines(MIN_LINES), half)
    assert seen == []
    watch.note("bad", "/logs/bad.log", lines(MIN_LINES), half + 1)
    assert [e for e, _ in seen] == [Event.PARSE_FAILING]
    watch.note("bad", "/logs/bad.log", lines(4 * MIN_LINES), 0)  # the window: now mostly parsed
    assert [e for e, _ in seen] == [Event.PARSE_FAILING, Event.PARSE_RECOVERED]
    assert seen[-1][1]["failing_files"] == [] and watch.failing_files() == []


def test_a_released_file_is_no_longer_failing_and_a_parsing_file_costs_no_entry(seen: list) -> None:
    watch = ParseWatch(explain, FakeClock())
    watch.note("good", "/logs/good.log", lines(WINDOW_LINES), 0)
    assert len(watch) == 0
    watch.note("bad", "/logs/bad.log", lines(MIN_LINES), MIN_LINES)
    watch.forget("bad")
    assert [(e, f["reason"]) for e, f in seen[1:]] == [(Event.PARSE_RECOVERED, "file released")]
    assert watch.failing_files() == []


def test_a_failing_explanation_still_warns(seen: list) -> None:
    def broken(path: str, lines: Sequence[bytes]) -> dict[str, Any]:
        raise ValueError("boom")

    ParseWatch(broken, FakeClock()).note("k", "/a", lines(MIN_LINES), MIN_LINES)
    [(event, fields)] = seen
    assert event is Event.PARSE_FAILING and fields["reason"] == "(could not explain: ValueError)"


COMBINED = b'127.0.0.1 - - [28/Nov/2026:02:09:06 +0000] "GET / HTTP/1.1" 200 3 "-" "curl/7.88.1"'


@pytest.mark.parametrize("encoding", [None, "json_lines"])
def test_the_pipeline_says_which_format_auto_chose_once_and_warns_about_unparsed_files(
    seen: list, encoding: str | None
) -> None:
    from logsidecar.fastpath import JSON_LINES
    from logsidecar.pipeline.parsing import BatchParser, ParserSelector
    from logsidecar.tail.options import ReadBatch

    batches = BatchParser(ParserSelector(), {}, JSON_LINES if encoding else None)
    timed = [COMBINED + f" {n}".encode() for n in range(MIN_LINES)]
    for _ in range(2):
        batches.parse(ReadBatch("a", "/logs/access.log", timed, [100 * (n + 1) for n in range(MIN_LINES)]))
    [(event, fields)] = [(e, f) for e, f in seen if e is Event.FORMAT_DETECTED]
    assert fields["format"] == "combined+%D" and fields["path"] == "/logs/access.log"
    assert fields["logformat"].endswith('"%{User-agent}i" %D') and "%T" in fields["note"]

    custom = [COMBINED + b" 0.5 x"] * MIN_LINES
    batches.parse(ReadBatch("b", "/logs/custom.log", custom, [100 * (n + 1) for n in range(MIN_LINES)]))
    [(_, warning)] = [(e, f) for e, f in seen if e is Event.PARSE_FAILING]
    assert warning["path"] == "/logs/custom.log" and warning["example"] == custom[0].decode()
    assert warning["closest_format"] == "combinedio" and warning["diverged"].endswith("(%O)")
    batches.forget("b")
    assert seen[-1][0] is Event.PARSE_RECOVERED
