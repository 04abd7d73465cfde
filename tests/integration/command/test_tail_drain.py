"""`logsidecar tail` stopped by SIGTERM reads what its files hold, delivers it and commits, within
--drain-timeout; what it cannot deliver in time it names, and a restart resumes there.

Real parts only: the `logsidecar tail` process, the real OTLP/gRPC receiver of otlp_receiver.py, real
signals. "SIGTERM at once" is made certain rather than hoped for: the process is frozen (SIGSTOP) while
the burst is written and the file rotated, then gets SIGTERM and SIGCONT together, so at the moment it
handles the SIGTERM every line of the burst is still unread. An unreachable collector is real too:
either a port nobody listens on (connection refused) or a socket that accepts connections and never
answers (a hung collector; the kernel completes the handshake, nobody reads).
"""

from __future__ import annotations

import os
import signal
import socket
from collections import Counter
from pathlib import Path

import pytest

from logsidecar.service.supervisor import EXIT_STOPPED_SHORT
from logsidecar.tail.options import TailOptions
from logsidecar.tail.reading import READ_BUDGET_CHUNKS
from tests.support.otlp_receiver import LOOPBACK, GrpcWitness, free_port, wait_for
from tests.support.tail_command import TailProcess

# One read cycle reads at most this much of a file: a burst bigger than that needs several cycles.
READ_CYCLE_BYTES = READ_BUDGET_CHUNKS * TailOptions(include=("x",)).read_chunk_bytes
IN_FLIGHT_LINES = 6144  # --max-in-flight-lines default: a bigger burst needs backpressure to pass


def _lines(prefix: str, count: int) -> list[str]:
    return [
        f"{prefix} {n:06d} GET /drain/{prefix}/{n}?q={n * 7} HTTP/1.1 200 {n} " + "x" * 40
        for n in range(count)
    ]


def _tail(tmp_path: Path, name: str, *args: str) -> TailProcess:
    return TailProcess(["--format", "raw", *args], tmp_path / "state", tmp_path / f"{name}.stderr").start()


def _wait_following(tail: TailProcess, path: Path) -> None:
    wait_for(
        lambda: any(e.get("path") == str(path) for e in tail.events("file_added")),
        timeout=30,
        what=f"the tailer following {path}",
    )


def _last_event(tail: TailProcess) -> dict:
    events = tail.events()
    assert events, tail.stderr_text()
    return events[-1]


def test_sigterm_reads_rotated_and_active_files_to_their_end_and_delivers_every_line(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    log.write_bytes(b"")
    before = _lines("rotated", 12_000)
    after = _lines("active", 12_000)
    partial = "active last line without its newline"
    with GrpcWitness() as witness:
        tail = _tail(tmp_path, "drain", "--output", "otlp", "--otlp-endpoint", witness.endpoint, str(log))
        _wait_following(tail, log)
        assert tail.process is not None
        os.kill(tail.process.pid, signal.SIGSTOP)
        try:
            with log.open("a") as handle:
                handle.write("".join(line + "\n" for line in before))
            log.rename(logs / "access.log.1")  # create-style rotation: the old file is drained
            with log.open("a") as handle:
                handle.write("".join(line + "\n" for line in after) + partial)
            assert (logs / "access.log.1").stat().st_size > READ_CYCLE_BYTES
            assert log.stat().st_size > READ_CYCLE_BYTES
            assert len(before) + len(after) > IN_FLIGHT_LINES
            os.kill(tail.process.pid, signal.SIGTERM)
        finally:
            os.kill(tail.process.pid, signal.SIGCONT)
        code = tail.wait_exit(timeout=60)
        received = witness.bodies()

    assert code == 0, tail.stderr_text()
    expected = Counter([*before, *after, partial])
    missing = expected - Counter(received)
    extra = Counter(received) - expected
    print(f"drain: {sum(expected.values())} lines written, {len(received)} received")
    assert (sum(missing.values()), sum(extra.values())) == (0, 0), (sorted(missing)[:3], sorted(extra)[:3])
    stopped = _last_event(tail)
    assert stopped["event"] == "stopped" and stopped["drained"] is True, stopped
    flushed = tail.events("partial_line_flushed")
    assert [(e["path"], e.get("reason")) for e in flushed] == [(str(log), "stopping")]


def _silent_collector() -> socket.socket:
    """A collector that accepts connections (the kernel does, from the backlog) and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((LOOPBACK, 0))
    server.listen(64)
    return server


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("collector", ["refused", "silent"])
def test_deadline_with_the_collector_unreachable_names_what_is_left_and_a_restart_resumes_there(
    tmp_path: Path, protocol: str, collector: str
) -> None:
    drain_timeout_s = 2.0
    silent = _silent_collector() if collector == "silent" else None
    port = silent.getsockname()[1] if silent is not None else free_port()
    endpoint = f"http://{LOOPBACK}:{port}" + ("/v1/logs" if protocol == "http/protobuf" else "")
    otlp = ["--output", "otlp", "--otlp-protocol", protocol, "--otlp-endpoint", endpoint]
    otlp += ["--drain-timeout", f"{drain_timeout_s}s"]
    log = tmp_path / "access.log"
    try:
        # The fixed cost of any stop (signal, commit, interpreter exit), with nothing to deliver.
        log.write_bytes(b"")
        idle = _tail(tmp_path, "idle", *otlp, "--state-dir", str(tmp_path / "idle-state"), str(log))
        _wait_following(idle, log)
        idle_code, idle_took = idle.terminate(timeout=30)
        assert idle_code == 0, idle.stderr_text()

        lines = _lines("held", 3 * IN_FLIGHT_LINES)
        log.write_text("".join(line + "\n" for line in lines))
        tail = _tail(tmp_path, "held", *otlp, str(log))
        _wait_following(tail, log)
        wait_for(lambda: tail.events("sink_retry") or collector == "silent", timeout=30, what="a failed send")
        code, took = tail.terminate(timeout=60)
    finally:
        if silent is not None:
            silent.close()

    assert code == EXIT_STOPPED_SHORT, tail.stderr_text()
    assert "Traceback" not in tail.stderr_path.read_text()
    # --drain-timeout covers the whole stop: reading, delivery, the commit and closing the outputs;
    # the rest is what any stop costs (measured above).
    bound = drain_timeout_s + idle_took
    print(f"{collector} {protocol}: exit took {took:.2f}s (bound {bound:.2f}s, idle stop {idle_took:.2f}s)")
    assert took <= bound
    stopped = _last_event(tail)
    assert stopped["event"] == "stopped" and stopped["level"] == "warning", stopped
    assert stopped["drained"] is False and stopped["lines_left"] == len(lines)
    [left] = stopped["left"]
    assert (left["path"], left["from_offset"]) == (str(log), 0)
    assert left["undelivered_bytes"] + left["unread_bytes"] == log.stat().st_size
    assert left["undelivered_lines"] + left["unread_lines"] == len(lines)
    assert left["undelivered_lines"] > 0 and left["unread_lines"] > 0  # read ahead, then held back

    # The checkpoint stayed at the acknowledged offset: a restart delivers every line from there.
    again = _tail(tmp_path, "again", "--output", "stdout", str(log))
    try:
        wait_for(lambda: again.count() >= len(lines), timeout=60, what="every line after the restart")
    finally:
        again.terminate(timeout=30)
    assert Counter(again.bodies()) == Counter(lines)
