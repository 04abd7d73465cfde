"""`logsidecar_bytes_behind` during a backend outage, with the real `logsidecar tail`, a real OTLP
receiver (the gRPC witness of `otlp_receiver`) that is stopped, and the test appending to the file
(on a local filesystem, and on a real FUSE mount polled through the stall guard).

While the receiver is down the sends retry and the in-flight budget fills up; then the tailer reads
nothing more (the file is the buffer). The lag must still grow with every byte written: it is the
file's size now minus what was delivered, not the size the reader last saw (the FallingBehind alert
in deploy/prometheus/alerts.yml reads it)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.support.helpers import append_lines, wait_for
from tests.support.http_probe import http_get, scrape
from tests.support.otlp_receiver import GrpcWitness, free_port
from tests.support.stall_mount import StallMount
from tests.support.tail_command import TailProcess, start_tail

IN_FLIGHT_LINES = 50  # --max-in-flight-lines: reading pauses after this many undelivered lines


def start_tail_to(witness: GrpcWitness, tmp_path: Path, port: int, log: Path) -> TailProcess:
    """`logsidecar tail` of `log` to `witness` over OTLP, reading at most IN_FLIGHT_LINES ahead of
    delivery, its /metrics on `port`."""
    return start_tail(
        tmp_path,
        "--output", "otlp", "--otlp-endpoint", witness.endpoint, "--otlp-batch-timeout", "0.05",
        "--max-in-flight-lines", str(IN_FLIGHT_LINES), "--http-addr", f":{port}", "--format", "raw",
        str(log),
    )  # fmt: skip


def line(n: int) -> str:
    return f"line {n:06d} " + "x" * 80


def test_bytes_behind_grows_with_what_is_written_while_delivery_is_blocked(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append_lines(log, [line(n) for n in range(10)])
    port = free_port()
    witness = GrpcWitness().start()
    process = start_tail_to(witness, tmp_path, port, log)
    behind_key = ("logsidecar_bytes_behind", (("input", str(log)),))
    read_key = ("logsidecar_bytes_read_total", (("input", str(log)),))
    healthz = f"http://127.0.0.1:{port}/healthz"
    steps: list[tuple[int, int, int]] = []  # (bytes appended, bytes_behind growth, bytes read meanwhile)
    try:
        wait_for(lambda: witness.record_count == 10, 20, message="the first lines delivered")
        wait_for(lambda: scrape(port).get(behind_key) == 0.0, 10, message="0 bytes behind")
        witness.stop()
        # Far more than the in-flight budget: reading pauses with most of it unread.
        append_lines(log, [line(n) for n in range(10, 10 + 20 * IN_FLIGHT_LINES)])

        # Reading has paused once bytes_read stays put (between two polls) below the file's size.
        seen: list[float] = []

        def read_settled() -> bool:
            seen.append(scrape(port)[read_key])
            return len(seen) > 1 and seen[-1] == seen[-2] and seen[-1] < os.path.getsize(log)

        wait_for(read_settled, 20, 0.5, "reading paused by the in-flight budget")
        for step in range(3):
            before = scrape(port)
            size_before = os.path.getsize(log)
            append_lines(log, [line(100_000 + step * 100 + n) for n in range(40)])
            written = os.path.getsize(log) - size_before
            after = scrape(port)
            steps.append(
                (
                    written,
                    int(after[behind_key] - before[behind_key]),
                    int(after[read_key] - before[read_key]),
                )
            )
        status, body = http_get(healthz)
        health_behind = json.loads(body)["bytes_behind"]
        final_behind = scrape(port)[behind_key]
        witness.start()  # same port
        total = 10 + 20 * IN_FLIGHT_LINES + 3 * 40
        wait_for(lambda: witness.record_count >= total, 60, message="every line delivered after the outage")
        wait_for(lambda: scrape(port).get(behind_key) == 0.0, 20, message="0 bytes behind again")
    finally:
        code, _ = process.terminate()
        witness.stop()
    print(f"\nwhile the receiver was down (appended, bytes_behind growth, bytes read): {steps}")
    assert code == 0
    for written, grew, read in steps:
        assert read == 0, "the tailer was still reading: the outage did not pause it"
        # Nothing is delivered while the receiver is down, so the lag grows by exactly what was written.
        assert grew == written
    assert health_behind == final_behind


def test_on_a_network_mount_bytes_behind_grows_too_and_a_stalled_mount_does_not_hold_up_a_scrape(
    tmp_path: Path, mount: StallMount
) -> None:
    # The mount is polled and its calls go through the stall guard: a scrape must never stat it
    # itself (it would hang with the server), yet the lag must still follow what is written.
    port = free_port()
    witness = GrpcWitness().start()
    process = start_tail_to(witness, tmp_path, port, mount.path)
    behind_key = ("logsidecar_bytes_behind", (("input", str(mount.path)),))
    read_key = ("logsidecar_bytes_read_total", (("input", str(mount.path)),))
    grown: list[tuple[int, int]] = []  # (bytes appended, bytes_behind growth)
    try:
        for n in range(10):
            mount.command(f"append {line(n)}")
        wait_for(lambda: witness.record_count == 10, 30, message="the first lines delivered")
        wait_for(lambda: scrape(port).get(behind_key) == 0.0, 10, message="0 bytes behind")
        witness.stop()
        for n in range(10, 10 + 20 * IN_FLIGHT_LINES):
            mount.command(f"append {line(n)}")
        seen: list[float] = []

        def read_settled() -> bool:
            seen.append(scrape(port)[read_key])
            return len(seen) > 1 and seen[-1] == seen[-2] and seen[-1] < os.path.getsize(mount.path)

        wait_for(read_settled, 30, 0.5, "reading paused by the in-flight budget")
        # Settled once the background fstats started by the scrapes have caught up with the size.
        behind_seen: list[float] = []

        def behind_settled() -> float | None:
            behind_seen.append(scrape(port)[behind_key])
            return behind_seen[-1] if behind_seen[-3:] == [behind_seen[-1]] * 3 else None

        for step in range(3):
            before = wait_for(behind_settled, 10, 0.3, "bytes_behind settled")
            size_before = os.path.getsize(mount.path)
            for n in range(40):
                mount.command(f"append {line(200_000 + step * 100 + n)}")
            written = os.path.getsize(mount.path) - size_before
            # A scrape starts the fstat, a later one shows it (none shows it on the old code: wait).
            behind_seen.clear()
            after = wait_for(behind_settled, 10, 0.3, "bytes_behind settled")
            grown.append((written, int(after - before)))
            behind_seen.clear()

        mount.command("stall")
        began = time.monotonic()
        for _ in range(3):  # each starts (or finds) a guarded fstat that hangs with the server
            status, _ = http_get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
        scrapes_took = time.monotonic() - began
        blocked_calls = mount.command("count")
        mount.command("release")
        witness.start()  # same port
        total = 10 + 20 * IN_FLIGHT_LINES + 3 * 40
        wait_for(lambda: witness.record_count >= total, 60, message="every line delivered after the outage")
    finally:
        mount.command("release")
        code, _ = process.terminate()
        witness.stop()
    print(
        f"\nnetwork mount, receiver down (appended, bytes_behind growth): {grown}; 3 scrapes while stalled: "
        f"{scrapes_took:.3f}s, calls blocked on the server: {blocked_calls}"
    )
    assert code == 0
    assert all(growth == written for written, growth in grown)
    # Answered from what is known (5 s is http_get's own timeout: a hanging scrape fails it); the
    # stall guard keeps one call per path, so the scrapes added at most that one blocked call.
    assert blocked_calls <= 1
