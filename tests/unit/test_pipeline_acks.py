"""AckTracker: batches settled in any order are acknowledged per file, in file order, as contiguous prefixes."""

from __future__ import annotations

import random

from logsidecar.acks import AckTracker


def test_in_order_settlement_acknowledges_each_batch() -> None:
    tracker = AckTracker()
    tickets = [tracker.register("a", end) for end in (10, 20, 30)]
    assert [tracker.settle(t) for t in tickets] == [10, 20, 30]
    assert tracker.in_flight() == 0


def test_later_batch_settling_first_is_held_until_the_earlier_one_settles() -> None:
    tracker = AckTracker()
    first, second, third = (tracker.register("a", end) for end in (10, 20, 30))
    assert tracker.settle(third) is None
    assert tracker.settle(second) is None
    assert tracker.in_flight() == 3
    assert tracker.settle(first) == 30  # the whole contiguous prefix at once
    assert tracker.in_flight() == 0


def test_files_are_independent() -> None:
    tracker = AckTracker()
    a1 = tracker.register("a", 5)
    b1 = tracker.register("b", 7)
    a2 = tracker.register("a", 9)
    assert tracker.settle(a2) is None
    assert tracker.settle(b1) == 7  # not held back by file a
    assert tracker.settle(a1) == 9


def test_settling_twice_releases_nothing_the_second_time() -> None:
    tracker = AckTracker()
    ticket = tracker.register("a", 10)
    assert tracker.settle(ticket) == 10
    assert tracker.settle(ticket) is None


def test_random_settlement_order_acknowledges_increasing_offsets_ending_at_the_last() -> None:
    rng = random.Random(7)
    for _ in range(200):
        tracker = AckTracker()
        ends = sorted(rng.sample(range(1, 10_000), rng.randint(1, 30)))
        tickets = [tracker.register("f", end) for end in ends]
        order = tickets[:]
        rng.shuffle(order)
        released: list[int] = []
        settled: set[int] = set()
        for ticket in order:
            settled.add(ticket.end_offset)
            offset = tracker.settle(ticket)
            if offset is not None:
                # everything up to the released offset has settled
                assert all(end in settled for end in ends if end <= offset)
                released.append(offset)
        assert released == sorted(set(released))
        assert released[-1] == ends[-1]
        assert tracker.in_flight() == 0
