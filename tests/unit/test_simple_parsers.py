"""The json and raw parsers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsidecar.parse import build_parser
from logsidecar.parse.severity import severity_from_name
from logsidecar.parse.simple import JsonParser, RawParser, flatten_json_object, parse_json_time
from logsidecar.record import FORMAT, INVALID_UTF8, PARSE_ERROR, Severity


def test_json_object_becomes_attributes_time_and_severity():
    line = (
        b'{"time":"2024-01-02T03:04:05.678Z","level":"WARNING","msg":"slow","http":{"status":503,'
        b'"headers":{"x":"y"}},"tags":["a","b"],"spans":[{"id":1}],"gone":null,"ok":true,"ratio":0.5}'
    )
    [record] = JsonParser().parse([line])
    assert record.body == line.decode()
    assert record.timestamp == datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert record.severity_text == "WARNING"
    assert record.severity_number == Severity.WARN
    assert record.attributes == {
        FORMAT: "json",
        "msg": "slow",
        "http.status": 503,
        "http.headers.x": "y",
        "tags": ["a", "b"],
        "spans": '[{"id":1}]',
        "ok": True,
        "ratio": 0.5,
    }


@pytest.mark.parametrize("key", ["timestamp", "@timestamp", "time"])
def test_each_timestamp_key_is_recognised(key):
    [record] = JsonParser().parse([f'{{"{key}": "2020-05-06T07:08:09+02:00"}}'.encode()])
    assert record.timestamp == datetime(2020, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    assert key not in record.attributes


def test_unparsable_time_value_stays_an_attribute():
    [record] = JsonParser().parse([b'{"time": "yesterday", "level": 3}'])
    assert record.timestamp is None
    assert record.attributes == {FORMAT: "json", "time": "yesterday", "level": 3}
    assert record.severity_number == Severity.UNSPECIFIED


def test_naive_time_is_read_in_the_parser_zone():
    [record] = JsonParser(timezone=ZoneInfo("Europe/Paris")).parse([b'{"timestamp": "2024-07-01T12:00:00"}'])
    assert record.timestamp.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1700000000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (1700000000.5, datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)),
        (1700000000123, datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
        (1700000000123456, datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)),
        (1700000000123456000, datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)),
        (True, None),
        ([1], None),
        ("2024-13-01", None),
    ],
)
def test_json_time_values(value, expected):
    result = parse_json_time(value)
    if expected is None:
        assert result is None
    else:
        assert abs((result - expected).total_seconds()) < 1e-5


@pytest.mark.parametrize(
    ("line", "reason_start"),
    [
        (b"{bad", "invalid JSON"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'"text"', "JSON str, not an object"),
        (b"", "invalid JSON"),
        (b'{"a": "\xff"}', "invalid JSON"),
    ],
)
def test_invalid_json_is_forwarded_raw_and_flagged(line, reason_start):
    [record] = JsonParser().parse([line])
    assert record.body == line.decode("utf-8", "backslashreplace")
    assert record.attributes[PARSE_ERROR].startswith(reason_start)
    assert record.attributes[FORMAT] == "json"
    assert record.severity_number == Severity.UNSPECIFIED


def test_a_line_cannot_fake_our_own_flags():
    [record] = JsonParser().parse(
        [b'{"logsidecar.parse_error": "x", "logsidecar": {"format": "evil"}, "a": 1}']
    )
    assert record.attributes == {FORMAT: "json", "a": 1}


def test_flatten_nested_objects_with_dots():
    assert flatten_json_object({"a": {"b": {"c": 1}, "d": [1, 2]}, "e": [[1]]}) == {
        "a.b.c": 1,
        "a.d": [1, 2],
        "e": "[[1]]",
    }


@pytest.mark.parametrize(
    ("name", "severity"),
    [("error", 17), ("ERR", 17), ("Warning", 13), ("fatal", 21), ("trace", 1), ("debug", 5), ("what", 0)],
)
def test_common_level_names(name, severity):
    assert severity_from_name(name) == severity


def test_raw_parser_keeps_the_body_only():
    records = RawParser().parse([b"hello", b"", b"bad \xff"])
    assert [r.body for r in records] == ["hello", "", "bad \\xff"]
    assert [r.attributes for r in records] == [
        {FORMAT: "raw"},
        {FORMAT: "raw"},
        {FORMAT: "raw", INVALID_UTF8: True},
    ]
    assert all(r.severity_number == Severity.UNSPECIFIED and r.timestamp is None for r in records)
    assert len({r.observed_timestamp for r in records}) == 1


def test_build_parser_knows_json_and_raw():
    assert build_parser("json").format_name == "json"
    assert build_parser("raw").format_name == "raw"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.binary(max_size=100), st.just(b'{"a":'), st.just(b'{"time":1e308}')), max_size=20)
)
def test_any_bytes_give_exactly_one_json_record_per_line(lines):
    for parser in (JsonParser(), RawParser()):
        records = parser.parse(lines)
        assert [r.body for r in records] == [line.decode("utf-8", "backslashreplace") for line in lines]
