"""The hand-written OTLP encoder against the official opentelemetry-proto types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as ProtoLogRecord

from logsidecar import __version__
from logsidecar.encoding.otlp_wire import (
    LogsRequestEncoder,
    datetime_to_unix_nano,
    encode_any_value,
    encode_request,
)
from logsidecar.record import LogRecord, Severity

BASE = {"service.name": "apache-httpd", "host.name": "web-1"}
OBSERVED = datetime(2026, 11, 28, 2, 10, 0, 654321, tzinfo=UTC)


def decode(payload: bytes) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest.FromString(payload)


def reference_any(value: object) -> AnyValue:
    """The AnyValue built through the official API (what our bytes must equal)."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(reference_any(v) for v in value)
        return out
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=reference_any(v)) for k, v in value.items())
        return out
    return AnyValue(string_value=str(value))


@pytest.mark.parametrize(
    "value",
    [
        "GET",
        "",
        "ünïcödé ☃",
        0,
        200,
        -1,
        2**63 - 1,
        -(2**63),
        0.0,
        1.5,
        -2.25e-7,
        True,
        False,
        b"\x00\xff",
        ["a", "b"],
        [1, 2, 3],
        [1.5, 2.5],
        [True, False],
        {"k": "v", "n": 1},
    ],
)
def test_any_value_bytes_equal_the_official_encoding(value: object) -> None:
    assert AnyValue.FromString(encode_any_value(value)) == reference_any(value)


def test_int_outside_int64_becomes_its_decimal_string() -> None:
    assert AnyValue.FromString(encode_any_value(2**64)) == AnyValue(string_value=str(2**64))


def test_datetime_to_unix_nano_is_exact_to_the_microsecond_for_any_offset() -> None:
    plus_one = timezone(timedelta(hours=1))
    moment = datetime(2026, 11, 28, 3, 10, 0, 123456, tzinfo=plus_one)
    assert datetime_to_unix_nano(moment) == 1795831800_123456_000
    assert datetime_to_unix_nano(moment.astimezone(UTC)) == 1795831800_123456_000
    # A float conversion would get this wrong in the last digits.
    assert (
        datetime_to_unix_nano(datetime(2262, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)) % 1_000_000_000
        == 999_999_000
    )


def access_record(**overrides: object) -> LogRecord:
    record = LogRecord(
        body='192.0.2.1 - frank [28/Nov/2026:03:10:00 +0100] "GET /a?b=c HTTP/1.1" 200 2326 "-" "curl/8"',
        attributes={
            "client.address": "192.0.2.1",
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "http.response.body.size": 2326,
            "apache.request.duration_s": 0.0123,
            "logsidecar.truncated": True,
            "apache.list": ["x", "y"],
            "absent": None,
        },
        timestamp=datetime(2026, 11, 28, 3, 10, 0, tzinfo=timezone(timedelta(hours=1))),
        observed_timestamp=OBSERVED,
        severity_text="INFO",
        severity_number=Severity.INFO,
    )
    for key, value in overrides.items():
        setattr(record, key, value)
    return record


def test_record_fields_map_to_the_otlp_log_data_model() -> None:
    request = decode(encode_request([access_record()], BASE))
    [resource_logs] = request.resource_logs
    [scope_logs] = resource_logs.scope_logs
    [log] = scope_logs.log_records
    assert scope_logs.scope.name == "logsidecar"
    assert scope_logs.scope.version == __version__
    assert {kv.key: kv.value.string_value for kv in resource_logs.resource.attributes} == BASE
    expected = ProtoLogRecord(
        time_unix_nano=1795831800_000000_000,
        observed_time_unix_nano=datetime_to_unix_nano(OBSERVED),
        severity_number=9,
        severity_text="INFO",
        body=AnyValue(string_value=access_record().body),
        attributes=[
            KeyValue(key="client.address", value=AnyValue(string_value="192.0.2.1")),
            KeyValue(key="http.request.method", value=AnyValue(string_value="GET")),
            KeyValue(key="http.response.status_code", value=AnyValue(int_value=200)),
            KeyValue(key="http.response.body.size", value=AnyValue(int_value=2326)),
            KeyValue(key="apache.request.duration_s", value=AnyValue(double_value=0.0123)),
            KeyValue(key="logsidecar.truncated", value=AnyValue(bool_value=True)),
            KeyValue(key="apache.list", value=reference_any(["x", "y"])),
        ],
    )
    assert log == expected


def test_record_without_time_or_severity_has_zero_time_and_no_severity_text() -> None:
    record = LogRecord(
        body="garbage", attributes={"logsidecar.parse_error": "no match"}, observed_timestamp=OBSERVED
    )
    [log] = decode(encode_request([record], BASE)).resource_logs[0].scope_logs[0].log_records
    assert log.time_unix_nano == 0
    assert log.severity_number == 0
    assert log.severity_text == ""
    assert log.observed_time_unix_nano == datetime_to_unix_nano(OBSERVED)
    assert log.body.string_value == "garbage"


def test_missing_observed_time_is_filled_with_encode_time() -> None:
    record = LogRecord(body="x")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    [log] = decode(encode_request([record], BASE, now=now)).resource_logs[0].scope_logs[0].log_records
    assert log.observed_time_unix_nano == datetime_to_unix_nano(now)


def test_cached_attribute_keeps_its_type_when_values_compare_equal() -> None:
    encoder = LogsRequestEncoder(BASE)
    records = [
        LogRecord(body=str(i), attributes={"v": value}) for i, value in enumerate([1, True, 1.0, "1", 1])
    ]
    logs = decode(encoder.encode(records)).resource_logs[0].scope_logs[0].log_records
    kinds = [(log.attributes[0].value.WhichOneof("value")) for log in logs]
    assert kinds == ["int_value", "bool_value", "double_value", "string_value", "int_value"]


def test_records_are_grouped_by_resource_content_keeping_order() -> None:
    shared_a = {"container.id": "a"}
    same_as_a = {"container.id": "a"}  # another dict, same content: same ResourceLogs
    b = {"container.id": "b", "service.name": "front"}
    records = [
        LogRecord(body="1", resource=shared_a),
        LogRecord(body="2", resource=b),
        LogRecord(body="3", resource=same_as_a),
        LogRecord(body="4"),
        LogRecord(body="5", resource=shared_a),
    ]
    request = decode(encode_request(records, BASE))
    groups = [
        (
            {kv.key: kv.value.string_value for kv in rl.resource.attributes},
            [log.body.string_value for sl in rl.scope_logs for log in sl.log_records],
        )
        for rl in request.resource_logs
    ]
    assert groups == [
        ({**BASE, "container.id": "a"}, ["1", "3", "5"]),
        ({"service.name": "front", "host.name": "web-1", "container.id": "b"}, ["2"]),
        (BASE, ["4"]),
    ]


def test_unhashable_and_odd_attribute_values_never_raise() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd!"

    record = LogRecord(body="x", attributes={"list": [1, None, 2], "dict": {"a": [1]}, "odd": Odd()})
    [log] = decode(encode_request([record, record], BASE)).resource_logs[0].scope_logs[0].log_records[:1]
    values = {kv.key: kv.value for kv in log.attributes}
    assert [v.int_value for v in values["list"].array_value.values] == [1, 2]
    assert values["odd"].string_value == "odd!"
    assert values["dict"].kvlist_value.values[0].key == "a"


def test_long_body_and_many_records_round_trip() -> None:
    body = "x" * 70_000  # length varint beyond the small-varint table
    records = [
        LogRecord(body=body if i == 0 else f"line {i}", observed_timestamp=OBSERVED) for i in range(5000)
    ]
    logs = decode(encode_request(records, BASE)).resource_logs[0].scope_logs[0].log_records
    assert [log.body.string_value for log in logs] == [r.body for r in records]


def test_attribute_caches_stay_correct_when_values_are_unique_or_repeat() -> None:
    encoder = LogsRequestEncoder(BASE)
    records = [
        LogRecord(
            body=str(i),
            attributes={
                "log.record.uid": f"{i:032x}",  # never repeats: the key stops being cached
                "http.request.method": ("GET", "POST")[i % 2],  # repeats: stays cached
                "url.path": f"/p/{i % 5000}",  # fills the cache, repeats enough to be refilled
                "long": "v" * 300 + str(i % 3),  # beyond the flat one-byte-length path
            },
        )
        for i in range(20_000)
    ]
    logs = []
    for begin in range(0, len(records), 2048):
        logs.extend(
            decode(encoder.encode(records[begin : begin + 2048])).resource_logs[0].scope_logs[0].log_records
        )
    assert len(logs) == len(records)
    for record, log in zip(records, logs, strict=True):
        assert {kv.key: kv.value.string_value for kv in log.attributes} == record.attributes
