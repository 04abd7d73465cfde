"""`logsidecar tail` stopped abruptly (kill -9) or gracefully (SIGTERM) under load, then restarted with
the same --state-dir: nothing is ever lost, and a kill -9 replays at most what was in flight.

The kill -9 tests send OTLP/HTTP to a witness that can *hold* requests (store them, answer none). At
a random moment the witness starts holding; once every one of the sidecar's concurrent senders waits
on a held request, the sidecar is killed. At that moment what was in flight is known exactly: a lane
commits the acknowledgements of an answered request before it sends another, so with every sender
waiting on a held request nothing answered is still uncommitted, and per file the records not
acknowledged are those received from the first unanswered one on (in-order acknowledgement: an
answered batch behind an unanswered one is not acknowledged yet). The bound asserted: the records a
restart delivers again are a subset of that set, kill by kill. (`--otlp-batch-timeout 0` makes one
request per read batch, so every sender has a request to be held with.)
After a SIGTERM nothing is replayed at all.
(The Tailer itself, run directly by a child: tests/integration/tailer/test_tailer_crash.py.)
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from logsidecar.sinks.otlp_settings import OtlpSettings
from tests.support.helpers import wait_for
from tests.support.otlp_receiver import HttpWitness
from tests.support.tail_command import (
    TailProcess,
    WriterProcess,
    append_sentinel,
    body_seq,
    locate_on_disk,
    logrotate,
    multiset_report,
    wait_for_count,
    wait_for_seqs,
    write_logrotate_conf,
)

# Export requests the sidecar has in flight at once, at most (one per lane worker).
CONCURRENT_SENDS = OtlpSettings(endpoint="http://unused").max_concurrent_sends


def _tail(tmp_path: Path, log: Path, index: int, *extra: str) -> TailProcess:
    return TailProcess(
        ["--format", "raw", *extra, str(log)], tmp_path / "state", tmp_path / f"tail-{index}.stderr"
    ).start()


def _otlp_tail(tmp_path: Path, log: Path, index: int, witness: HttpWitness) -> TailProcess:
    witness.epoch = index  # what arrives from now on was sent by instance `index`
    return _tail(
        tmp_path, log, index,
        "--output", "otlp", "--otlp-protocol", "http/protobuf", "--otlp-endpoint", witness.url,
        "--otlp-batch-timeout", "0",
    )  # fmt: skip


def _file_and_offset(uid: str) -> tuple[str, int]:
    """`log.record.uid` is 16 hex digits of the file's identity, then the line's end offset."""
    return uid[:16], int(uid[16:], 16)


def kill9_while_held(tail: TailProcess, witness: HttpWitness, index: int) -> set[str]:
    """Hold every request, wait until all senders wait on one, kill -9. Returns the `log.record.uid`s
    in flight at the kill: per file, every record this instance sent from the first unanswered one on."""
    witness.hold()
    wait_for(
        lambda: len([e for e in witness.held() if e.epoch == index]) >= CONCURRENT_SENDS,
        timeout=30,
        interval=0.005,
        message=f"instance {index}: {CONCURRENT_SENDS} requests held",
    )
    tail.kill9()
    held = [e for e in witness.held() if e.epoch == index]
    first_unanswered: dict[str, int] = {}
    for export in held:
        for uid in export.uids:
            key, offset = _file_and_offset(uid)
            first_unanswered[key] = min(offset, first_unanswered.get(key, offset))
    in_flight = set()
    for export in [e for e in witness.exports if e.epoch == index]:
        for uid in export.uids:
            key, offset = _file_and_offset(uid)
            if key in first_unanswered and offset >= first_unanswered[key]:
                in_flight.add(uid)
    witness.release()  # their answers go to a dead process
    return in_flight


def wait_for_witness_seqs(witness: HttpWitness, expected: set[int], timeout: float, logs: Path) -> None:
    missing = set(expected)

    def all_received() -> bool:
        missing.difference_update(body_seq(body) for body in witness.bodies())
        return not missing

    try:
        wait_for(all_received, timeout=timeout, message=f"all {len(expected)} expected lines")
    except AssertionError as error:
        where = locate_on_disk(logs, missing)
        raise AssertionError(
            f"{error}; {len(missing)} missing, e.g. {sorted(missing)[:5]}; on disk: {where}"
        ) from None


def check_replays_within_in_flight(witness: HttpWitness, in_flight: list[set[str]], total: int) -> list[int]:
    """Nothing lost; what each killed instance's successors delivered again is a subset of what was in
    flight at its kill. Returns the replayed count per kill."""
    lost, duplicated = multiset_report(witness.bodies(), total)
    assert lost == []
    epochs_of: dict[str, list[int]] = defaultdict(list)  # uid -> the instances that delivered it
    for export in witness.exports:
        for uid in export.uids:
            epochs_of[uid].append(export.epoch)
    replayed_per_kill = []
    for index, flying in enumerate(in_flight):
        replayed = {uid for uid, epochs in epochs_of.items() if index in epochs and max(epochs) > index}
        assert replayed <= flying, (
            f"instance {index}: {len(replayed - flying)} records replayed that were acknowledged "
            f"before the kill (replayed {len(replayed)}, in flight {len(flying)})"
        )
        replayed_per_kill.append(len(replayed))
    # every duplicate is one of those replays (an instance never delivers a record twice)
    if sum(n - 1 for n in duplicated.values()) != sum(replayed_per_kill):
        seen: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for export in witness.exports:
            for body, uid in zip(export.bodies, export.uids, strict=True):
                if body_seq(body) in duplicated:
                    seen[body_seq(body)].append((export.epoch, uid))
        odd = {seq: where for seq, where in seen.items() if len({uid for _, uid in where}) > 1}
        raise AssertionError(f"duplicates under another uid: {len(odd)}, e.g. {sorted(odd.items())[:3]}")
    return replayed_per_kill


def kill9_repeatedly(
    tmp_path: Path,
    log: Path,
    witness: HttpWitness,
    writer: WriterProcess,
    kills: int,
    while_alive: Callable[[], None],
    while_down: Callable[[], None] = lambda: None,
) -> tuple[int, list[set[str]]]:
    """`kills` times: start an instance, wait until it sends, run `while_alive`, kill it -9 with its
    requests held, run `while_down`. Then stop the writer. Returns the lines written and, per kill,
    what was in flight (kill9_while_held)."""
    in_flight: list[set[str]] = []
    try:
        for index in range(kills):
            tail = _otlp_tail(tmp_path, log, index, witness)
            wait_for(lambda: any(e.epoch == index for e in witness.exports), timeout=30)  # noqa: B023
            while_alive()
            in_flight.append(kill9_while_held(tail, witness, index))
            while_down()
        return writer.stop(), in_flight
    finally:
        if writer.running():
            writer.stop()


def restart_and_check_replays(
    tmp_path: Path, log: Path, witness: HttpWitness, in_flight: list[set[str]], written: int, timeout: float
) -> list[int]:
    """After the kills: a sentinel line, one last instance that runs until every line arrived and
    exits 0, then the replay bound of `check_replays_within_in_flight`. Returns its replay counts."""
    append_sentinel(log, written)
    final = _otlp_tail(tmp_path, log, len(in_flight), witness)
    try:
        wait_for_witness_seqs(witness, set(range(written + 1)), timeout=timeout, logs=log.parent)
    finally:
        code, _took = final.terminate()
    assert code == 0, final.stderr_text()
    return check_replays_within_in_flight(witness, in_flight, written + 1)


def test_kill9_under_load_loses_nothing_and_replays_at_most_what_was_in_flight(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    log = tmp_path / "access.log"
    writer = WriterProcess(log, lines_per_s=3000, total=10**9).start()
    with HttpWitness() as witness:

        def while_alive() -> None:
            time.sleep(rng.uniform(0.2, 2.0))  # a random moment to start holding at

        written, in_flight = kill9_repeatedly(tmp_path, log, witness, writer, 4, while_alive)
        replayed = restart_and_check_replays(tmp_path, log, witness, in_flight, written, timeout=90)
    print(
        f"kill -9 x{len(in_flight)}: written={written} replayed_per_kill={replayed} "
        f"in_flight_per_kill={[len(f) for f in in_flight]}"
    )
    assert all(len(flying) for flying in in_flight)  # the holding worked: something was in flight


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
    tailer is down must be found by identity and drained from their checkpoint); each kill replays at
    most what was in flight."""
    rng = random.Random(seed)
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    writer = WriterProcess(log, lines_per_s=2000, total=10**9).start()
    conf = tmp_path / "logrotate.conf"
    write_logrotate_conf(conf, log, mode="create", rotate=kills * rotations_per_life + 10,
                         postrotate=f"kill -HUP {writer.pid}")  # fmt: skip
    with HttpWitness() as witness:

        def while_alive() -> None:
            for _ in range(rotations_per_life):
                time.sleep(rng.uniform(0.1, 0.6))  # random moments, not a synchronisation
                logrotate(conf, tmp_path / "logrotate.state")
            time.sleep(rng.uniform(0.0, 0.5))

        def while_down() -> None:
            if rng.random() < 0.5:  # sometimes rotate while nothing is running
                logrotate(conf, tmp_path / "logrotate.state")

        written, in_flight = kill9_repeatedly(tmp_path, log, witness, writer, kills, while_alive, while_down)
        replayed = restart_and_check_replays(tmp_path, log, witness, in_flight, written, timeout=60)
    print(
        f"kill -9 x{kills} with rotation: written={written} replayed_per_kill={replayed} "
        f"in_flight_per_kill={[len(f) for f in in_flight]}"
    )


def test_kill9_while_logrotate_renames_under_load_loses_nothing(tmp_path: Path) -> None:
    _kill9_while_rotating(tmp_path, kills=3, rotations_per_life=3, seed=7)


@pytest.mark.soak
def test_soak_kill9_while_logrotate_renames_under_load_loses_nothing(tmp_path: Path) -> None:
    _kill9_while_rotating(tmp_path, kills=20, rotations_per_life=5, seed=11)
