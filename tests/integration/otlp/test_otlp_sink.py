"""The OTLP sink against real receivers: the rotel collector (gRPC and HTTP) forwarding to a witness
receiver that stores every request, plus witnesses that reject, throttle or answer partial success.

Every test uses loopback ports only and waits by polling (`wait_for` / `wait_for_async`)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from logsidecar import __version__
from logsidecar.events import Event
from logsidecar.parse import build_parser
from logsidecar.record import LogRecord
from logsidecar.sinks.base import BatchRejected
from logsidecar.sinks.otlp import OtlpSink, SinkClosed
from logsidecar.sinks.otlp_settings import OtlpProtocol, OtlpSettings
from tests.support.captured_events import of
from tests.support.helpers import wait_for_async
from tests.support.otlp_receiver import (
    GrpcWitness,
    HttpWitness,
    RotelCollector,
    free_port,
    self_signed_certificate,
    wait_for,
)

RESOURCE = {"service.name": "apache-httpd", "host.name": "web-1"}

ACCESS_LINES = [
    b'192.0.2.10 - - [28/Nov/2026:03:10:00 +0100] "GET /index.html HTTP/1.1" 200 2326 "-" "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"',
    b'198.51.100.7 - alice [28/Nov/2026:03:10:01 +0100] "POST /api/login?next=%2Fhome HTTP/2.0" 302 - "https://example.org/login" "curl/8.5.0"',
    b'2001:db8::1 - - [28/Nov/2026:03:10:01 +0100] "GET /missing.png HTTP/1.1" 404 196 "https://example.org/" "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"',
    b'203.0.113.5 - - [27/Nov/2026:22:59:59 -0500] "HEAD / HTTP/1.0" 500 0 "-" "-"',
    b"this line is not an access log line at all",
]
ERROR_LINES = [
    b"[Sat Nov 28 03:10:02.123456 2026] [core:error] [pid 1234:tid 140245] [client 192.0.2.10:51234] AH00037: Symbolic link not allowed or link target not accessible: /var/www/html/link",
    b"[Sat Nov 28 03:10:03.000001 2026] [mpm_event:notice] [pid 1:tid 140000] AH00489: Apache/2.4.62 (Debian) configured -- resuming normal operations",
    b"[Sat Nov 28 03:10:04.999999 2026] [ssl:warn] [pid 77] AH01909: www.example.org:443:0 server certificate does NOT include an ID which matches the server name",
]


def sample_records() -> list[LogRecord]:
    """Real-looking Apache records from the real parsers, plus one with every attribute type."""
    records = build_parser("combined").parse(ACCESS_LINES) + build_parser("error").parse(ERROR_LINES)
    records.append(
        LogRecord(
            body="every attribute type",
            attributes={
                "apache.float": 0.125,
                "apache.bool": False,
                "apache.negative": -42,
                "apache.list.str": ["a", "b"],
                "apache.list.int": [1, 2, 3],
            },
            timestamp=datetime.fromisoformat("2026-11-28T02:10:05.000007+00:00"),
            observed_timestamp=datetime.fromisoformat("2026-11-28T02:10:06.5+00:00"),
            severity_text="WARN",
            severity_number=13,
            resource={"container.id": "abc123"},
        )
    )
    return records


def numbered_records(count: int, prefix: str = "line") -> list[LogRecord]:
    lines = [
        f'192.0.2.{i % 250} - - [28/Nov/2026:03:10:{i % 60:02d} +0100] "GET /{prefix}/{i} HTTP/1.1" 200 {i} "-" "bench"'.encode()
        for i in range(count)
    ]
    return build_parser("combined").parse(lines)


def expected_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool_value"
    if isinstance(value, int):
        return "int_value"
    if isinstance(value, float):
        return "double_value"
    if isinstance(value, list):
        return "array_value"
    return "string_value"


def unix_nano(moment: datetime | None) -> int:
    """Independent of the encoder: whole seconds from the epoch plus the microseconds."""
    if moment is None:
        return 0
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def make_sink(endpoint: str, protocol: OtlpProtocol = OtlpProtocol.GRPC, **overrides: Any) -> OtlpSink:
    settings = OtlpSettings(endpoint=endpoint, protocol=protocol, resource=dict(RESOURCE), **overrides)
    return OtlpSink(settings)


def endpoint_for(collector: RotelCollector, protocol: OtlpProtocol) -> str:
    if protocol is OtlpProtocol.GRPC:
        return collector.grpc_endpoint
    return collector.http_endpoint + "/v1/logs"


PROTOCOLS = [OtlpProtocol.GRPC, OtlpProtocol.HTTP_PROTOBUF]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=["grpc", "http"])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_every_field_arrives_at_the_witness_through_rotel(
    rotel: RotelCollector, witness: GrpcWitness, protocol: OtlpProtocol, compression: str
) -> None:
    records = sample_records()
    sink = make_sink(endpoint_for(rotel, protocol), protocol, compression=compression)

    async def scenario() -> None:
        await sink.start()
        await sink.send(records)
        await sink.close()

    asyncio.run(scenario())
    wait_for(lambda: witness.record_count >= len(records), 10, what="all records at the witness")
    received = {log.body: log for log in witness.logs()}
    assert len(received) == len(records) == witness.record_count
    for record in records:
        log = received[record.body]
        assert log.record.time_unix_nano == unix_nano(record.timestamp), record.body
        assert log.record.observed_time_unix_nano == unix_nano(record.observed_timestamp)
        assert log.record.severity_number == int(record.severity_number)
        assert log.record.severity_text == (record.severity_text or "")
        assert log.attributes == {key: (expected_kind(v), v) for key, v in record.attributes.items()}
        assert log.resource == {k: ("string_value", v) for k, v in {**RESOURCE, **record.resource}.items()}
        assert (log.scope_name, log.scope_version) == ("logsidecar", __version__)
    # Spot checks against values written by hand, so the comparison above cannot be vacuous.
    first = received[ACCESS_LINES[0].decode()]
    assert first.record.time_unix_nano == 1795831800_000000000
    assert first.attributes["http.response.status_code"] == ("int_value", 200)
    assert first.attributes["client.address"] == ("string_value", "192.0.2.10")
    error = received[ERROR_LINES[0].decode()]
    assert error.record.severity_number == 17
    assert error.record.time_unix_nano % 1_000_000_000 == 123456000
    typed = received["every attribute type"]
    assert typed.attributes["apache.float"] == ("double_value", 0.125)
    assert typed.attributes["apache.bool"] == ("bool_value", False)
    assert typed.attributes["apache.negative"] == ("int_value", -42)
    assert typed.resource["container.id"] == ("string_value", "abc123")


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=["grpc", "http"])
def test_outage_send_blocks_retries_and_every_record_arrives_exactly_once(
    rotel: RotelCollector,
    witness: GrpcWitness,
    protocol: OtlpProtocol,
    captured_events: list[tuple[Event, dict[str, Any]]],
) -> None:
    batches = [numbered_records(200, prefix=f"b{n}") for n in range(12)]
    sink = make_sink(endpoint_for(rotel, protocol), protocol, initial_backoff_s=0.1, max_backoff_s=0.5)
    sent_batches: list[int] = []

    async def sender() -> None:
        for index, batch in enumerate(batches):
            await sink.send(batch)
            sent_batches.append(index)

    async def scenario() -> None:
        await sink.start()
        task = asyncio.create_task(sender())
        await wait_for_async(lambda: len(sent_batches) >= 3 or task.done(), 10, message="three batches sent")
        await asyncio.to_thread(rotel.stop)
        # The collector is down: send() keeps retrying and does not return.
        await wait_for_async(
            lambda: len(of(captured_events, Event.SINK_RETRY)) >= 3, 15, message="three retries"
        )
        sent_during_outage = len(sent_batches)
        await wait_for_async(
            lambda: len(of(captured_events, Event.SINK_RETRY)) >= 5, 15, message="five retries"
        )
        assert len(sent_batches) == sent_during_outage
        assert not task.done()
        await asyncio.to_thread(rotel.start)
        await asyncio.wait_for(task, 30)
        await sink.close()

    asyncio.run(scenario())
    expected = Counter(record.body for batch in batches for record in batch)
    wait_for(lambda: witness.record_count >= sum(expected.values()), 15, what="all records at the witness")
    assert Counter(witness.bodies()) == expected
    retry = of(captured_events, Event.SINK_RETRY)[0]
    assert retry["sink"] == "otlp"
    assert retry["reason"].startswith("collector unreachable")
    assert len(of(captured_events, Event.SINK_RECOVERED)) >= 1
    assert sink.stats.records_delivered == sum(expected.values())


@pytest.mark.parametrize(
    ("protocol", "reason"),
    [
        (OtlpProtocol.GRPC, "collector unreachable (connection refused) (gRPC UNAVAILABLE)"),
        (OtlpProtocol.HTTP_PROTOBUF, "collector unreachable (connection refused)"),
    ],
    ids=["grpc", "http"],
)
def test_nothing_listening_retries_with_a_clear_reason_until_closed(
    protocol: OtlpProtocol, reason: str, captured_events: list[tuple[Event, dict[str, Any]]]
) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}" + ("/v1/logs" if protocol is OtlpProtocol.HTTP_PROTOBUF else "")
    sink = make_sink(endpoint, protocol, initial_backoff_s=0.05, max_backoff_s=0.2)

    async def scenario() -> float:
        await sink.start()
        task = asyncio.create_task(sink.send(numbered_records(3)))
        await wait_for_async(
            lambda: len(of(captured_events, Event.SINK_RETRY)) >= 3, 15, message="three retries"
        )
        assert not task.done()
        began = time.monotonic()
        await sink.close()
        with pytest.raises(SinkClosed):
            await asyncio.wait_for(task, 5)
        return time.monotonic() - began

    closing_took = asyncio.run(scenario())
    assert closing_took < 5
    retries = of(captured_events, Event.SINK_RETRY)
    assert {fields["reason"] for fields in retries} == {reason}
    assert [fields["attempt"] for fields in retries[:3]] == [1, 2, 3]


def test_max_retry_time_turns_an_outage_into_a_rejection() -> None:
    sink = make_sink(f"http://127.0.0.1:{free_port()}", initial_backoff_s=0.05, max_retry_time_s=0.5)

    async def scenario() -> None:
        await sink.start()
        try:
            await sink.send(numbered_records(4))
        finally:
            await sink.close()

    with pytest.raises(BatchRejected) as caught:
        asyncio.run(scenario())
    assert caught.value.rejected == 4
    assert caught.value.reason.startswith("gave up after")
    assert "collector unreachable (connection refused)" in caught.value.reason


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=["grpc", "http"])
def test_tls_client_against_plaintext_receiver_reports_a_tls_failure(
    tmp_path: Path, protocol: OtlpProtocol, captured_events: list[tuple[Event, dict[str, Any]]]
) -> None:
    cert, _key = self_signed_certificate(tmp_path)
    receiver: GrpcWitness | HttpWitness = GrpcWitness() if protocol is OtlpProtocol.GRPC else HttpWitness()
    with receiver:
        endpoint = f"https://127.0.0.1:{receiver.port}" + (
            "/v1/logs" if protocol is OtlpProtocol.HTTP_PROTOBUF else ""
        )
        sink = make_sink(endpoint, protocol, ca_file=str(cert), initial_backoff_s=0.05, max_retry_time_s=1.0)

        async def scenario() -> None:
            await sink.start()
            try:
                await sink.send(numbered_records(2))
            finally:
                await sink.close()

        with pytest.raises(BatchRejected) as caught:
            asyncio.run(scenario())
        assert receiver.store.record_count == 0
    assert "TLS handshake with collector failed" in caught.value.reason
    assert {f["reason"].split(" (")[0] for f in of(captured_events, Event.SINK_RETRY)} == {
        "TLS handshake with collector failed"
    }


async def send_once(sink: OtlpSink, records: list[LogRecord]) -> None:
    await sink.start()
    try:
        await sink.send(records)
    finally:
        await sink.close()


def test_grpc_tls_with_ca_file_delivers(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with GrpcWitness(tls=(cert.read_bytes(), key.read_bytes())) as receiver:
        asyncio.run(send_once(make_sink(receiver.endpoint, ca_file=str(cert)), numbered_records(5)))
        assert receiver.record_count == 5


def test_http_tls_with_ca_file_delivers_even_when_requests_ca_bundle_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import certifi

    # requests would let this environment variable override the session's CA (psf/requests#3829).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    cert, key = self_signed_certificate(tmp_path)
    with HttpWitness(tls=(cert, key)) as receiver:
        sink = make_sink(receiver.url, OtlpProtocol.HTTP_PROTOBUF, ca_file=str(cert))
        asyncio.run(send_once(sink, numbered_records(5)))
        assert receiver.store.record_count == 5


def test_grpc_mutual_tls_needs_the_client_certificate(
    tmp_path: Path, captured_events: list[tuple[Event, dict[str, Any]]]
) -> None:
    cert, key = self_signed_certificate(tmp_path)  # self-signed: its own CA, for server and client
    with GrpcWitness(tls=(cert.read_bytes(), key.read_bytes()), client_ca=cert.read_bytes()) as receiver:
        without = make_sink(
            receiver.endpoint, ca_file=str(cert), initial_backoff_s=0.05, max_retry_time_s=1.0
        )
        with pytest.raises(BatchRejected) as caught:
            asyncio.run(send_once(without, numbered_records(2)))
        assert receiver.record_count == 0
        with_cert = make_sink(
            receiver.endpoint, ca_file=str(cert), client_cert_file=str(cert), client_key_file=str(key)
        )
        asyncio.run(send_once(with_cert, numbered_records(3)))
        assert receiver.record_count == 3
    assert caught.value.reason.startswith("gave up after")
    assert of(captured_events, Event.SINK_RETRY)  # retried (a transient TLS state), then gave up as told


# Authentication failures: see test_otlp_delivery_failures.py (kept and retried, never dropped).


def test_partial_success_is_counted_and_raised_with_the_range_not_retried(
    captured_events: list[tuple[Event, dict[str, Any]]],
) -> None:
    with GrpcWitness(partial_rejections=2) as receiver:
        sink = make_sink(receiver.endpoint)

        async def scenario() -> None:
            await sink.start()
            try:
                await sink.send(numbered_records(5))
            finally:
                await sink.close()

        with pytest.raises(BatchRejected) as caught:
            asyncio.run(scenario())
        assert receiver.record_count == 5
        assert len(receiver.store.requests) == 1  # not retried: that would duplicate the accepted ones
    assert sink.stats.records_partially_rejected == 2
    assert sink.stats.records_delivered == 3
    assert caught.value.rejected == 2
    [part] = caught.value.ranges
    assert (part.start, part.stop, part.rejected, part.partial) == (0, 5, 2, True)
    assert part.reason == "collector rejected 2 of 5 records: witness: rejected on purpose"
    # The pipeline reports it, with the files and offsets it knows (the sink does not, so it is said once).
    assert of(captured_events, Event.SINK_PARTIAL_SUCCESS) == []


def test_grpc_resource_exhausted_with_retry_info_waits_as_told(
    captured_events: list[tuple[Event, dict[str, Any]]],
) -> None:
    with GrpcWitness() as receiver:
        receiver.throttle_responses = 2
        receiver.throttle_delay_s = 0.5
        sink = make_sink(receiver.endpoint, initial_backoff_s=0.01)

        async def scenario() -> None:
            await sink.start()
            await sink.send(numbered_records(4))
            await sink.close()

        asyncio.run(scenario())
        assert receiver.record_count == 4
        gap = receiver.throttle_log[1] - receiver.throttle_log[0]
    assert gap >= 0.45  # the server's 0.5 s, not our 0.01 s initial backoff
    retries = of(captured_events, Event.SINK_RETRY)
    assert [(f["reason"], f["retry_in_s"]) for f in retries] == [
        ("collector is throttling (gRPC RESOURCE_EXHAUSTED)", 0.5)
    ] * 2


def test_http_503_retry_after_is_honoured(captured_events: list[tuple[Event, dict[str, Any]]]) -> None:
    with HttpWitness(retry_after_s=1) as receiver:
        receiver.unavailable_responses = 2
        sink = make_sink(receiver.url, OtlpProtocol.HTTP_PROTOBUF, initial_backoff_s=0.01)

        async def scenario() -> None:
            await sink.start()
            await sink.send(numbered_records(3))
            await sink.close()

        asyncio.run(scenario())
        assert receiver.store.record_count == 3
    times = [moment for moment, _ in receiver.status_log]
    assert [status for _, status in receiver.status_log] == [503, 503, 200]
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95
    assert [f["retry_in_s"] for f in of(captured_events, Event.SINK_RETRY)] == [1.0, 1.0]


def test_request_too_large_for_the_collector_is_split_and_a_lone_record_cut_not_dropped() -> None:
    limit = 20_000  # the witness's receive limit, far below our 4 MiB cap
    with GrpcWitness(max_receive_bytes=limit) as receiver:
        sink = make_sink(receiver.endpoint)
        records = numbered_records(400)
        huge = LogRecord(body="x" * 30_000)

        async def scenario() -> None:
            await sink.start()
            await sink.send(records)
            await sink.send([huge])  # refused whole, then sent cut to half its size, flagged
            await sink.close()

        asyncio.run(scenario())
        assert Counter(receiver.bodies()[:-1]) == Counter(r.body for r in records)
        assert len(receiver.store.requests) > 2
        last = receiver.logs()[-1]
    assert last.body == "x" * len(last.body) and limit // 2 < len(last.body) < limit
    assert last.attributes["logsidecar.truncated"] == ("bool_value", True)
    assert sink.stats.records_truncated == 1 and sink.stats.records_rejected == 0
