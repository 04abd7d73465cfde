"""Unit tests of the access-metrics sink: which records count, the attributes each data point gets
(method normalisation, status class, route prefix, caps), the histogram arithmetic, cumulative
totals, resources, the OTLP encoding of what `collect()` returns, and the metrics-side resolution
of the OTLP options. Records are built by hand (the sink's input contract is `LogRecord`
attributes) except where a real parser's output is the point (error-log lines)."""

from __future__ import annotations

import asyncio
import math
import os
from typing import Any

import pytest

from logsidecar.metrics.aggregate import (
    DURATION_BUCKETS,
    DURATION_METRIC,
    OTHER,
    REQUESTS_METRIC,
    STATUS_CLASS,
    normalize_method,
    route_prefix,
    status_class,
)
from logsidecar.metrics.sink import AccessMetricsSink
from logsidecar.parse import build_parser
from logsidecar.record import PARSE_ERROR, LogRecord
from logsidecar.settings.otel_env import resolve_metrics_settings
from logsidecar.sinks.otlp_settings import Compression, OtlpProtocol

RESOURCE = {"service.name": "apache-httpd", "host.name": "web-1"}


def access(
    method: str | None = "GET",
    path: str | None = "/",
    status: int | None = 200,
    duration: float | None = None,
    server: str | None = None,
    resource: dict[str, Any] | None = None,
) -> LogRecord:
    attributes: dict[str, Any] = {"logsidecar.format": "logformat"}
    if method is not None:
        attributes["http.request.method"] = method
    if path is not None:
        attributes["url.path"] = path
        attributes["url.original"] = path
    if status is not None:
        attributes["http.response.status_code"] = status
    if duration is not None:
        attributes["http.server.request.duration"] = duration
    if server is not None:
        attributes["server.address"] = server
    return LogRecord(body="line", attributes=attributes, resource=RESOURCE if resource is None else resource)


def points(sink: AccessMetricsSink, name: str) -> list[tuple[dict[str, Any], Any]]:
    """(attributes, data point) for every point of metric `name`, over all resources."""
    data = sink.collect()
    if data is None:
        return []
    out = []
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    out.extend((dict(point.attributes), point) for point in metric.data.data_points)
    return out


def request_counts(sink: AccessMetricsSink) -> dict[tuple[Any, ...], int]:
    return {
        (a["http.request.method"], a.get("http.response.status_code"), a.get("http.route")): p.value
        for a, p in points(sink, REQUESTS_METRIC)
    }


# --- pure derivations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "depth", "expected"),
    [
        ("/api/users/42", 1, "/api"),
        ("/api/users/42", 2, "/api/users"),
        ("/api/users/42", 5, "/api/users/42"),
        ("/api/", 1, "/api"),
        ("/", 1, "/"),
        ("/index.html", 1, "/index.html"),
        ("//api//users", 2, "/api/users"),
        ("http://example.com/api/users", 1, "/api"),
        ("http://example.com", 1, "/"),
        ("*", 1, OTHER),
        ("", 1, OTHER),
        ("garbage", 1, OTHER),
    ],
)
def test_route_prefix_is_the_first_segments_of_the_path(path: str, depth: int, expected: str) -> None:
    assert route_prefix(path, depth) == expected


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("GET", "GET"),
        ("POST", "POST"),
        ("CONNECT", "CONNECT"),
        ("PATCH", "PATCH"),
        ("TRACE", "TRACE"),
        ("get", OTHER),  # methods are case-sensitive: "get" is not GET
        ("PROPFIND", OTHER),
        (None, OTHER),
    ],
)
def test_unknown_methods_become_other(method: str | None, expected: str) -> None:
    assert normalize_method(method) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (100, "1xx"),
        (200, "2xx"),
        (304, "3xx"),
        (404, "4xx"),
        (599, "5xx"),
        (600, None),
        (99, None),
        (None, None),
    ],
)
def test_status_class_is_the_hundreds_of_the_status(status: int | None, expected: str | None) -> None:
    assert status_class(status) == expected


# --- data point attributes ------------------------------------------------------------------------


def test_each_request_is_counted_under_method_status_class_and_route() -> None:
    sink = AccessMetricsSink()
    sink.record(
        [access("GET", "/api/x", 200)] * 7
        + [access("GET", "/missing", 404)] * 3
        + [access("POST", "/api/y", 201)] * 2
        + [access("DELETE", "/api/x/1", 500)]
    )
    assert request_counts(sink) == {
        ("GET", 200, "/api"): 7,
        ("GET", 404, "/missing"): 3,
        ("POST", 201, "/api"): 2,
        ("DELETE", 500, "/api"): 1,
    }
    attributes = sorted((a for a, _ in points(sink, REQUESTS_METRIC)), key=str)
    assert {"http.request.method": "GET", "http.response.status_code": 404, STATUS_CLASS: "4xx",
            "http.route": "/missing"} in attributes  # fmt: skip
    assert all(set(a) == {"http.request.method", "http.response.status_code", STATUS_CLASS, "http.route"}
               for a in attributes)  # fmt: skip


def test_server_address_is_an_attribute_when_the_record_has_one() -> None:
    sink = AccessMetricsSink()
    sink.record([access(server="www.example.com"), access(server="www.example.com"), access()])
    got = {a.get("server.address"): p.value for a, p in points(sink, REQUESTS_METRIC)}
    assert got == {None: 1, "www.example.com": 2}


def test_route_depth_is_configurable() -> None:
    sink = AccessMetricsSink(route_depth=2)
    sink.record([access(path="/api/users/1"), access(path="/api/users/2"), access(path="/api/orders/1")])
    assert request_counts(sink) == {("GET", 200, "/api/users"): 2, ("GET", 200, "/api/orders"): 1}


def test_a_record_without_request_line_counts_as_other_method_without_route() -> None:
    # Apache's 408 for a connection that sent nothing: no method, no path, a status.
    sink = AccessMetricsSink()
    sink.record([access(method=None, path=None, status=408)])
    [(attributes, point)] = points(sink, REQUESTS_METRIC)
    assert attributes == {"http.request.method": OTHER, "http.response.status_code": 408, STATUS_CLASS: "4xx"}
    assert point.value == 1


def test_routes_beyond_the_cap_are_reported_as_other() -> None:
    sink = AccessMetricsSink(max_routes=2)
    sink.record([access(path="/a/1"), access(path="/b/1"), access(path="/c/1"), access(path="/d")])
    sink.record([access(path="/a/2"), access(path="/e")])  # an admitted route stays admitted
    assert request_counts(sink) == {
        ("GET", 200, "/a"): 2,
        ("GET", 200, "/b"): 1,
        ("GET", 200, OTHER): 3,
    }
    assert sink.routes.admitted == {"/a", "/b"}


def test_non_path_targets_do_not_use_up_a_route_slot() -> None:
    sink = AccessMetricsSink(max_routes=1)
    sink.record([access("OPTIONS", "*"), access(path="/a"), access(path="/b")])
    assert request_counts(sink) == {("OPTIONS", 200, OTHER): 1, ("GET", 200, "/a"): 1, ("GET", 200, OTHER): 1}


def test_server_addresses_beyond_the_cap_are_reported_as_other() -> None:
    sink = AccessMetricsSink(max_server_addresses=1)
    sink.record(
        [access(server="a.example"), access(server="evil-1.example"), access(server="evil-2.example")]
    )
    got = sorted((a["server.address"], p.value) for a, p in points(sink, REQUESTS_METRIC))
    assert got == [(OTHER, 2), ("a.example", 1)]


# --- which records count --------------------------------------------------------------------------


def test_error_log_and_unparsed_records_are_ignored() -> None:
    error_records = build_parser("error").parse(
        [
            b"[Sat Nov 28 02:00:00.123456 2026] [core:error] [pid 1:tid 2] [client 127.0.0.1:5555] "
            b"AH00128: File does not exist: /srv/www/missing",
            b"[Sat Nov 28 02:00:01.000000 2026] [mpm_event:notice] [pid 1:tid 2] AH00489: resuming",
        ]
    )
    raw_records = build_parser("raw").parse([b"not a log line at all"])
    unparsed = LogRecord(
        body="GET garbage",
        attributes={"logsidecar.format": "combined", PARSE_ERROR: "status: not a number"},
        resource=RESOURCE,
    )
    sink = AccessMetricsSink()
    sink.record([*error_records, *raw_records, unparsed])
    assert sink.collect() is None
    assert sink.stats.records_counted == 0

    sink.record([*error_records, access(), unparsed])
    assert request_counts(sink) == {("GET", 200, "/"): 1}


def test_odd_values_from_json_lines_do_not_break_the_batch() -> None:
    records = build_parser("json").parse(
        [
            b'{"http.request.method": ["GET"], "url.path": "/api/a", "http.server.request.duration": "slow"}',
            b'{"http.request.method": "GET", "url.path": ["/x"], "http.response.status_code": "200"}',
            b'{"http.request.method": ["GET"]}',
            b'{"http.request.method": "PUT", "url.path": "/api/b", "http.server.request.duration": 0.5}',
        ]
    )
    sink = AccessMetricsSink()
    sink.record(records)
    assert request_counts(sink) == {
        (OTHER, None, "/api"): 1,
        ("GET", None, None): 1,
        ("PUT", None, "/api"): 1,
    }
    [(attributes, point)] = points(sink, DURATION_METRIC)
    assert (attributes["http.request.method"], point.count, point.sum) == ("PUT", 1, 0.5)


# --- the histogram --------------------------------------------------------------------------------


def test_histogram_counts_sum_min_max_and_buckets_exactly() -> None:
    # Bucket i holds (bound[i-1], bound[i]]: a value equal to a bound belongs to that bound's bucket.
    durations = [0.001, 0.005, 0.0051, 0.1, 0.1, 0.3, 10.0, 10.5, 42.0]
    sink = AccessMetricsSink()
    sink.record([access(duration=d) for d in durations] + [access()])  # the last one: no %D
    [(attributes, point)] = points(sink, DURATION_METRIC)
    assert attributes["http.route"] == "/"
    assert point.count == 9
    assert point.sum == pytest.approx(sum(durations), rel=1e-12)
    assert (point.min, point.max) == (0.001, 42.0)
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    expected = [0] * (len(DURATION_BUCKETS) + 1)
    expected[0] = 2  # 0.001, 0.005
    expected[1] = 1  # 0.0051
    expected[5] = 2  # 0.1, 0.1
    expected[7] = 1  # 0.3
    expected[13] = 1  # 10.0
    expected[14] = 2  # 10.5, 42.0 (overflow bucket)
    assert list(point.bucket_counts) == expected
    assert request_counts(sink) == {("GET", 200, "/"): 10}


def test_histogram_is_absent_when_no_record_has_a_duration() -> None:
    sink = AccessMetricsSink()
    sink.record([access(), access(path="/x")])
    assert points(sink, DURATION_METRIC) == []
    assert sum(p.value for _, p in points(sink, REQUESTS_METRIC)) == 2


def test_nan_durations_are_left_out_of_the_histogram_but_the_request_counts() -> None:
    sink = AccessMetricsSink()
    sink.record([access(duration=math.nan), access(duration=0.2)])
    [(_, point)] = points(sink, DURATION_METRIC)
    assert (point.count, point.sum) == (1, 0.2)
    assert request_counts(sink) == {("GET", 200, "/"): 2}


def test_totals_are_cumulative_across_batches_and_collections() -> None:
    clock = iter(range(1_000, 10_000, 1_000))
    sink = AccessMetricsSink(clock_ns=lambda: next(clock))
    sink.record([access(path="/api/a", duration=0.01)] * 3)
    first = sink.collect()
    sink.record([access(path="/api/b", duration=0.02)] * 2 + [access(path="/other", duration=1.0)])
    assert request_counts(sink) == {("GET", 200, "/api"): 5, ("GET", 200, "/other"): 1}
    [point] = [p for a, p in points(sink, DURATION_METRIC) if a["http.route"] == "/api"]
    assert point.count == 5
    assert point.sum == pytest.approx(0.07)
    assert point.start_time_unix_nano == 1_000  # the sink's creation: cumulative temporality
    first_point = first.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    assert first_point.value == 3  # an earlier collection is a snapshot, not affected later


# --- resources ------------------------------------------------------------------------------------


def test_resource_is_the_logs_resource_and_records_with_other_resources_get_their_own() -> None:
    sink = AccessMetricsSink(resource={"service.name": "apache-httpd", "host.name": "sidecar"})
    container = {"service.name": "apache-httpd", "host.name": "sidecar", "container.name": "web-2"}
    sink.record([access(resource={}), access(resource={}), access(resource=container)])
    data = sink.collect()
    got = {
        tuple(sorted(rm.resource.attributes.items())): rm.scope_metrics[0]
        .metrics[0]
        .data.data_points[0]
        .value
        for rm in data.resource_metrics
    }
    assert got == {
        (("host.name", "sidecar"), ("service.name", "apache-httpd")): 2,
        (("container.name", "web-2"), ("host.name", "sidecar"), ("service.name", "apache-httpd")): 1,
    }
    scope = data.resource_metrics[0].scope_metrics[0].scope
    assert scope.name == "logsidecar.access_metrics"


# --- what goes on the wire ------------------------------------------------------------------------


def test_collected_data_encodes_to_an_otlp_metrics_request_with_semconv_names_and_units() -> None:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    sink = AccessMetricsSink(resource=RESOURCE)
    sink.record([access("GET", "/api/x", 200, duration=0.25)] * 2 + [access("HEAD", "/", 304)])
    request = encode_metrics(sink.collect())
    [resource_metrics] = request.resource_metrics
    metrics = {m.name: m for m in resource_metrics.scope_metrics[0].metrics}
    assert set(metrics) == {REQUESTS_METRIC, DURATION_METRIC}
    requests = metrics[REQUESTS_METRIC]
    assert requests.unit == "{request}"
    assert requests.sum.is_monotonic
    assert requests.sum.aggregation_temporality == 2  # AGGREGATION_TEMPORALITY_CUMULATIVE
    assert sorted(p.as_int for p in requests.sum.data_points) == [1, 2]
    duration = metrics[DURATION_METRIC]
    assert duration.unit == "s"
    [point] = duration.histogram.data_points
    assert (point.count, point.sum, list(point.explicit_bounds)) == (2, 0.5, list(DURATION_BUCKETS))
    status_attribute = {kv.key: kv.value for kv in point.attributes}["http.response.status_code"]
    assert status_attribute.int_value == 200  # an int on the wire, as the convention says


def test_sink_without_exporter_accepts_batches_and_closes() -> None:
    async def scenario() -> AccessMetricsSink:
        sink = AccessMetricsSink()
        await sink.start()
        await sink.send([access()])
        await sink.close()
        return sink

    sink = asyncio.run(scenario())
    assert sink.stats.records_counted == 1
    assert sink.stats.exports == 0


# --- configuration --------------------------------------------------------------------------------


def test_metrics_settings_reuse_the_logs_flags_with_the_metrics_http_path() -> None:
    flags = {
        "otlp_endpoint": "http://collector:4318",
        "otlp_protocol": "http/protobuf",
        "otlp_header": (("Authorization", "Bearer s3cret"),),
        "otlp_compression": "gzip",
        "otlp_timeout": 3.0,
        "service_name": "shop",
    }
    settings = resolve_metrics_settings(flags, {}, hostname="h1")
    assert settings.endpoint == "http://collector:4318/v1/metrics"
    assert settings.protocol is OtlpProtocol.HTTP_PROTOBUF
    assert settings.headers == {"authorization": "Bearer s3cret"}
    assert settings.compression is Compression.GZIP
    assert settings.timeout_s == 3.0
    assert settings.resource == {"service.name": "shop", "host.name": "h1"}


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        (
            {"otlp_endpoint": "http://c:4318/v1/logs", "otlp_protocol": "http/protobuf"},
            {},
            "http://c:4318/v1/metrics",
        ),
        (
            {"otlp_endpoint": "http://c:4318/custom", "otlp_protocol": "http/protobuf"},
            {},
            "http://c:4318/custom",
        ),
        (
            {"otlp_protocol": "http/protobuf"},
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318/"},
            "http://base:4318/v1/metrics",
        ),
        (
            {"otlp_protocol": "http/protobuf"},
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://l/v1/logs",
            },
            "http://base:4318/v1/metrics",
        ),
        (
            {"otlp_protocol": "http/protobuf"},
            {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:9000/ingest"},
            "http://m:9000/ingest",
        ),
        ({"otlp_endpoint": "http://c:4317"}, {}, "http://c:4317"),
        ({}, {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://m:4317"}, "https://m:4317"),
        ({}, {}, "http://localhost:4317"),
    ],
)
def test_metrics_endpoint_resolution(flags: dict[str, Any], environ: dict[str, str], expected: str) -> None:
    assert resolve_metrics_settings(flags, environ, hostname="h").endpoint == expected


def test_metrics_specific_environment_wins_and_logs_specific_is_ignored() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=generic",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-tenant=logs-only",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "1",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
    }
    settings = resolve_metrics_settings({}, environ, hostname="h")
    assert settings.headers == {"x-tenant": "generic"}
    assert settings.compression is Compression.GZIP
    assert settings.timeout_s == 2.5
    assert settings.protocol is OtlpProtocol.HTTP_PROTOBUF
    assert settings.endpoint == "http://localhost:4318/v1/metrics"


@pytest.mark.parametrize(
    ("protocol", "exporter_module", "endpoint"),
    [
        ("grpc", "opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "http://127.0.0.1:4317"),
        (
            "http/protobuf",
            "opentelemetry.exporter.otlp.proto.http.metric_exporter",
            "http://127.0.0.1:4318/v1/metrics",
        ),
    ],
)
def test_build_access_metrics_sink_takes_the_otlp_keywords_and_its_own(
    protocol: str, exporter_module: str, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from logsidecar.service.plan import build_access_metrics_sink

    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    base = "http://127.0.0.1:4317" if protocol == "grpc" else "http://127.0.0.1:4318"
    sink = build_access_metrics_sink(
        otlp_endpoint=base,
        otlp_protocol=protocol,
        otlp_batch_size=100,  # a logs-only option: accepted and ignored
        route_depth=2,
        export_interval_s=1.5,
        max_routes=7,
    )
    assert sink.settings is not None
    assert sink.settings.endpoint == endpoint
    assert (sink.route_depth, sink.export_interval_s, sink.routes.limit) == (2, 1.5, 7)
    assert type(sink._exporter).__module__ == exporter_module
    asyncio.run(sink.close())  # nothing recorded: nothing exported, the exporter shuts down
    assert sink.stats.exports == 0
