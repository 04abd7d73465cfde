"""Access-log parsing: golden records for every directive and preset, Apache escaping, `-`,
IPv6, malformed and non-UTF-8 lines, and the one-record-per-line property."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logsidecar.parse import build_parser
from logsidecar.parse.access import PRESETS, compile_logformat, preset_parser
from logsidecar.parse.base import FormatError
from logsidecar.record import LogRecord, Severity, encode_json
from tests.support.paths import BENCHMARKS

sys.path.insert(0, str(BENCHMARKS))
from generate_logs import generate_lines  # noqa: E402

T0 = datetime(2000, 10, 10, 13, 55, 36, tzinfo=timezone(timedelta(hours=-7)))
CLF = "[10/Oct/2000:13:55:36 -0700]"


def parse_one(fmt: str, line: str | bytes, name: str = "logformat") -> LogRecord:
    parser = preset_parser(fmt) if fmt in PRESETS else compile_logformat(fmt, format_name=name)
    raw = line.encode() if isinstance(line, str) else line
    (record,) = parser.parse([raw])
    return record


def attrs(record: LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.attributes.items() if k != "logsidecar.format"}


# --- presets -------------------------------------------------------------------------------------


def test_combined_line_becomes_a_typed_record() -> None:
    line = (
        f'127.0.0.1 - frank {CLF} "GET /apache_pb.gif?a=1&b=2 HTTP/1.0" 200 2326 '
        '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
    )
    record = parse_one("combined", line)
    assert record.body == line
    assert record.timestamp == T0
    assert record.timestamp.utcoffset() == timedelta(hours=-7)
    assert (record.severity_text, record.severity_number) == ("INFO", Severity.INFO)
    assert record.attributes == {
        "logsidecar.format": "combined",
        "client.address": "127.0.0.1",
        "user.name": "frank",
        "http.request.method": "GET",
        "url.original": "/apache_pb.gif?a=1&b=2",
        "url.path": "/apache_pb.gif",
        "url.query": "a=1&b=2",
        "network.protocol.name": "http",
        "network.protocol.version": "1.0",
        "http.response.status_code": 200,
        "http.response.body.size": 2326,
        "http.request.header.referer": "http://www.example.com/start.html",
        "user_agent.original": "Mozilla/4.08 [en] (Win98; I ;Nav)",
    }
    assert record.observed_timestamp is not None and record.observed_timestamp.tzinfo is not None


PRESET_CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "common",
        f'192.0.2.7 ident alice {CLF} "POST /login HTTP/1.1" 302 -',
        {
            "client.address": "192.0.2.7", "apache.remote_logname": "ident", "user.name": "alice",
            "http.request.method": "POST", "url.original": "/login", "url.path": "/login",
            "network.protocol.name": "http", "network.protocol.version": "1.1",
            "http.response.status_code": 302,
        },
    ),
    (
        "vhost_combined",
        f'www.example.com:443 2001:db8::1 - - {CLF} "GET / HTTP/2.0" 200 5120 "-" "curl/8.5.0"',
        {
            "server.address": "www.example.com", "server.port": 443, "client.address": "2001:db8::1",
            "http.request.method": "GET", "url.original": "/", "url.path": "/",
            "network.protocol.name": "http", "network.protocol.version": "2.0",
            "http.response.status_code": 200, "apache.bytes_sent": 5120, "user_agent.original": "curl/8.5.0",
        },
    ),
    (
        "combinedio",
        f'::1 - - {CLF} "HEAD /x HTTP/1.1" 404 - "https://r.example/" "ua" 412 198',
        {
            "client.address": "::1", "http.request.method": "HEAD", "url.original": "/x", "url.path": "/x",
            "network.protocol.name": "http", "network.protocol.version": "1.1",
            "http.response.status_code": 404, "http.request.header.referer": "https://r.example/",
            "user_agent.original": "ua", "apache.bytes_received": 412, "apache.bytes_sent": 198,
        },
    ),
    (
        "referer",
        "https://www.google.com/search?q=x -> /index.html",
        {"http.request.header.referer": "https://www.google.com/search?q=x", "url.path": "/index.html",
         "url.original": "/index.html"},
    ),
    ("agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101", {"user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101"}),
]  # fmt: skip


@pytest.mark.parametrize(("preset", "line", "expected"), PRESET_CASES, ids=[c[0] for c in PRESET_CASES])
def test_preset_golden_records(preset: str, line: str, expected: dict[str, Any]) -> None:
    record = parse_one(preset, line)
    assert attrs(record) == expected
    assert record.attributes["logsidecar.format"] == preset
    assert "logsidecar.parse_error" not in record.attributes


def test_build_parser_knows_every_preset_and_logformat_spec() -> None:
    for name in PRESETS:
        assert build_parser(name).format_name == name
    parser = build_parser('logformat:%h "%r"')
    (record,) = parser.parse([b'::1 "GET / HTTP/1.1"'])
    assert record.attributes["url.path"] == "/"
    assert record.attributes["logsidecar.format"] == "logformat"


def test_unknown_preset_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="unknown access-log preset 'fancy'"):
        preset_parser("fancy")


# --- every directive -----------------------------------------------------------------------------

DIRECTIVE_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("%a", "203.0.113.9", {"client.address": "203.0.113.9"}),
    ("%{c}a", "10.0.0.1", {"network.peer.address": "10.0.0.1"}),
    ("%a %{c}a", "203.0.113.9 ::1", {"client.address": "203.0.113.9", "network.peer.address": "::1"}),
    ("%A", "192.0.2.1", {"network.local.address": "192.0.2.1"}),
    ("%b", "-", {}),
    ("%b", "0", {"http.response.body.size": 0}),
    ("%B", "1234", {"http.response.body.size": 1234}),
    ("%{session}C", "abc123", {"apache.cookie.session": "abc123"}),
    ("%D", "1500", {"http.server.request.duration": 0.0015}),
    ("%T", "2", {"http.server.request.duration": 2.0}),
    ("%{ms}T", "250", {"http.server.request.duration": 0.25}),
    ("%{us}T", "250", {"http.server.request.duration": 0.00025}),
    ("%{s}T", "3", {"http.server.request.duration": 3.0}),
    ("%T %D", "0 1500", {"http.server.request.duration": 0.0015}),
    ("%{UNIQUE_ID}e", "YbX3", {"apache.env.UNIQUE_ID": "YbX3"}),
    ("%f", "/var/www/html/index.html", {"apache.filename": "/var/www/html/index.html"}),
    ("%h", "client.example.org", {"client.address": "client.example.org"}),
    ("%h %a", "host.example 192.0.2.5", {"apache.remote_host": "host.example", "client.address": "192.0.2.5"}),
    ("%{c}h", "peer.example", {"apache.peer_host": "peer.example"}),
    ("%H", "HTTP/1.1", {"network.protocol.name": "http", "network.protocol.version": "1.1"}),
    ('"%{X-Forwarded-For}i"', '"198.51.100.1, 10.0.0.2"', {"http.request.header.x-forwarded-for": "198.51.100.1, 10.0.0.2"}),
    ("%k", "3", {"apache.keepalive_requests": 3}),
    ("%l", "-", {}),
    ("%L", "YbX3kH8AAQEAAB2C@AAAAAE", {"apache.request_log_id": "YbX3kH8AAQEAAB2C@AAAAAE"}),
    ("%m", "PROPFIND", {"http.request.method": "PROPFIND"}),
    ("%{ratio}n", "42", {"apache.note.ratio": "42"}),
    ('"%{Content-Type}o"', '"text/html; charset=utf-8"', {"http.response.header.content-type": "text/html; charset=utf-8"}),
    ("%p", "8443", {"server.port": 8443}),
    ("%{canonical}p", "80", {"server.port": 80}),
    ("%{local}p", "8080", {"network.local.port": 8080}),
    ("%{remote}p", "51514", {"client.port": 51514}),
    ("%P", "4242", {"process.pid": 4242}),
    ("%{pid}P", "4242", {"process.pid": 4242}),
    ("%{tid}P", "140234", {"thread.id": 140234}),
    ("%{hextid}P", "7f3a", {"thread.id": 0x7F3A}),
    # mod_ssl writes its values unescaped: a DN's backslashes are part of the value.
    ('"%{SSL_CLIENT_S_DN}x"', '"CN=Doe\\, John,O=A\\\\B"', {"apache.ssl.SSL_CLIENT_S_DN": "CN=Doe\\, John,O=A\\\\B"}),
    ("%{TID}P", "140234", {"thread.id": 140234}),
    ("%{HEXTID}P", "140234", {"thread.id": 140234}),  # httpd: hex only when the 'h' is lowercase
    ("%{MS}T", "12", {"http.server.request.duration": 0.012}),
    ("%{Remote}p", "51514", {"client.port": 51514}),
    ("%D", "-1500", {"http.server.request.duration": -0.0015}),  # the wall clock stepped back
    ("%^FB", "1234", {"apache.time_to_first_byte": 0.001234}),
    ("%^FB", "-", {}),
    ('%h %l %u %t "%r" %>s %b', '1.2.3.4 - john doe [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5',
     {"client.address": "1.2.3.4", "user.name": "john doe", "http.request.method": "GET", "url.original": "/",
      "url.path": "/", "network.protocol.name": "http", "network.protocol.version": "1.1",
      "http.response.status_code": 200, "http.response.body.size": 5}),
    # httpd writes an empty user name as `""`; a user named `""` is `\"\"`.
    ('%u "%u"', '"" """"', {"user.name": ""}),
    ('%u', '\\"\\"', {"user.name": '""'}),
    # Any directive whose status condition is not met is written as `-`.
    ("%!200t %>s", "- 200", {"http.response.status_code": 200}),
    ("%404{%Y-%m-%d}t %>s", "- 200", {"http.response.status_code": 200}),
    ("%U%404q %>s", "/a- 200", {"url.path": "/a", "url.original": "/a", "http.response.status_code": 200}),
    ('%400r %>s', "- 200", {"http.response.status_code": 200}),
    ("%U%q", "/search?q=x", {"url.path": "/search", "url.query": "q=x", "url.original": "/search?q=x"}),
    ("%U%q", "/search", {"url.path": "/search", "url.original": "/search"}),
    ('"%r"', '"GET /a?b HTTP/1.1"', {"http.request.method": "GET", "url.original": "/a?b", "url.path": "/a",
                                     "url.query": "b", "network.protocol.name": "http", "network.protocol.version": "1.1"}),
    ('"%r"', '"GET /"', {"http.request.method": "GET", "url.original": "/", "url.path": "/"}),
    ('"%r"', '"-"', {}),
    ('"%r"', '"GET"', {"apache.request_line": "GET"}),
    ('"%r"', '"\\x16\\x03\\x01\\x00\\xa5"', {"apache.request_line": "\x16\x03\x01\x00\ufffd", "logsidecar.invalid_utf8": True}),
    ('"%r"', '"GET /has space HTTP/1.1"', {"apache.request_line": "GET /has space HTTP/1.1"}),
    # httpd cuts a refused request line after its second space: `b?x` is no protocol.
    ('"%r"', '"GET /a b?x"', {"apache.request_line": "GET /a b?x"}),
    ('"%r"', '"GET / HTTP/1.1\\x00"', {"apache.request_line": "GET / HTTP/1.1\x00"}),
    ('"%r" %U', '"GET /a HTTP/1.1" /index.php', {"http.request.method": "GET", "url.original": "/a", "url.path": "/a",
                                                 "network.protocol.name": "http", "network.protocol.version": "1.1",
                                                 "apache.url_path": "/index.php"}),
    ("%R", "proxy-server", {"apache.handler": "proxy-server"}),
    ("%s", "200", {"http.response.status_code": 200}),
    ("%<s", "200", {"http.response.status_code": 200}),
    ("%s %>s", "200 404", {"apache.original_status_code": 200, "http.response.status_code": 404}),
    ("%>s", "-", {}),
    ("%u", "bob", {"user.name": "bob"}),
    ("%v", "www.example.com", {"server.address": "www.example.com"}),
    ("%V", "alias.example.com", {"server.address": "alias.example.com"}),
    ("%v %V", "www.example.com alias.example.com", {"server.address": "www.example.com", "apache.server_name": "alias.example.com"}),
    ("%X", "+", {"apache.connection_status": "+"}),
    ("%X", "X", {"apache.connection_status": "X"}),
    ("%X", "-", {"apache.connection_status": "-"}),  # "closed after the response": a value
    ("%404X", "-", {}),  # the status condition not met
    ("%I %O %S", "512 2048 2560", {"apache.bytes_received": 512, "apache.bytes_sent": 2048, "apache.bytes_transferred": 2560}),
    ("%{Grpc-Status}^to", "0", {"apache.response_trailer.grpc-status": "0"}),
    ("%{X-Checksum}^ti", "abc", {"apache.request_trailer.x-checksum": "abc"}),
    ("100%% %>s", "100% 204", {"http.response.status_code": 204}),
    ("%{SSL_PROTOCOL}x %{SSL_CIPHER}x", "TLSv1.3 TLS_AES_256_GCM_SHA384",
     {"apache.ssl.SSL_PROTOCOL": "TLSv1.3", "tls.cipher": "TLS_AES_256_GCM_SHA384"}),
    ("%{version}c %{cipher}c", "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256",
     {"apache.ssl.version": "TLSv1.2", "tls.cipher": "ECDHE-RSA-AES128-GCM-SHA256"}),
    ('"%400,501{User-agent}i"', '"-"', {}),
    ('"%400,501{User-agent}i"', '"curl/8"', {"user_agent.original": "curl/8"}),
    ('"%!200,304{Referer}i"', '"https://a.example/"', {"http.request.header.referer": "https://a.example/"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fmt", "line", "expected"), DIRECTIVE_CASES, ids=[f"{c[0]}|{c[1]}" for c in DIRECTIVE_CASES]
)
def test_directive_golden_attributes(fmt: str, line: str, expected: dict[str, Any]) -> None:
    record = parse_one(fmt, line)
    assert "logsidecar.parse_error" not in record.attributes, record.attributes
    assert attrs(record) == expected


@pytest.mark.parametrize(
    ("fmt", "line", "expected"),
    [
        ("%t", CLF, T0),
        (
            "%t",
            "[01/Jan/2024:00:00:00 +0530]",
            datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        ("%{sec}t", "1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("%{msec}t", "1700000000123", datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
        ("%{usec}t", "1700000000123456", datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)),
        ("%{begin:sec}t", "1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (
            "[%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t]",
            "[10/Oct/2000 13:55:36.042 -0700]",
            T0.replace(microsecond=42000),
        ),
        (
            "%{%Y-%m-%dT%H:%M:%S}t.%{usec_frac}t",
            "2024-02-29T23:59:59.000007",
            datetime(2024, 2, 29, 23, 59, 59, 7, tzinfo=UTC),
        ),
        ("%{end:sec}t", "1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        # httpd writes the CLF time for all of these (`end`: when the request ended).
        *[
            (
                f"%{{{arg}}}t",
                "[10/Oct/2000:13:55:36 -0700]",
                datetime(2000, 10, 10, 13, 55, 36, tzinfo=timezone(timedelta(hours=-7))),
            )
            for arg in ("", "begin", "end", "begin:", "end:")
        ],
        (
            "%!200t",
            "[10/Oct/2000:13:55:36 -0700]",
            datetime(2000, 10, 10, 13, 55, 36, tzinfo=timezone(timedelta(hours=-7))),
        ),
        ("%200{begin:msec}t", "1700000000123", datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
        ("%{%s}t", "1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (
            "%{begin:sec}t %{end:sec}t",
            "1700000000 1700000009",
            datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        ),
        ("%>s", "200", None),
    ],
)
def test_record_timestamp_comes_from_time_directives(fmt: str, line: str, expected: datetime | None) -> None:
    record = parse_one(fmt, line)
    assert "logsidecar.parse_error" not in record.attributes
    assert record.timestamp == expected
    if expected is not None:
        assert record.timestamp is not None and record.timestamp.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    ("fmt", "line", "reason", "original"),
    [
        ("%t %>s", "[30/Feb/2024:10:00:00 +0000] 200", "invalid time in %t", "30/Feb/2024:10:00:00 +0000"),
        ("%t %>s", "[10/Oct/2000:24:00:00 +0000] 200", "invalid time in %t", "10/Oct/2000:24:00:00 +0000"),
        ("%t %>s", "[10/Oct/2000:13:55:36] 200", "invalid time in %t", "10/Oct/2000:13:55:36"),
        ("%t %>s", "[10/Oct/2000:13:55:36 +2500] 200", "invalid time in %t", "10/Oct/2000:13:55:36 +2500"),
        ("%t %>s", "[10/Oct/2000:13:55:36 0700] 200", "invalid time in %t", "10/Oct/2000:13:55:36 0700"),
        ("%t %>s", "[99/Foo/2000:13:55:36 -0700] 200", "invalid time in %t", "99/Foo/2000:13:55:36 -0700"),
        ("%{%Y-%m-%dT%H:%M:%S}t %>s", "2024-02-30T10:00:00 200", "invalid time in %{%Y-%m-%dT%H:%M:%S}t",
         "2024-02-30T10:00:00"),
        ("%{%d/%b/%Y %T}t.%{msec_frac}t %>s", "31/Apr/2024 10:00:00.123 200",
         "invalid time in %{%d/%b/%Y %T}t %{msec_frac}t", "31/Apr/2024 10:00:00 123"),
    ],
)  # fmt: skip
def test_a_time_that_is_not_a_real_instant_is_flagged_and_kept(
    fmt: str, line: str, reason: str, original: str
) -> None:
    record = compile_logformat(fmt).parse([line.encode()])[0]
    assert record.timestamp is None
    assert record.attributes["logsidecar.parse_error"] == f"{reason}: not a real instant"
    assert record.attributes["apache.time.original"] == original
    assert record.attributes["http.response.status_code"] == 200  # the rest of the line is kept
    assert record.body == line


def test_a_bad_time_in_a_combined_line_keeps_every_other_field() -> None:
    line = b'1.2.3.4 - bob [31/Jun/2024:10:00:00 +0200] "GET /a?b=c HTTP/1.1" 503 7 "-" "agent"'
    record = preset_parser("combined").parse([line])[0]
    assert record.timestamp is None
    assert record.attributes["apache.time.original"] == "31/Jun/2024:10:00:00 +0200"
    assert record.attributes["logsidecar.parse_error"] == "invalid time in %t: not a real instant"
    assert (record.severity_text, record.attributes["url.query"], record.attributes["user.name"]) == (
        "ERROR", "b=c", "bob",
    )  # fmt: skip


def test_a_time_left_out_by_a_status_condition_is_absent_not_flagged() -> None:
    record = compile_logformat("%!200t %>s").parse([b"- 200"])[0]
    assert record.timestamp is None
    assert "logsidecar.parse_error" not in record.attributes
    assert "apache.time.original" not in record.attributes


def test_debian_ssl_request_log_line_parses() -> None:
    record = parse_one(
        'CustomLog ${APACHE_LOG_DIR}/ssl_request.log "%t %h %{SSL_PROTOCOL}x %{SSL_CIPHER}x \\"%r\\" %b"',
        f'{CLF} 192.0.2.4 TLSv1.3 TLS_AES_128_GCM_SHA256 "GET /secure HTTP/1.1" 1043',
    )
    assert record.timestamp == T0
    assert attrs(record) == {
        "client.address": "192.0.2.4", "apache.ssl.SSL_PROTOCOL": "TLSv1.3", "tls.cipher": "TLS_AES_128_GCM_SHA256",
        "http.request.method": "GET", "url.original": "/secure", "url.path": "/secure",
        "network.protocol.name": "http", "network.protocol.version": "1.1", "http.response.body.size": 1043,
    }  # fmt: skip


def test_same_time_string_is_parsed_once_and_shared() -> None:
    parser = preset_parser("common")
    line = f'::1 - - {CLF} "GET / HTTP/1.1" 200 1'.encode()
    first, second = parser.parse([line, line])
    assert first.timestamp is second.timestamp


@pytest.mark.parametrize(
    ("status", "severity_text", "severity_number"),
    [("200", "INFO", 9), ("304", "INFO", 9), ("101", "INFO", 9), ("404", "WARN", 13), ("499", "WARN", 13),
     ("500", "ERROR", 17), ("503", "ERROR", 17), ("-", "INFO", 9)],
)  # fmt: skip
def test_severity_follows_the_final_status_class(
    status: str, severity_text: str, severity_number: int
) -> None:
    record = parse_one("%s %>s", f"200 {status}")
    assert (record.severity_text, record.severity_number) == (severity_text, severity_number)


# --- escaping and bytes --------------------------------------------------------------------------

ESCAPE_CASES = [
    (r'"Mozilla \"quoted\" agent"', 'Mozilla "quoted" agent', False),
    (r'"back\\slash"', "back\\slash", False),
    (r'"tab\there\nnewline\r\v\b"', "tab\there\nnewline\r\v\b", False),
    (r'"caf\xc3\xa9"', "café", False),
    (r'"\xff\xfe raw"', "\ufffd\ufffd raw", True),
    (r'"\\x41 is not a byte"', "\\x41 is not a byte", False),
    (r'"unknown \q escape"', "unknown \\q escape", False),
]


@pytest.mark.parametrize(("field", "value", "invalid"), ESCAPE_CASES)
def test_apache_escapes_in_headers_are_decoded_faithfully(field: str, value: str, invalid: bool) -> None:
    record = parse_one('"%{User-Agent}i"', field)
    assert record.attributes["user_agent.original"] == value
    assert record.attributes.get("logsidecar.invalid_utf8", False) is invalid
    assert record.body == field


def test_escaped_request_target_is_decoded() -> None:
    record = parse_one('"%r"', r'"GET /caf\xc3\xa9?q=\"x\" HTTP/1.1"')
    assert record.attributes["url.original"] == '/café?q="x"'
    assert record.attributes["url.path"] == "/café"
    assert record.attributes["url.query"] == 'q="x"'


def test_raw_non_utf8_bytes_stay_hex_escapes_in_the_body_and_become_u_fffd_in_values() -> None:
    line = b'::1 - - [10/Oct/2000:13:55:36 -0700] "GET /\xff HTTP/1.1" 200 5 "-" "agent \xe9"'
    parser = preset_parser("combined")
    good = f'::1 - - {CLF} "GET / HTTP/1.1" 200 5 "-" "ok"'.encode()
    records = parser.parse([good, line, good])
    record = records[1]
    assert record.body == '::1 - - [10/Oct/2000:13:55:36 -0700] "GET /\\xff HTTP/1.1" 200 5 "-" "agent \\xe9"'
    assert record.attributes["logsidecar.invalid_utf8"] is True
    assert record.attributes["url.path"] == "/\ufffd"
    assert record.attributes["user_agent.original"] == "agent \ufffd"
    assert "logsidecar.invalid_utf8" not in records[0].attributes
    assert "logsidecar.invalid_utf8" not in records[2].attributes
    encode_json(record)  # stays encodable


def test_unescaped_quotes_from_third_party_logs_parse_leniently() -> None:
    line = f'1.2.3.4 - - {CLF} "GET / HTTP/1.1" 200 10 "https://r.example/?q="x"" "Mozilla "Evil" Agent"'
    record = parse_one("combined", line)
    assert "logsidecar.parse_error" not in record.attributes
    assert record.attributes["http.request.header.referer"] == 'https://r.example/?q="x"'
    assert record.attributes["user_agent.original"] == 'Mozilla "Evil" Agent'
    assert record.attributes["http.response.status_code"] == 200


def test_dash_everywhere_means_absent_never_zero() -> None:
    fmt = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D %I %O %k %X %L'
    record = parse_one(fmt, f'::1 - - {CLF} "-" - - "-" "-" - - - - - -')
    assert "logsidecar.parse_error" not in record.attributes
    # %X's `-` is a value ("closed after the response"), not an absence.
    assert attrs(record) == {"client.address": "::1", "apache.connection_status": "-"}
    assert record.timestamp == T0


@pytest.mark.parametrize(
    "address",
    ["::1", "2001:db8::8a2e:370:7334", "fe80::1%eth0", "::ffff:192.0.2.1", "192.0.2.1", "localhost"],
)
def test_ipv4_ipv6_and_hostnames_are_client_addresses(address: str) -> None:
    record = parse_one("common", f'{address} - - {CLF} "GET / HTTP/1.1" 200 1')
    assert record.attributes["client.address"] == address


# --- lines that do not match ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty line"),
        ("garbage", "does not match LogFormat at field 2 (%l)"),
        (f'::1 - - {CLF} "GET / HTTP/1.1" abc 1', "does not match LogFormat at field 6 (%>s)"),
        (f'::1 - - {CLF} "GET / HTTP/1.1" 200 12x', "does not match LogFormat at field 7 (%b)"),
        ("::1 - - [10/Oct/2000:13:55:36 -0700", "does not match LogFormat at field 4 (%t)"),
        (f'::1 - - {CLF} "GET / HTTP/1.1" 200 1 trailing', "does not match LogFormat at field 7 (%b)"),
    ],
)
def test_unmatched_line_keeps_raw_body_and_names_the_failing_field(line: str, reason: str) -> None:
    record = parse_one("common", line)
    assert record.body == line
    assert record.attributes == {"logsidecar.format": "common", "logsidecar.parse_error": reason}
    assert record.timestamp is None
    assert record.severity_number == Severity.UNSPECIFIED
    assert record.severity_text is None


def test_bad_line_in_a_batch_does_not_disturb_its_neighbours() -> None:
    parser = preset_parser("combined")
    lines = list(generate_lines("combined", 50, seed=7))
    lines.insert(10, b"not an access log line")
    lines.insert(20, b"")
    lines.insert(30, b"with\nnewline")
    records = parser.parse(lines)
    assert [r.body for r in records] == [line.decode("utf-8", "backslashreplace") for line in lines]
    failed = [i for i, r in enumerate(records) if "logsidecar.parse_error" in r.attributes]
    assert failed == [10, 20, 30]


def test_unbalanced_quote_line_does_not_swallow_the_next_line() -> None:
    parser = preset_parser("combined")
    good = f'::1 - - {CLF} "GET /ok HTTP/1.1" 200 1 "-" "ua"'.encode()
    broken = f'::1 - - {CLF} "GET /broken HTTP/1.1 200 1 "-" "ua'.encode()
    records = parser.parse([good, broken, good, good])
    assert [r.attributes.get("url.path") for r in records] == ["/ok", None, "/ok", "/ok"]
    assert "logsidecar.parse_error" in records[1].attributes


_MUTATIONS = [b"", b"x", b'"', b'\\"', b"\\", b" ", b"\xff", b"\x22", b"\t", b"\r"]


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    edits=st.lists(
        st.tuples(st.integers(0, 29), st.integers(0, 400), st.sampled_from(_MUTATIONS)), max_size=8
    ),
)
def test_a_batch_parses_exactly_like_its_lines_one_by_one(
    seed: int, edits: list[tuple[int, int, bytes]]
) -> None:
    lines = list(generate_lines("combined", 30, seed=seed))
    for index, offset, insert in edits:
        line = lines[index]
        lines[index] = line[:offset] + insert + line[offset:]
    parser = preset_parser("combined")
    batch = parser.parse(lines)
    # The strict line-by-line path (used when a batch cannot be framed) must agree too.
    strict = parser._parse_each(lines, batch[0].observed_timestamp)
    for line, record, strict_record in zip(lines, batch, strict, strict=True):
        (alone,) = parser.parse([line])
        expected = (alone.body, alone.attributes, alone.timestamp, alone.severity_number)
        assert (record.body, record.attributes, record.timestamp, record.severity_number) == expected
        assert (strict_record.body, strict_record.attributes, strict_record.timestamp,
                strict_record.severity_number) == expected  # fmt: skip


def test_generated_logs_parse_without_errors() -> None:
    for fmt in ("common", "combined", "vhost_combined"):
        parser = preset_parser(fmt)
        lines = list(generate_lines(fmt, 3000, seed=3))
        records = parser.parse(lines)
        assert len(records) == len(lines)
        errors = [r.body for r in records if "logsidecar.parse_error" in r.attributes]
        assert errors == []
        assert all(r.timestamp is not None for r in records)


def test_observed_timestamp_is_one_value_per_batch() -> None:
    records = preset_parser("agent").parse([b"a", b"b", b"c"])
    assert len({id(r.observed_timestamp) for r in records}) == 1


def test_empty_batch_gives_no_records() -> None:
    assert preset_parser("combined").parse([]) == []


# --- properties ----------------------------------------------------------------------------------

_PARSERS = [preset_parser(name) for name in ("common", "combined", "agent")] + [
    compile_logformat("%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t %U%q %D"),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.binary(max_size=300), max_size=12), which=st.integers(0, len(_PARSERS) - 1))
def test_any_bytes_in_gives_exactly_one_record_per_line(lines: list[bytes], which: int) -> None:
    records = _PARSERS[which].parse(lines)
    assert len(records) == len(lines)
    for line, record in zip(lines, records, strict=True):
        assert record.body == line.decode("utf-8", "backslashreplace")
        encode_json(record)


_field = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(referer=_field, agent=_field, user=st.from_regex(r"[A-Za-z0-9._@-]{1,12}", fullmatch=True))
def test_values_escaped_like_httpd_round_trip(referer: str, agent: str, user: str) -> None:
    def escape(value: str) -> str:  # ap_escape_logitem
        out = []
        for byte in value.encode():
            ch = chr(byte)
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch in "\b\n\r\t\v":
                out.append({"\b": "\\b", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
            elif byte < 0x20 or byte >= 0x7F:
                out.append(f"\\x{byte:02x}")
            else:
                out.append(ch)
        return "".join(out)

    line = f'::1 - {user} {CLF} "GET / HTTP/1.1" 200 1 "{escape(referer)}" "{escape(agent)}"'
    record = parse_one("combined", line)
    assert "logsidecar.parse_error" not in record.attributes
    assert record.attributes.get("http.request.header.referer", "-") == (referer or "")
    assert record.attributes.get("user_agent.original", "-") == (agent or "")
    assert record.attributes.get("user.name", "-") == user


def test_adjacent_free_text_fields_give_the_later_field_the_text() -> None:
    record = parse_one('%{X}i%{Y}i "%r"', 'ab "GET / HTTP/1.1"')
    assert record.attributes["http.request.header.y"] == "ab"
    assert record.attributes["url.path"] == "/"


@pytest.mark.parametrize(
    "line",
    [
        b'::1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "' + b"\\" * 50_000,
        b'::1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "' + b'a" "' * 5_000 + b"x",
        b'" ' * 50_000,
    ],
    ids=["backslashes", "many-quoted-fields", "quote-space"],
)
def test_long_hostile_lines_are_reported_not_choked_on(line: bytes) -> None:
    (record,) = preset_parser("combined").parse([line])
    assert record.attributes["logsidecar.parse_error"].startswith("does not match LogFormat")
    assert record.body == line.decode()


@pytest.mark.parametrize("preset", ["common", "combined", "vhost_combined", "combinedio", "referer", "agent"])
def test_fast_batch_fields_never_backtrack_across_a_newline(preset):
    # A batch field that may cross a newline scans the rest of the batch from every line that does
    # not match: garbage lines then cost O(batch) each (vhost_combined's `%v:` did: ~600 lines/s).
    import re as _re

    from logsidecar.parse import build_parser as _build

    pattern = _build(preset)._batch_regex.pattern
    # Possessive classes (`*+`, `++`) never backtrack; the others must stay within their line.
    for negated, possessive in _re.findall(r"\[\^((?:\\.|[^\]])*)\][*+](\+?)", pattern):
        assert possessive or "\\n" in negated, f"[^{negated}] in {pattern}"


# --- hostile numbers (issue 13) ------------------------------------------------------------------

HUGE = "9" * 25  # beyond 64 bits


@pytest.mark.parametrize(
    ("directive", "key"),
    [
        ("%b", "http.response.body.size"), ("%B", "http.response.body.size"), ("%I", "apache.bytes_received"),
        ("%O", "apache.bytes_sent"), ("%S", "apache.bytes_transferred"), ("%k", "apache.keepalive_requests"),
        ("%D", "http.server.request.duration"), ("%T", "http.server.request.duration"),
        ("%{ms}T", "http.server.request.duration"), ("%^FB", "apache.time_to_first_byte"),
        ("%{remote}p", "client.port"), ("%P", "process.pid"), ("%{tid}P", "thread.id"),
    ],
)  # fmt: skip
def test_integers_beyond_64_bits_stay_text_on_every_path(directive: str, key: str) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from logsidecar.encoding.otlp_wire import LogsRequestEncoder
    from logsidecar.fastpath import JSON_LINES, OTLP_RECORDS, writer_for
    from logsidecar.stamp import BatchStamp, uid_prefix

    for value in (HUGE, "-" + HUGE):
        if value[0] == "-" and "duration" not in key and "first_byte" not in key:  # only durations are signed
            continue
        line = f"{value} x".encode()
        record = parse_one(f"{directive} %m", line)
        assert record.attributes[key] == value, record.attributes
        parser = compile_logformat(f"{directive} %m")
        stamp = BatchStamp("k", "/l", uid_prefix("k"), [len(line)], (), {})
        otlp, unparsed = writer_for(parser, OTLP_RECORDS)([line], stamp)
        assert unparsed == 0
        request = ExportLogsServiceRequest.FromString(LogsRequestEncoder({}).encode_records(otlp, {}))
        [sent] = request.resource_logs[0].scope_logs[0].log_records
        assert {kv.key: kv.value.string_value for kv in sent.attributes}[key] == value
        json_lines, _ = writer_for(parser, JSON_LINES)([line], stamp)
        assert f'"{key}":"{value}"'.encode() in json_lines


@pytest.mark.parametrize("digit", ["\uff17", "\u0667"])
def test_non_ascii_digits_are_not_numbers(digit: str) -> None:
    record = parse_one('%h %l %u %t "%r" %>s %b', f'::1 - - {CLF} "GET / HTTP/1.1" 20{digit} 1{digit}')
    assert "logsidecar.parse_error" in record.attributes
    assert parse_one("%t", f"[1{digit}/Oct/2000:13:55:36 -0700]").timestamp is None
