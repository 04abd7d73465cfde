"""Access metrics end to end: a real Apache serves a known set of requests and logs them with %D; the
lines are parsed with the real parser, fed to the access-metrics sink, exported over OTLP (gRPC and
HTTP/protobuf) to a real rotel collector, which forwards them to a metrics witness.

The witness is `MetricsWitness` (tests/support/metrics_witness.py).
The assertions are exact: request counts per (method, status, route) equal what was sent (statuses
as Apache answered them), and the histogram's count and sum equal the %D values Apache wrote, read
from the raw lines with a regex independent of the parser.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from logsidecar.metrics.aggregate import DURATION_BUCKETS, DURATION_METRIC, REQUESTS_METRIC, STATUS_CLASS
from logsidecar.metrics.sink import AccessMetricsSink
from logsidecar.parse import build_parser
from logsidecar.settings.otel_env import resolve_metrics_settings
from tests.support.apache import ApacheServer, status_of
from tests.support.helpers import wait_for
from tests.support.metrics_witness import MetricsWitness
from tests.support.otlp_receiver import (
    RotelCollector,
    self_signed_certificate,
)

LOGFORMAT = '%h %l %u %t "%r" %>s %b %D'
# (method, target, how many times)
REQUESTS = [("GET", "/api/x", 7), ("GET", "/missing", 3), ("POST", "/api/y", 2)]


@pytest.fixture
def apache_with_durations(apache_factory: Any, tmp_path: Path) -> ApacheServer:
    return apache_factory(
        custom_logs=[(tmp_path / "access.log", LOGFORMAT)],
        documents={"api/x": "x\n", "api/y": "y\n"},
    )


@pytest.fixture
def metrics_witness() -> Any:
    witness = MetricsWitness().start()
    yield witness
    witness.stop()


@pytest.fixture
def rotel(tmp_path: Path, metrics_witness: MetricsWitness) -> Any:
    collector = RotelCollector(
        tmp_path / "rotel",
        forward_to=metrics_witness.endpoint,
        extra_args=("--metrics-batch-timeout", "20ms"),
    )
    collector.start()
    yield collector
    collector.stop()


def test_metrics_from_real_apache_lines_reach_the_collector_exactly(
    apache_with_durations: ApacheServer,
    rotel: RotelCollector,
    metrics_witness: MetricsWitness,
    tmp_path: Path,
) -> None:
    apache = apache_with_durations
    sent: Counter[tuple[str, int, str]] = Counter()
    for method, target, times in REQUESTS:
        for _ in range(times):
            status = status_of(apache.request(method, target, body=b"a=1" if method == "POST" else b""))
            sent[(method, status, "/" + target.split("/")[1])] += 1
    assert sent[("GET", 200, "/api")] == 7
    assert sent[("GET", 404, "/missing")] == 3
    total = sum(sent.values())

    log = tmp_path / "access.log"

    def logged_lines() -> list[bytes] | None:
        found = log.read_bytes().splitlines()
        return found if len(found) >= total else None

    lines = wait_for(logged_lines, timeout=10, message=f"{total} lines in the access log")
    assert len(lines) == total
    # %D straight from the raw lines (the last field, microseconds), without the parser.
    logged_us = [int(re.search(rb" (\d+)$", line).group(1)) for line in lines]
    records = build_parser(f"logformat:{LOGFORMAT}").parse(lines)

    sinks = {}
    for protocol, endpoint in (("grpc", rotel.grpc_endpoint), ("http/protobuf", rotel.http_endpoint)):
        service = f"apache-{protocol.split('/')[0]}"
        settings = resolve_metrics_settings(
            {"otlp_endpoint": endpoint, "otlp_protocol": protocol, "service_name": service},
            {},
            hostname="test",
        )
        sinks[service] = AccessMetricsSink(settings, export_interval_s=0.5)

    async def feed() -> None:
        for sink in sinks.values():
            await sink.start()
            # Two batches, so the totals are cumulative across sends.
            await sink.send(records[:5])
            await sink.send(records[5:])
        for sink in sinks.values():
            await sink.close()  # the final export

    asyncio.run(feed())

    for service, sink in sinks.items():
        assert sink.stats.failed_exports == 0, service
        assert sink.stats.exports >= 1, service

        def complete(service: str = service) -> Any:
            latest = metrics_witness.latest_points(service)
            counted = sum(point.as_int for (name, _), (_, point) in latest.items() if name == REQUESTS_METRIC)
            return latest if counted >= total else None

        latest = wait_for(
            complete, timeout=15, message=f"{total} requests counted at the witness for {service}"
        )
        counts = {}
        durations = []
        for (name, attributes), (metric, point) in latest.items():
            attrs = dict(attributes)
            key = (attrs["http.request.method"], attrs["http.response.status_code"], attrs["http.route"])
            assert attrs[STATUS_CLASS] == f"{attrs['http.response.status_code'] // 100}xx"
            if name == REQUESTS_METRIC:
                assert metric.unit == "{request}"
                assert metric.sum.is_monotonic
                counts[key] = point.as_int
            elif name == DURATION_METRIC:
                assert metric.unit == "s"
                assert list(point.explicit_bounds) == list(DURATION_BUCKETS)
                assert sum(point.bucket_counts) == point.count
                durations.append((key, point.count, point.sum))
        assert counts == dict(sent), service
        assert sum(count for _, count, _ in durations) == total
        assert sum(s for _, _, s in durations) == pytest.approx(sum(logged_us) / 1e6, rel=1e-9, abs=1e-9)
        assert {key: count for key, count, _ in durations} == dict(sent)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_totals_lost_during_a_collector_outage_arrive_with_the_next_export(
    protocol: str, rotel: RotelCollector, metrics_witness: MetricsWitness, caplog: pytest.LogCaptureFixture
) -> None:
    from logsidecar import events
    from logsidecar.events import Event
    from logsidecar.record import LogRecord

    seen: list[tuple[Event, dict[str, Any]]] = []
    unsubscribe = events.subscribe(lambda event, fields: seen.append((event, fields)))
    endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
    settings = resolve_metrics_settings(
        {"otlp_endpoint": endpoint, "otlp_protocol": protocol, "otlp_timeout": 1.0, "service_name": "outage"},
        {},
        hostname="test",
    )
    sink = AccessMetricsSink(settings, export_interval_s=0.3)

    def record(n: int) -> list[LogRecord]:
        attributes = {"http.request.method": "GET", "url.path": "/api/x", "http.response.status_code": 200}
        return [LogRecord(body="", attributes=dict(attributes)) for _ in range(n)]

    def counted() -> int:
        latest = metrics_witness.latest_points("outage")
        return sum(point.as_int for (name, _), (_, point) in latest.items() if name == REQUESTS_METRIC)

    async def scenario() -> None:
        await sink.start()
        await sink.send(record(5))
        await asyncio.to_thread(wait_for, lambda: counted() == 5, 15, message="5 requests before the outage")
        await asyncio.to_thread(rotel.stop)
        await sink.send(record(4))  # recorded while no collector listens
        await asyncio.to_thread(
            wait_for,
            lambda: sink.stats.failed_exports >= 1,
            15,
            message="an export failing during the outage",
        )
        assert counted() == 5
        await asyncio.to_thread(rotel.start)
        await asyncio.to_thread(wait_for, lambda: counted() >= 9, 20, message="9 requests after the outage")
        await sink.close()

    try:
        asyncio.run(scenario())
    finally:
        unsubscribe()
    assert counted() == 9
    mine = [(event, fields) for event, fields in seen if fields.get("sink") == "access_metrics"]
    retries = [fields for event, fields in mine if event is Event.SINK_RETRY]
    assert retries
    # The exporter's own words are in the event, and not a free-form line of their own.
    expected_words = "UNAVAILABLE" if protocol == "grpc" else "Failed to export metrics batch"
    assert expected_words in retries[0]["detail"]
    assert [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")] == []
    assert mine[-1][0] is Event.SINK_RECOVERED


def test_grpc_export_uses_the_logs_tls_and_header_settings(tmp_path: Path) -> None:
    """The user configures OTLP once: the CA file and headers given for the logs secure the metrics."""
    cert, key = self_signed_certificate(tmp_path)
    witness = MetricsWitness(tls=(cert.read_bytes(), key.read_bytes()), required_header=("x-token", "s3cret"))
    witness.start()
    try:
        flags = {
            "otlp_endpoint": witness.endpoint,  # https://127.0.0.1:port
            "otlp_ca_file": str(cert),
            "otlp_header": (("X-Token", "s3cret"),),
            "otlp_timeout": 2.0,
            "service_name": "tls",
        }
        sink = AccessMetricsSink(resolve_metrics_settings(flags, {}, hostname="test"), export_interval_s=60)
        attributes = {"http.request.method": "GET", "url.path": "/a", "http.response.status_code": 200}
        from logsidecar.record import LogRecord

        async def scenario() -> None:
            await sink.start()
            await sink.send([LogRecord(body="", attributes=dict(attributes)) for _ in range(3)])
            await sink.close()

        asyncio.run(scenario())
        assert (sink.stats.exports, sink.stats.failed_exports, witness.rejected) == (1, 0, 0)
        latest = witness.latest_points("tls")
        assert [point.as_int for (name, _), (_, point) in latest.items() if name == REQUESTS_METRIC] == [3]
    finally:
        witness.stop()


def test_a_quiet_server_does_not_report_the_metrics_backend_as_failing_until_data_is_held_back(
    rotel: RotelCollector,
) -> None:
    from logsidecar import events
    from logsidecar.events import Event
    from logsidecar.record import LogRecord

    retries: list[dict[str, Any]] = []
    unsubscribe = events.subscribe(
        lambda event, fields: retries.append(fields) if event is Event.SINK_RETRY else None
    )
    settings = resolve_metrics_settings(
        {"otlp_endpoint": rotel.grpc_endpoint, "otlp_timeout": 0.5, "service_name": "quiet"}, {}, hostname="t"
    )
    sink = AccessMetricsSink(settings, export_interval_s=3600)  # exports driven by hand below
    attributes = {"http.request.method": "GET", "url.path": "/", "http.response.status_code": 200}
    try:
        sink.record([LogRecord(body="", attributes=dict(attributes))])
        assert sink.export_now()
        rotel.stop()
        assert not sink.export_now()  # the same totals again: nothing held back
        assert (sink.stats.failed_exports, retries) == (1, [])
        sink.record([LogRecord(body="", attributes=dict(attributes))])
        assert not sink.export_now()  # now a request is held back
        assert sink.stats.failed_exports == 2
        assert [fields["sink"] for fields in retries] == ["access_metrics"]
    finally:
        unsubscribe()
        asyncio.run(sink.close())
