"""The direct OTLP path (`fastpath/otlp_dialect.py`) against its definition.

For every batch, `encode_otlp_records(lines, stamp)` of a parser must be, element by element and byte
for byte, `encoding.otlp_wire.encode_otlp_records` of `parse(lines)` stamped with `stamp.apply`, apart
from the observed time (one `utcnow()` per batch on each path: the last 8 bytes of every record, the
fixed64 after tag 0x59), and the unparsed counts must be equal. Checked with hypothesis over presets
and custom LogFormats (realistic lines, mutated lines: escapes, control bytes, invalid UTF-8, values
whose protobuf lengths need 2-3 byte varints, integers beyond 64 bits ...), through `auto` over
sequences of batches, and as the request the OTLP sink builds, decoded with the official
`opentelemetry-proto` types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from logsidecar.encoding.otlp_wire import LogsRequestEncoder, encode_otlp_records
from logsidecar.fastpath import OTLP_RECORDS, writer_for
from logsidecar.fastpath.otlp_dialect import otlp_encoder_for
from logsidecar.parse.access import PRESETS, preset_parser
from logsidecar.parse.detect import AutoParser
from logsidecar.record import PARSE_ERROR
from logsidecar.sinks.base import OtlpLogRecords
from logsidecar.stamp import BatchStamp, uid_prefix
from tests.support import direct_cases

# --- formats, realistic lines, parsers ---------------------------------------------------------------

PRESET_NAMES = ("common", "combined", "vhost_combined", "combinedio")
FORMATS = [PRESETS[name] for name in PRESET_NAMES] + [
    direct_cases.XFF_FORMAT,
    direct_cases.ISO_FORMAT,
    direct_cases.HEXTID_FORMAT,
    direct_cases.NO_STATUS_FORMAT,
    direct_cases.UNQUOTED_REQUEST_FORMAT,
    direct_cases.USER_CONN_FORMAT,
]
FORMAT_IDS = [*PRESET_NAMES, "xff", "iso_time", "hextid", "no_status", "unquoted_request", "user_conn"]
REALISTIC = {fmt: direct_cases.realistic_lines(fmt, 120) for fmt in FORMATS}

# Parsers live across examples (their caches fill and evict as in a long run); the paths share none.
DIRECT_PARSERS = {fmt: direct_cases.parser_for(fmt) for fmt in FORMATS}
RECORD_PARSERS = {fmt: direct_cases.parser_for(fmt) for fmt in FORMATS}

# --- mutations, batches, direct_cases.stamps ----------------------------------------------------------------------

INSERTS = [
    b'"', b'\\"', b"\\", b"\\x41", b"\\xe9", b"\\xff", b"\\n",
    b"\x00", b"\x01", b"\t", b"\x1b[31m", b"\x7f", b"\r",
    b"\xff", b"\xc3", b"\xed\xa0\x80",
    "é".encode(), "日本語".encode(), "\U0001f600".encode(), "\u2028".encode(),
    b" ", b"-", b"[", b"]", b":",
]  # fmt: skip
LONG_VALUES = [
    b"a" * 119,
    b"b" * 120,
    b"c" * 121,
    b"d" * 130,
    "é".encode() * 70,
    b"e" * 16_390,
    b"f" * 17_000,
]
SIZES = [
    b"7", b"0", b"007", b"9" * 18, b"1" * 18, b"9" * 19, b"1" * 19, b"1" * 25, b"0" * 19 + b"5",
    "١٢٣".encode(), "１２".encode(), b"-", b"-1",
]  # fmt: skip
# Half valid UTF-8: invalid UTF-8 sends the whole batch the record way.
ARBITRARY_LINES = st.one_of(st.binary(max_size=60), st.text(max_size=40).map(str.encode)).filter(
    lambda b: b"\n" not in b
)


def _user_agent(length: int) -> bytes:
    base = b"Mozilla/5.0 (X11; Linux x86_64) "
    return (base * (length // len(base) + 1))[:length]


# Values whose protobuf lengths need 2-3 byte varints, in place of a quoted field.
QUOTED_VALUES = {
    "long": st.sampled_from(LONG_VALUES),
    "agent": st.sampled_from([119, 120, 121]).map(_user_agent),
}


def otlp_mutation(line: bytes) -> st.SearchStrategy[bytes]:
    """One insertion, long value, size replacement or structural change of `line`."""
    return direct_cases.mutated(line, {"insert": INSERTS}, SIZES, QUOTED_VALUES)


def otlp_batch_lines(pools: Sequence[Sequence[bytes]], max_lines: int = 20) -> st.SearchStrategy[list[bytes]]:
    return direct_cases.batch_lines(pools, otlp_mutation, ARBITRARY_LINES, max_lines)


PATHS = ["/var/log/apache2/access.log", '/logs/ü/acc"ess\\.log', "x", "/v/" + "p" * 130]
RESOURCES: list[dict[str, Any]] = [
    {"service.name": "apache-httpd", "host.name": "web-1"},
    {},
    {"k": 'é"\x01', "n": 3, "b": True},
]


def otlp_stamps(count: int) -> st.SearchStrategy[BatchStamp]:
    return direct_cases.stamps(count, PATHS, RESOURCES)


# --- comparison --------------------------------------------------------------------------------------

Outcome = tuple[list[bytes], int] | type[BaseException]


def record_path(parser: Any, lines: Sequence[bytes], stamp: BatchStamp) -> tuple[list[bytes], int]:
    """The definition: parse, stamp, encode each record."""
    records, unparsed = direct_cases.stamped_records(parser, lines, stamp)
    return encode_otlp_records(records), unparsed


def observed_times(records: Sequence[bytes]) -> set[bytes]:
    for record in records:
        assert record[-9:-8] == b"\x59", record[-12:]
    return {record[-8:] for record in records}


def assert_same_records(direct: Outcome, ordinary: Outcome, lines: int) -> None:
    assert isinstance(direct, tuple), direct
    assert isinstance(ordinary, tuple), ordinary
    (records, unparsed), (expected, expected_unparsed) = direct, ordinary
    assert len(records) == len(expected) == lines
    for index, (got, want) in enumerate(zip(records, expected, strict=True)):
        assert got[:-8] == want[:-8], index
    assert unparsed == expected_unparsed
    # One observed time per batch on each path.
    assert len(observed_times(records)) <= 1
    assert len(observed_times(expected)) <= 1


def direct_path(parser: Any, lines: Sequence[bytes], stamp: BatchStamp) -> tuple[list[bytes], int]:
    return writer_for(parser, OTLP_RECORDS)(lines, stamp)


OTLP = direct_cases.DirectEncoding(direct_path, record_path, otlp_stamps, assert_same_records)


# --- 1. access parsers: direct records equal parse+stamp+encode ----------------------------------------


def test_realistic_lines_parse_without_errors_so_the_fast_path_is_exercised() -> None:
    direct_cases.assert_every_line_parses(REALISTIC)


def test_every_tested_format_has_a_direct_otlp_writer() -> None:
    assert all(otlp_encoder_for(direct_cases.parser_for(fmt)) is not None for fmt in FORMATS)


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
@direct_cases.batch_property
def test_access_direct_otlp_records_equal_parse_stamp_encode(fmt: str, data: st.DataObject) -> None:
    direct_cases.assert_paths_agree(
        data, otlp_batch_lines([REALISTIC[fmt]]), DIRECT_PARSERS[fmt], RECORD_PARSERS[fmt], OTLP
    )


def _stamp(
    count: int, resource: dict[str, Any] | None = None, truncated: set[int] | None = None
) -> BatchStamp:
    ends = [2**33 + 100 * (i + 1) for i in range(count)]
    return BatchStamp(
        "k",
        PATHS[0],
        uid_prefix("k"),
        ends,
        truncated or set(),
        RESOURCES[0] if resource is None else resource,
    )


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
def test_access_direct_otlp_records_equal_parse_stamp_encode_on_a_large_clean_batch(fmt: str) -> None:
    lines = REALISTIC[fmt]
    direct = writer_for(direct_cases.parser_for(fmt), OTLP_RECORDS)(lines, _stamp(len(lines)))
    assert_same_records(
        direct, record_path(direct_cases.parser_for(fmt), lines, _stamp(len(lines))), len(lines)
    )
    assert direct[1] == 0


COMBINED = PRESETS["combined"]
COMBINED_LINE = b'59.52.162.8 - - [14/Mar/2026:09:26:53 +0000] "GET /.env HTTP/1.1" 204 - "-" "-"'


def _with_agent(agent: bytes) -> bytes:
    return COMBINED_LINE[: COMBINED_LINE.rindex(b'"-"')] + b'"' + agent + b'"'


@pytest.mark.parametrize(
    "line",
    [
        _with_agent(_user_agent(119)),
        _with_agent(_user_agent(120)),
        _with_agent(_user_agent(121)),
        _with_agent(b"u" * 16_500),  # record and body lengths need 3-byte varints
        _with_agent("日本語".encode() * 50),
        _with_agent(b"curl\\x41 \\xc3\\xa9 \\\\ end"),  # escapes the fast regex accepts: unescaped
        _with_agent(b"tab\there \x01 \x1b[31m"),  # raw control bytes
        COMBINED_LINE.replace(b" 204 - ", b" 204 " + b"1" * 25 + b" "),
        COMBINED_LINE.replace(b" 204 - ", b" 204 " + b"9" * 19 + b" "),
        COMBINED_LINE.replace(b" 204 - ", b" 204 " + b"9" * 18 + b" "),
        COMBINED_LINE.replace(b" 204 - ", b" 204 0000000000000000000042 "),
        COMBINED_LINE.replace(b" 204 - ", " 204 ١٢٣ ".encode()),
        COMBINED_LINE + b"\r",
        b"",
    ],
    ids=[
        "ua119",
        "ua120",
        "ua121",
        "ua16k",
        "ua_utf8",
        "ua_escapes",
        "ua_controls",
        "size25",
        "size19",
        "size18",
        "zeros",
        "arabic",
        "cr",
        "empty",
    ],
)
@pytest.mark.parametrize("truncated", [set(), {1}, {0, 2}], ids=["whole", "cut_edge", "cut_others"])
def test_access_direct_otlp_record_of_an_edge_line_equals_parse_stamp_encode(
    line: bytes, truncated: set[int]
) -> None:
    lines = [COMBINED_LINE, line, COMBINED_LINE.replace(b"GET", b'G\\"ET')]
    stamp = _stamp(3, truncated=truncated)
    direct = writer_for(preset_parser("combined"), OTLP_RECORDS)(lines, stamp)
    assert_same_records(direct, record_path(preset_parser("combined"), lines, stamp), 3)


ESCAPED = direct_cases.escaped_lines()


@pytest.mark.parametrize(
    ("fmt", "line"), [(f, line) for f, _, line in ESCAPED], ids=[i for _, i, _ in ESCAPED]
)
def test_access_direct_otlp_record_of_a_line_with_escapes_equals_parse_stamp_encode(
    fmt: str, line: bytes
) -> None:
    """Each escape kind at each place of each escapable field, between clean lines."""
    lines = [*REALISTIC[fmt][:2], line, REALISTIC[fmt][2]]
    stamp = _stamp(len(lines))
    direct = direct_path(DIRECT_PARSERS[fmt], lines, stamp)
    assert_same_records(direct, record_path(RECORD_PARSERS[fmt], lines, stamp), len(lines))


def test_access_direct_otlp_records_of_a_format_without_status_have_the_default_severity() -> None:
    lines = REALISTIC[direct_cases.NO_STATUS_FORMAT][:5]
    direct, _ = writer_for(direct_cases.parser_for(direct_cases.NO_STATUS_FORMAT), OTLP_RECORDS)(
        lines, _stamp(5)
    )
    request = _decoded(LogsRequestEncoder({}).encode_records(direct, {}))
    logged = request.resource_logs[0].scope_logs[0].log_records
    assert [(r.severity_number, r.severity_text) for r in logged] == [(9, "INFO")] * 5


def test_access_direct_otlp_records_of_an_empty_batch_are_empty() -> None:
    assert writer_for(preset_parser("combined"), OTLP_RECORDS)([], _stamp(0)) == ([], 0)


# --- 2. the request the sink builds, decoded with the official types --------------------------------------

BASE_RESOURCE = {"service.name": "apache-httpd", "host.name": "test-host"}


def _decoded(data: bytes) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest.FromString(data)
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                record.observed_time_unix_nano = 0
    return request


def _attributes(record: Any) -> dict[str, tuple[str, Any]]:
    out = {}
    for kv in record.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = (kind, getattr(kv.value, kind))
    return out


def test_sink_request_of_direct_records_decodes_and_equals_the_request_of_stamped_records() -> None:
    lines = [
        *REALISTIC[COMBINED][:30],
        COMBINED_LINE.replace(b" 204 - ", b" 404 " + b"1" * 25 + b" "),
        COMBINED_LINE.replace(b" 204 - ", b" 500 1234 "),
        _with_agent(b"u" * 16_500),
        COMBINED_LINE,
        COMBINED_LINE.replace(b"GET", b'G\\"ET'),
        "garbage é".encode(),  # valid UTF-8: the batch takes the direct path
    ]
    resource = {"k8s.pod.name": "web-0"}
    stamp = _stamp(len(lines), resource, truncated={31})
    direct, unparsed = writer_for(preset_parser("combined"), OTLP_RECORDS)(lines, stamp)
    assert unparsed == 1
    records = preset_parser("combined").parse(lines)
    stamp.apply(records)
    sent = _decoded(LogsRequestEncoder(BASE_RESOURCE).encode_records(direct, resource))
    assert sent == _decoded(LogsRequestEncoder(BASE_RESOURCE).encode(records))

    [resource_logs] = sent.resource_logs
    assert {kv.key: kv.value.string_value for kv in resource_logs.resource.attributes} == {
        **BASE_RESOURCE,
        **resource,
    }
    [scope_logs] = resource_logs.scope_logs
    assert scope_logs.scope.name == "logsidecar"
    logged = scope_logs.log_records
    assert [r.body.string_value.encode() for r in logged] == lines
    big, server_error, long_agent = logged[30], logged[31], logged[32]
    attributes = _attributes(big)
    assert attributes["http.response.status_code"] == ("int_value", 404)
    assert attributes["http.response.body.size"] == ("string_value", "1" * 25)
    assert attributes["log.record.uid"] == ("string_value", uid_prefix("k") + f"{stamp.end_offsets[30]:016x}")
    assert big.severity_number == 13 and big.severity_text == "WARN"
    attributes = _attributes(server_error)
    assert attributes["http.response.status_code"] == ("int_value", 500)
    assert attributes["http.response.body.size"] == ("int_value", 1234)
    assert attributes["logsidecar.truncated"] == ("bool_value", True)
    assert server_error.severity_number == 17 and server_error.severity_text == "ERROR"
    assert _attributes(long_agent)["user_agent.original"] == ("string_value", "u" * 16_500)
    plain = logged[33]
    assert plain.time_unix_nano == 1_773_480_413 * 10**9  # 14/Mar/2026:09:26:53 +0000
    assert plain.severity_number == 9 and plain.severity_text == "INFO"
    assert _attributes(plain)["http.response.status_code"] == ("int_value", 204)
    assert "http.response.body.size" not in _attributes(plain)  # "-"
    assert PARSE_ERROR in _attributes(logged[-1])


# --- 3. auto, over sequences of batches ---------------------------------------------------------------------


def _json_lines() -> list[bytes]:
    out = [
        orjson.dumps({"message": line.decode(), "status": 200 + n, "level": "info"})
        for n, line in enumerate(direct_cases.generate_lines("combined", 30, seed=11))
    ]
    return [*out, b'{"msg": "unterminated', b"{}", b"[1, 2]"]


AUTO_POOLS = [
    list(direct_cases.generate_lines("combined", 100, seed=3)),
    list(direct_cases.generate_lines("common", 50, seed=4)),
    list(direct_cases.generate_lines("error", 50, seed=6)),
    _json_lines(),
    [b"garbage", b"\xff\xfe", b"- - -", b"[not a time] x"],
]


@direct_cases.PROPERTY
@given(data=st.data())
def test_auto_direct_otlp_records_equal_parse_stamp_encode_over_batch_sequences(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(direct_cases.AUTO_PARSER_PATHS))
    direct_auto, record_auto = AutoParser(path=path), AutoParser(path=path)
    for _ in range(data.draw(st.integers(1, 5), label="batches")):
        pools = direct_cases.draw_pools(data, AUTO_POOLS)
        direct_cases.assert_paths_agree(
            data, otlp_batch_lines(pools, max_lines=14), direct_auto, record_auto, OTLP
        )
        assert direct_auto.format_name == record_auto.format_name


# --- 4. OtlpLogRecords.merge -----------------------------------------------------------------------------------


def test_otlp_log_records_merge_keeps_order_and_leaves_its_inputs_alone() -> None:
    resource = {"service.name": "s"}
    first = OtlpLogRecords([b"a", b"b"], resource)
    second = OtlpLogRecords([b"c"], resource)
    third = OtlpLogRecords([b"d", b"e"], resource)
    merged = OtlpLogRecords.merge([first, second, third])
    assert merged.records == [b"a", b"b", b"c", b"d", b"e"]
    assert merged.count == 5
    assert merged.resource is resource
    assert first.records == [b"a", b"b"] and second.records == [b"c"]
    assert OtlpLogRecords.merge([second]) is second


def test_otlp_log_records_merge_refuses_batches_with_different_resources() -> None:
    with pytest.raises(ValueError, match="different resources"):
        OtlpLogRecords.merge([OtlpLogRecords([b"a"], {"n": 1}), OtlpLogRecords([b"b"], {"n": 2})])
