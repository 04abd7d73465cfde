"""Wake-ups follow the work: the poll cycle's coalescing hold is what the latency budget leaves after
the last cycle's own duration, and the checkpoint timer sleeps while there is nothing to write, until
an acknowledgement says there is (tail/tailer.py, tail/checkpoint_schedule.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from logsidecar.tail.checkpoint_schedule import GC_INTERVAL_S, CheckpointSchedule
from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.fileset import FileSet
from logsidecar.tail.options import TailOptions
from logsidecar.tail.tailer import LATENCY_BUDGET_S, LATENCY_SLACK_S, coalescing_hold_s

INTERVAL_S = 0.5


@pytest.mark.parametrize("cycle_s", [0.0, 0.001, 0.010, 0.030])
def test_hold_plus_the_cycle_stays_within_the_latency_budget(cycle_s: float) -> None:
    hold = coalescing_hold_s(cycle_s)
    assert hold > 0
    assert hold + cycle_s + LATENCY_SLACK_S == pytest.approx(LATENCY_BUDGET_S)


def test_a_cycle_that_spends_the_budget_is_followed_without_a_hold() -> None:
    assert coalescing_hold_s(LATENCY_BUDGET_S - LATENCY_SLACK_S) == 0.0
    assert coalescing_hold_s(1.0) == 0.0


def schedule(tmp_path: Path) -> tuple[CheckpointSchedule, CheckpointStore]:
    store = CheckpointStore(tmp_path / "state")
    options = TailOptions(include=(str(tmp_path / "*.log"),), state_dir=tmp_path / "state",
                          checkpoint_interval_s=INTERVAL_S)  # fmt: skip
    return CheckpointSchedule(options, store, FileSet()), store


def test_nothing_to_write_is_due_only_at_the_gc_clock(tmp_path: Path) -> None:
    plan, store = schedule(tmp_path)
    try:
        asyncio.run(plan.write())  # the first write runs the GC clock
        now = time.monotonic()
        assert plan.due_in(now) > INTERVAL_S
        assert plan.due_in(now) <= GC_INTERVAL_S
        store.track("k", 1, 2, b"first bytes", str(tmp_path / "a.log"))
        assert plan.due_in(now) <= INTERVAL_S  # an entry to write: due within the interval
    finally:
        store.close()


def test_a_parked_timer_writes_an_acknowledgement_within_the_interval(tmp_path: Path) -> None:
    plan, store = schedule(tmp_path)

    async def scenario() -> float:
        stopping = asyncio.Event()
        timer = asyncio.create_task(plan.write_periodically(stopping))
        try:
            await asyncio.sleep(INTERVAL_S * 2)  # the first write, then parked: nothing to write
            assert not plan.has_work()
            store.track("k", 1, 2, b"first bytes", str(tmp_path / "a.log"))
            plan.note_work()
            woke = time.monotonic()
            while plan.has_work():
                await asyncio.sleep(0.01)
                assert time.monotonic() - woke < INTERVAL_S * 10, "the parked timer never wrote"
            return time.monotonic() - woke
        finally:
            stopping.set()
            timer.cancel()

    try:
        assert asyncio.run(scenario()) <= INTERVAL_S  # the design bound: checkpoint_interval_s
        assert [entry.file_key for entry in CheckpointStore(tmp_path / "state").entries()] == ["k"]
    finally:
        store.close()
