"""Delivery failures that used to lose data or stall (issue 13, finding 10), against real receivers:
the rotel collector (its gRPC receive limit is grpc's default 4 MiB; it answers a bigger request
OUT_OF_RANGE "decoded message length too large") and the witness receivers of `otlp_receiver`, real
gRPC and HTTP servers that answer UNAUTHENTICATED / PERMISSION_DENIED / 401 / 403 to a wrong token and
400 to a request holding a marked record.

- A wrong token, a wrong endpoint path or a header value that cannot be sent is a configuration
  error: retried however long it takes (even past --otlp-max-retry-time), one event says what to fix,
  the process is unhealthy, and nothing is acknowledged, so a restart with the right token delivers
  every line.
- Requests are capped (4 MiB gRPC, 20 MiB HTTP) and split before sending; a single record over the cap
  is cut to fit and flagged; a "too large" answer (413, OUT_OF_RANGE, RESOURCE_EXHAUSTED) splits too.
- Only malformed records are dropped, alone, and reported with their file and offsets.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from logsidecar import events, selflog
from logsidecar.encoding.otlp_wire import LogsRequestEncoder
from logsidecar.events import Event
from logsidecar.parse import build_parser
from logsidecar.record import TRUNCATED, LogRecord
from logsidecar.service.supervisor import EXIT_STOPPED_SHORT
from logsidecar.sinks.base import BatchRejected
from logsidecar.sinks.otlp import OtlpSink, SinkClosed
from logsidecar.sinks.otlp_fit import (
    DEFAULT_GRPC_MAX_REQUEST_BYTES,
    DEFAULT_HTTP_MAX_REQUEST_BYTES,
    SMALLEST_TRUNCATION_BYTES,
)
from logsidecar.sinks.otlp_settings import OtlpProtocol, OtlpSettings
from tests.support.captured_events import of
from tests.support.helpers import wait_for_async
from tests.support.otlp_receiver import GrpcWitness, HttpWitness, RotelCollector, free_port, wait_for

MIB = 1024 * 1024
RIGHT = "Bearer right-s3cr3t"
WRONG = "Bearer wrong-s3cr3t"


@pytest.fixture
def selflog_text() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    unsubscribe = events.subscribe(selflog.SelfLogger(stream=stream, style=selflog.LogStyle.JSON))
    yield stream
    unsubscribe()


def make_sink(endpoint: str, protocol: OtlpProtocol = OtlpProtocol.GRPC, **overrides: Any) -> OtlpSink:
    return OtlpSink(OtlpSettings(endpoint=endpoint, protocol=protocol, **overrides))


def records(count: int, prefix: str = "line") -> list[LogRecord]:
    return [LogRecord(body=f"{prefix} {i}") for i in range(count)]


def deliver(sink: OtlpSink, batch: list[LogRecord], timeout: float = 60.0) -> None:
    async def scenario() -> None:
        await sink.start()
        try:
            await asyncio.wait_for(sink.send(batch), timeout)
        finally:
            await sink.close()

    asyncio.run(scenario())


# -- configuration errors: kept, retried, reported once, fixed ---------------------------------------

DENIALS = [
    pytest.param(OtlpProtocol.GRPC, grpc.StatusCode.UNAUTHENTICATED, id="grpc-UNAUTHENTICATED"),
    pytest.param(OtlpProtocol.GRPC, grpc.StatusCode.PERMISSION_DENIED, id="grpc-PERMISSION_DENIED"),
    pytest.param(OtlpProtocol.HTTP_PROTOBUF, 401, id="http-401"),
    pytest.param(OtlpProtocol.HTTP_PROTOBUF, 403, id="http-403"),
]


@pytest.mark.parametrize(("protocol", "denial"), DENIALS)
def test_a_wrong_token_is_retried_past_the_retry_limit_and_delivers_once_fixed(
    protocol: OtlpProtocol,
    denial: Any,
    captured_events: list[tuple[Event, dict[str, Any]]],
    selflog_text: io.StringIO,
) -> None:
    max_retry_time_s = 0.3
    if protocol is OtlpProtocol.GRPC:
        receiver: Any = GrpcWitness(required_header=("authorization", RIGHT), denial=denial)
        denials = lambda: receiver.rejected_requests  # noqa: E731
    else:
        receiver = HttpWitness(required_header=("Authorization", RIGHT), denial_status=denial)
        denials = lambda: sum(1 for _, status in receiver.status_log if status == denial)  # noqa: E731
    with receiver:
        endpoint = receiver.endpoint if protocol is OtlpProtocol.GRPC else receiver.url
        sink = make_sink(
            endpoint,
            protocol,
            headers={"authorization": WRONG},
            initial_backoff_s=0.05,
            max_backoff_s=0.2,
            max_retry_time_s=max_retry_time_s,
        )

        async def scenario() -> float:
            await sink.start()
            started = time.monotonic()
            sending = asyncio.create_task(sink.send(records(3)))
            # Denied over and over, for longer than --otlp-max-retry-time: never given up on.
            await wait_for_async(lambda: denials() >= 4, 10, message="four denials")
            await asyncio.sleep(max(0.0, started + 2 * max_retry_time_s - time.monotonic()))
            assert not sending.done()
            # The collector now takes our token: what fixing the configuration means to the sink.
            key = "authorization" if protocol is OtlpProtocol.GRPC else "Authorization"
            receiver.required_header = (key, WRONG)
            await asyncio.wait_for(sending, 10)
            await sink.close()
            return time.monotonic() - started

        took = asyncio.run(scenario())
        assert sorted(receiver.store.bodies()) == ["line 0", "line 1", "line 2"]
    assert took > 2 * max_retry_time_s
    assert sink.stats.records_rejected == 0 and sink.stats.records_delivered == 3
    [misconfigured] = of(captured_events, Event.SINK_MISCONFIGURED)  # one event, however many attempts
    status = f"gRPC {denial.name}" if protocol is OtlpProtocol.GRPC else f"HTTP {denial}"
    assert status in misconfigured["reason"]
    assert misconfigured["endpoint"] == endpoint
    assert "Authorization" in misconfigured["fix"] and "OTEL_EXPORTER_OTLP_HEADERS" in misconfigured["fix"]
    retries = of(captured_events, Event.SINK_RETRY)
    assert len(retries) >= 4 and all(r["misconfigured"] is True for r in retries)
    assert of(captured_events, Event.SINK_RECOVERED)
    assert "s3cr3t" not in selflog_text.getvalue() + repr(captured_events)


@pytest.mark.parametrize("protocol", [OtlpProtocol.GRPC, OtlpProtocol.HTTP_PROTOBUF], ids=["grpc", "http"])
def test_a_header_value_that_cannot_be_sent_is_a_configuration_error_not_a_drop(
    protocol: OtlpProtocol, captured_events: list[tuple[Event, dict[str, Any]]], selflog_text: io.StringIO
) -> None:
    receiver: Any = GrpcWitness() if protocol is OtlpProtocol.GRPC else HttpWitness()
    with receiver:
        endpoint = receiver.endpoint if protocol is OtlpProtocol.GRPC else receiver.url
        # (start-up validation refuses this value; a sink built another way must not drop data)
        sink = make_sink(
            endpoint,
            protocol,
            headers={"authorization": "Bearer a\nnewline-s3cr3t"},
            initial_backoff_s=0.05,
            max_backoff_s=0.1,
            max_retry_time_s=0.2,
        )

        async def scenario() -> None:
            await sink.start()
            sending = asyncio.create_task(sink.send(records(2)))
            await wait_for_async(
                lambda: len(of(captured_events, Event.SINK_RETRY)) >= 4, 10, message="four retries"
            )
            assert not sending.done()
            await sink.close()
            with pytest.raises(SinkClosed):  # not delivered: never acknowledged, read again later
                await sending

        asyncio.run(scenario())
        assert receiver.store.record_count == 0
    [misconfigured] = of(captured_events, Event.SINK_MISCONFIGURED)
    assert misconfigured["reason"].startswith("request headers are invalid")
    assert "newline" in misconfigured["fix"]
    assert "s3cr3t" not in selflog_text.getvalue() + repr(captured_events)


# -- sizes: capped, split before sending, split on "too large", one record cut to fit -----------------


def test_five_1mib_lines_are_split_under_grpcs_4mib_limit_and_all_arrive(
    rotel: RotelCollector, witness: GrpcWitness, captured_events: list[tuple[Event, dict[str, Any]]]
) -> None:
    """The reproducer: five 1 MiB lines make a 5 MB gRPC request; rotel refuses more than 4 MiB."""
    lines = [LogRecord(body=str(i) * MIB) for i in range(5)]
    sink = make_sink(rotel.grpc_endpoint, max_retry_time_s=10.0)  # (bounds the old behaviour)
    deliver(sink, lines)
    wait_for(lambda: witness.record_count >= 5, 15, what="five records at the witness")
    assert sorted(witness.bodies()) == sorted(r.body for r in lines)
    # Split before sending (2 + 3 records, each under 4 MiB): no request was refused, none retried.
    assert sink.stats.requests_sent == 2 and sink.stats.retries == 0
    assert of(captured_events, Event.SINK_RETRY) == [] and sink.stats.records_truncated == 0


def test_a_grpc_out_of_range_for_size_is_split_like_http_413(
    rotel: RotelCollector, witness: GrpcWitness, captured_events: list[tuple[Event, dict[str, Any]]]
) -> None:
    """Our cap raised above the collector's limit: its OUT_OF_RANGE answer splits the request."""
    lines = [LogRecord(body=str(i) * MIB) for i in range(5)]
    sink = make_sink(rotel.grpc_endpoint, max_request_bytes=64 * MIB, max_retry_time_s=10.0)
    deliver(sink, lines)
    wait_for(lambda: witness.record_count >= 5, 15, what="five records at the witness")
    assert sorted(witness.bodies()) == sorted(r.body for r in lines)
    # 5 records refused, then halves of 2 and 3 accepted; "too large" is answered by splitting, not retried.
    assert sink.stats.requests_sent == 3 and sink.stats.retries == 0
    assert of(captured_events, Event.SINK_RETRY) == []


def test_http_batches_are_capped_at_20mib_before_sending(
    rotel: RotelCollector,
    witness: GrpcWitness,
) -> None:
    lines = [LogRecord(body=f"{i:02d}" * (MIB // 2)) for i in range(25)]  # 25 MiB of text
    sink = make_sink(rotel.http_endpoint + "/v1/logs", OtlpProtocol.HTTP_PROTOBUF, max_retry_time_s=10.0)
    deliver(sink, lines)
    wait_for(lambda: witness.record_count >= 25, 30, what="25 records at the witness")
    assert sorted(witness.bodies()) == sorted(r.body for r in lines)
    # Halves of 12 and 13 MiB are under the cap: two requests, none refused with 413.
    assert 13 * MIB < DEFAULT_HTTP_MAX_REQUEST_BYTES < 25 * MIB
    assert sink.stats.requests_sent == 2 and sink.stats.retries == 0


def test_a_single_line_over_the_cap_is_cut_to_fit_flagged_and_delivered(
    rotel: RotelCollector, witness: GrpcWitness, captured_events: list[tuple[Event, dict[str, Any]]]
) -> None:
    # A real access line with a 3 MiB URL: body and url attributes each hold it, 9+ MiB in all.
    url = "/" + "a" * (3 * MIB)
    line = f'192.0.2.1 - - [28/Nov/2026:03:10:00 +0100] "GET {url} HTTP/1.1" 414 0 "-" "curl/8.5"'
    [record] = build_parser("combined").parse([line.encode()])
    sink = make_sink(rotel.grpc_endpoint, max_retry_time_s=10.0)
    deliver(sink, [record])
    wait_for(lambda: witness.record_count >= 1, 15, what="the record at the witness")
    [received] = witness.logs()
    assert received.body == line[: len(received.body)] and len(received.body) < len(line)
    assert received.body.startswith('192.0.2.1 - - [28/Nov/2026:03:10:00 +0100] "GET /aaaa')
    assert received.attributes[TRUNCATED] == ("bool_value", True)
    assert received.attributes["http.response.status_code"] == ("int_value", 414)
    [truncated] = of(captured_events, Event.SINK_RECORD_TRUNCATED)
    assert truncated["record_bytes"] > DEFAULT_GRPC_MAX_REQUEST_BYTES >= truncated["sent_bytes"]
    # As little cut as needed: the request is filled to within a few bytes per string of the cap.
    assert truncated["sent_bytes"] > DEFAULT_GRPC_MAX_REQUEST_BYTES - 64 * len(record.attributes)
    assert of(captured_events, Event.SINK_RETRY) == []


# -- malformed: dropped alone, the rest delivered, reported with file and offsets ------------------------


def test_only_the_malformed_request_is_dropped_and_every_other_is_still_sent() -> None:
    with HttpWitness(malformed_marker="poison") as receiver:
        batch = records(6)
        batch[3] = LogRecord(body="poison 3")
        sink = make_sink(receiver.url, OtlpProtocol.HTTP_PROTOBUF, batch_size=2)

        async def scenario() -> None:
            await sink.start()
            try:
                await sink.send(batch)
            finally:
                await sink.close()

        with pytest.raises(BatchRejected) as caught:
            asyncio.run(scenario())
        assert sorted(receiver.store.bodies()) == ["line 0", "line 1", "line 4", "line 5"]
    assert caught.value.rejected == 2
    [part] = caught.value.ranges
    assert (part.start, part.stop, part.rejected, part.partial) == (2, 4, 2, False)
    assert part.reason == "collector rejected the data as invalid (HTTP 400): witness: malformed on purpose"
    assert [status for _, status in receiver.status_log] == [200, 400, 200]  # not retried


# -- the whole program: `logsidecar tail` ------------------------------------------------------------------


class TailProcess:
    """`logsidecar tail --output otlp` in a subprocess with its HTTP endpoint; self-logs (JSON) in a file."""

    def __init__(self, tmp_path: Path, log: Path, *args: str, name: str) -> None:
        self.http_port = free_port()
        self.stderr_path = tmp_path / f"{name}.stderr"
        command = [
            sys.executable, "-m", "logsidecar", "tail", "--format", "combined", "--output", "otlp",
            "--state-dir", str(tmp_path / "state"), "--log-format", "json",
            "--http-addr", f"127.0.0.1:{self.http_port}", *args, str(log),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOGSIDECAR_"))}
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)

    def healthz(self) -> tuple[int, dict[str, Any]] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=2) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            return None

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("event") == name:
                    found.append(entry)
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


def access_line(n: int, path: str = "ok") -> str:
    return f'192.0.2.{n % 250} - - [28/Nov/2026:03:10:{n % 60:02d} +0100] "GET /{path}/{n} HTTP/1.1" 200 {n} "-" "t"'


def test_tail_with_a_wrong_token_is_unhealthy_keeps_its_offsets_and_a_restart_delivers_everything(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    lines = [access_line(n) for n in range(50)]
    log.write_text("".join(line + "\n" for line in lines))
    with GrpcWitness(required_header=("authorization", RIGHT)) as witness:
        wrong = TailProcess(
            tmp_path, log, "--otlp-endpoint", witness.endpoint, "--otlp-header", f"authorization={WRONG}",
            name="wrong",
        )  # fmt: skip
        try:
            answer = wait_for(
                lambda: (h := wrong.healthz()) is not None and h[0] == 503 and h, 30, what="/healthz 503"
            )
            wait_for(lambda: witness.rejected_requests >= 2, 30, what="a retry after the denial")
        finally:
            assert wrong.stop() == EXIT_STOPPED_SHORT  # its lines could not be delivered
        assert (
            "misconfigured: authentication rejected by collector (gRPC UNAUTHENTICATED)"
            in answer[1]["summary"]
        )
        [event] = wrong.events("sink_misconfigured")
        assert "OTEL_EXPORTER_OTLP_HEADERS" in event["fix"] and event["endpoint"] == witness.endpoint
        assert wrong.events("sink_rejected") == [] and witness.record_count == 0
        [stopped] = wrong.events("stopped")
        [left] = stopped["left"]  # nothing acknowledged: a restart resumes at 0, every line to send
        assert left["from_offset"] == 0 and left["undelivered_lines"] + left["unread_lines"] == len(lines)
        assert "s3cr3t" not in wrong.stderr_path.read_text()

        right = TailProcess(
            tmp_path, log, "--otlp-endpoint", witness.endpoint, "--otlp-header", f"authorization={RIGHT}",
            name="right",
        )  # fmt: skip
        try:
            wait_for(lambda: witness.record_count >= len(lines), 30, what="every line after the fix")
            time.sleep(0.5)  # (nothing more arrives: no duplicate)
        finally:
            assert right.stop() == 0
        assert sorted(witness.bodies()) == sorted(lines)


def test_tail_drops_only_the_malformed_line_and_reports_its_file_and_offsets(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    with HttpWitness(malformed_marker="poison") as witness:
        tail = TailProcess(
            tmp_path, log, "--otlp-protocol", "http/protobuf", "--otlp-endpoint", witness.url, name="tail"
        )
        try:
            with open(log, "a") as handle:
                for n in range(5):
                    handle.write(access_line(n) + "\n")
                handle.flush()
                wait_for(lambda: witness.store.record_count >= 5, 30, what="the first five lines")
                poison_at = handle.tell()
                handle.write(access_line(5, "poison") + "\n")
                handle.flush()
                poison_end = handle.tell()
                wait_for(lambda: tail.events("sink_rejected"), 30, what="the rejection")
                for n in range(6, 11):
                    handle.write(access_line(n) + "\n")
            wait_for(lambda: witness.store.record_count >= 10, 30, what="the lines after it")
        finally:
            assert tail.stop() == 0
    [rejected] = tail.events("sink_rejected")
    assert rejected["rejected"] == 1 and rejected["reason"].startswith(
        "collector rejected the data as invalid (HTTP 400)"
    )
    assert rejected["files"] == [
        {"path": str(log), "first_offset": poison_at, "last_offset": poison_end, "lines": 1}
    ]
    assert sorted(witness.store.bodies()) == sorted(access_line(n) for n in range(11) if n != 5)


def test_a_record_the_collector_refuses_even_cut_short_is_rejected_not_retried_forever(
    captured_events: list[tuple[Event, dict[str, Any]]],
) -> None:
    # 400 integer attributes (~3.5 KB, nothing to cut) against a collector that takes 2,000 bytes.
    with GrpcWitness(max_receive_bytes=2000) as receiver:
        record = LogRecord(body="", attributes={f"n{i}": i for i in range(400)})
        sink = make_sink(receiver.endpoint)
        with pytest.raises(BatchRejected) as caught:
            deliver(sink, [record], timeout=30)
        assert receiver.record_count == 0
    assert caught.value.reason.startswith("request too large for collector (gRPC RESOURCE_EXHAUSTED)")
    # Sent whole, then again at each halved limit (nothing to cut: sent as is) down to the smallest
    # cut, then given up: a bounded number of attempts.
    size = len(LogsRequestEncoder(sink.settings.resource).encode([record]))
    attempts, limit = 1, size
    while limit // 2 >= SMALLEST_TRUNCATION_BYTES:
        attempts, limit = attempts + 1, limit // 2
    assert sink.stats.requests_sent == attempts and sink.stats.records_rejected == 1
    assert of(captured_events, Event.SINK_RETRY) == []
