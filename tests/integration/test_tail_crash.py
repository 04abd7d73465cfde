"""`logsidecar tail` stopped abruptly (kill -9) or gracefully (SIGTERM) under load, then restarted with
the same --state-dir: nothing is ever lost, and duplicates come only from the unacknowledged window.

The window after a kill -9: lines already written to stdout whose acknowledgement had not yet reached
a durable checkpoint. Checkpoints are written every `checkpoint_interval_s` (1 s), so a replayed line
must have been emitted at most that long (plus scheduling slack on a busy 2-core machine) before the
kill, and the replay must be exactly the tail of what the killed instance emitted (contiguous, no gaps).
After a SIGTERM nothing is replayed at all.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.integration.tail_command import (
    TailProcess,
    WriterProcess,
    append_sentinel,
    body_seq,
    multiset_report,
    wait_for_count,
    wait_for_seqs,
)

CHECKPOINT_INTERVAL_S = 1.0  # TailOptions.checkpoint_interval_s
SLACK_S = 2.0  # scheduling on a loaded 2-core machine


def _tail(tmp_path: Path, log: Path, index: int, *extra: str) -> TailProcess:
    return TailProcess(
        ["--format", "raw", *extra, str(log)], tmp_path / "state", tmp_path / f"tail-{index}.stderr"
    ).start()


def test_kill9_under_load_loses_nothing_and_replays_only_the_unacknowledged_window(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    log = tmp_path / "access.log"
    writer = WriterProcess(log, lines_per_s=3000, total=10**9).start()
    killed: list[tuple[TailProcess, float]] = []
    try:
        for index in range(4):
            tail = _tail(tmp_path, log, index)
            wait_for_count(tail, 1, timeout=30)
            time.sleep(rng.uniform(0.2, 2.0))  # a random moment to kill at, not a synchronisation
            killed.append((tail, tail.kill9()))
        written = writer.stop()
    finally:
        if writer.running():
            writer.stop()
    append_sentinel(log, written)
    final = _tail(tmp_path, log, len(killed))
    try:
        # Every line either came out before a kill or must come out now.
        seen_before = {body_seq(b) for tail, _ in killed for b in tail.bodies()}
        wait_for_seqs(final, set(range(written + 1)) - seen_before | {written}, timeout=90)
    finally:
        code, _took = final.terminate()
    assert code == 0

    instances = [tail for tail, _ in killed] + [final]
    all_bodies = [b for tail in instances for b in tail.bodies()]
    lost, duplicated = multiset_report(all_bodies, written + 1)
    assert lost == []

    # Duplicates: each one was emitted by a killed instance shortly before its kill, and what a
    # restart replays is a contiguous run at the end of what the killed instance emitted.
    emitted_by: dict[int, list[int]] = defaultdict(list)  # seq -> instance indexes, in order
    for index, tail in enumerate(instances):
        for body in tail.bodies():
            emitted_by[body_seq(body)].append(index)
    replay_counts = []
    for index, (tail, killed_at) in enumerate(killed):
        received = tail.snapshot()
        replayed = [
            r
            for r in received
            if len(emitted_by[body_seq(r.body)]) > 1 and emitted_by[body_seq(r.body)][-1] > index
        ]
        replay_counts.append(len(replayed))
        if not replayed:
            continue
        assert min(r.arrived for r in replayed) >= killed_at - (CHECKPOINT_INTERVAL_S + SLACK_S)
        seqs = [body_seq(r.body) for r in received]
        replayed_seqs = [body_seq(r.body) for r in replayed]
        assert replayed_seqs == seqs[len(seqs) - len(replayed) :], (
            f"instance {index}: replay is not the tail of its output"
        )
    total_duplicates = sum(n - 1 for n in duplicated.values())
    print(
        f"kill -9 x{len(killed)}: written={written} received={len(all_bodies)} lost={len(lost)} "
        f"duplicated={total_duplicates} replayed_per_kill={replay_counts}"
    )
    assert total_duplicates == sum(replay_counts)


def test_sigterm_under_load_exits_0_within_the_bound_and_a_restart_emits_nothing_twice(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    writer = WriterProcess(log, lines_per_s=3000, total=10**9).start()
    shutdown_timeout_s = 5.0
    try:
        first = _tail(tmp_path, log, 0, "--shutdown-timeout", f"{shutdown_timeout_s}s")
        wait_for_count(first, 3000, timeout=30)
        code, took = first.terminate()
        checkpoint_db = tmp_path / "state" / "checkpoints.sqlite"
        assert code == 0, first.stderr_text()
        assert took < shutdown_timeout_s + 5.0  # the tailer's own stop grace is 5 s on top, at most
        assert checkpoint_db.exists()
        assert first.events("checkpoint_written")
        second = _tail(tmp_path, log, 1)
        wait_for_count(second, 3000, timeout=30)
        written = writer.stop()
    finally:
        if writer.running():
            writer.stop()
    append_sentinel(log, written)
    try:
        wait_for_seqs(second, set(range(written + 1)) - {body_seq(b) for b in first.bodies()}, timeout=90)
    finally:
        code, _took = second.terminate()
    assert code == 0
    bodies = first.bodies() + second.bodies()
    lost, duplicated = multiset_report(bodies, written + 1)
    print(
        f"SIGTERM: written={written} first={len(first.bodies())} second={len(second.bodies())} "
        f"lost={len(lost)} duplicated={sum(n - 1 for n in duplicated.values())} exit_took={took:.2f}s"
    )
    assert lost == []
    assert duplicated == {}
    # The restart resumed exactly where the first instance stopped.
    assert body_seq(second.bodies()[0]) == body_seq(first.bodies()[-1]) + 1


def test_sigterm_when_idle_exits_0_quickly_and_a_restart_emits_nothing(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    log.write_text("".join(f"w {seq:08d} t=0 idle\n" for seq in range(500)))
    first = _tail(tmp_path, log, 0)
    wait_for_count(first, 500, timeout=30)
    code, took = first.terminate()
    assert (code, first.count()) == (0, 500)
    second = _tail(tmp_path, log, 1)
    append_sentinel(log, 500)
    wait_for_count(second, 1, timeout=30)
    code, _ = second.terminate()
    assert code == 0
    assert second.bodies()[0].startswith("w 00000500 ") and second.count() == 1
    print(f"idle SIGTERM exit took {took:.2f}s")


def _kill9_while_rotating(tmp_path: Path, kills: int, rotations_per_life: int, seed: int) -> None:
    """kill -9 at random moments while logrotate renames the file under load (files rotated while the
    tailer is down must be found by identity and drained from their checkpoint)."""
    from tests.integration.tail_command import logrotate, write_logrotate_conf

    rng = random.Random(seed)
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    writer = WriterProcess(log, lines_per_s=2000, total=10**9).start()
    conf = tmp_path / "logrotate.conf"
    write_logrotate_conf(conf, log, mode="create", rotate=kills * rotations_per_life + 10,
                         postrotate=f"kill -HUP {writer.pid}")  # fmt: skip
    killed: list[tuple[TailProcess, float]] = []
    try:
        for index in range(kills):
            tail = _tail(tmp_path, log, index)
            wait_for_count(tail, 1, timeout=30)
            for _ in range(rotations_per_life):
                time.sleep(rng.uniform(0.1, 0.6))  # random moments, not a synchronisation
                logrotate(conf, tmp_path / "logrotate.state")
            time.sleep(rng.uniform(0.0, 0.5))
            killed.append((tail, tail.kill9()))
            if rng.random() < 0.5:  # sometimes rotate while nothing is running
                logrotate(conf, tmp_path / "logrotate.state")
        written = writer.stop()
    finally:
        if writer.running():
            writer.stop()
    append_sentinel(log, written)
    final = _tail(tmp_path, log, kills)
    try:
        seen_before = {body_seq(b) for tail, _ in killed for b in tail.bodies()}
        wait_for_seqs(final, set(range(written + 1)) - seen_before | {written}, timeout=45, logs=logs)
    finally:
        code, _took = final.terminate()
    assert code == 0
    all_bodies = [b for tail, _ in killed for b in tail.bodies()] + final.bodies()
    lost, duplicated = multiset_report(all_bodies, written + 1)
    duplicates = sum(n - 1 for n in duplicated.values())
    print(f"kill -9 x{kills} with rotation: written={written} lost={len(lost)} duplicated={duplicates}")
    assert lost == []
    # Every duplicate was emitted by a killed instance within the unacknowledged window before its kill.
    later: dict[int, int] = {}
    for index, tail in enumerate([t for t, _ in killed] + [final]):
        for body in tail.bodies():
            later[body_seq(body)] = index
    for index, (tail, killed_at) in enumerate(killed):
        for received in tail.snapshot():
            if later[body_seq(received.body)] > index:
                assert received.arrived >= killed_at - (CHECKPOINT_INTERVAL_S + SLACK_S), (
                    index,
                    received.body,
                )


def test_kill9_while_logrotate_renames_under_load_loses_nothing(tmp_path: Path) -> None:
    _kill9_while_rotating(tmp_path, kills=3, rotations_per_life=3, seed=7)


@pytest.mark.soak
def test_soak_kill9_while_logrotate_renames_under_load_loses_nothing(tmp_path: Path) -> None:
    _kill9_while_rotating(tmp_path, kills=20, rotations_per_life=5, seed=11)
