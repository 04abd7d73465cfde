"""Parsing against real Apache: every line a real apache2 writes parses, with the right fields.

One Apache instance (module scope) writes four access logs at once, `common`, `combined`,
`vhost_combined` and a custom LogFormat with `%D %L %{X-Forwarded-For}i %{...}t`, plus an error log
at `LogLevel trace8`. We send real requests over IPv4 and IPv6 loopback: quotes and backslashes in
headers, a query string, raw non-UTF-8 and raw UTF-8 bytes in the target, a 404, a 400 from a
malformed request line, a 408 with a `-` request line (a request line that never ends, cut by
`RequestReadTimeout`), a 6 KB URL, HEAD, POST with a body, HTTP/1.0. Apache is then stopped, so
the files are complete, and every line of every file goes through `build_parser(<spec>)`.

Expected values come from what we sent and what we received (the response bytes give the body
size and the bytes sent), never from the log line itself, so a parser that misreads a field fails.

About `%L`: mod_log_config documents it as "the request log ID from the error log (or '-' if
nothing has been logged to the error log for this request)". The ID is generated when an error
log entry is written for the request; at `trace8` every request gets some, so every served
request carries an ID. The default error log format does not print the ID, so it cannot be
matched to an error-log line here; we check it is present, well-formed and unique per request.
A second, small test shows the rule at LogLevel warn: `-` unless the request caused an error-log
entry, and with mod_unique_id the ID is the request's UNIQUE_ID.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from logsidecar.parse import build_parser
from logsidecar.record import INVALID_UTF8, PARSE_ERROR, LogRecord, Severity
from tests.support.apache import ApacheFactory, ApacheServer, CustomLog, find_apache_binary, status_of
from tests.support.helpers import line_count, read_lines, wait_for

pytestmark = [
    pytest.mark.apache,
    pytest.mark.skipif(find_apache_binary() is None, reason="the apache2 binary is not installed"),
]

CUSTOM_FORMAT = '%h %l %u %t "%r" %>s %b %D %L %{X-Forwarded-For}i %{%Y-%m-%dT%H:%M:%S}t'

# log file name → (CustomLog format as configured, parser spec)
ACCESS_LOGS: dict[str, tuple[str, str]] = {
    "common.log": ("common", "common"),
    "combined.log": ("combined", "combined"),
    "vhost_combined.log": ("vhost_combined", "vhost_combined"),
    "custom.log": (CUSTOM_FORMAT, "logformat:" + CUSTOM_FORMAT),
}

USER_AGENT = 'Mozilla/5.0 (X11) "quoted agent" back\\slash \\\\double'
REFERER = 'http://referer.test/a"b\\c?d=e'
FORWARDED_FOR = '203.0.113.7, "edge\\proxy"'
NOT_FOUND_PATH = "/missing-page.html"
LONG_QUERY = "case=long&pad=" + "0123456789abcdef" * 384  # 6 KB
POST_BODY = b"name=value&other=%22quoted%22"
INDEX_BODY = b"hello from apache\n"


@dataclass
class Sent:
    """One request we sent and what the logs must say about it."""

    name: str
    marker: bytes  # a substring that identifies its line in every access log
    status: int
    method: str | None
    path: str | None
    query: str | None
    protocol_version: str | None = "1.1"
    family: str = "ipv4"
    user_agent: str | None = None
    referer: str | None = None
    forwarded_for: str | None = None
    invalid_utf8: bool = False
    request_line: str | None = None  # kept whole when it is not METHOD TARGET PROTOCOL
    min_duration_s: float = 0.0
    response: bytes = b""

    @property
    def client_address(self) -> str:
        return "::1" if self.family == "ipv6" else "127.0.0.1"

    @property
    def body_size(self) -> int | None:
        """What %b logs: the body bytes sent, `-` (absent) when there were none."""
        if not self.response:
            return None
        body = self.response.split(b"\r\n\r\n", 1)[1]
        return len(body) or None


@dataclass
class Scenario:
    apache_port: int
    docroot: str
    log_dir: Path
    error_log: Path
    sent: list[Sent]
    started_at: datetime
    stopped_at: datetime


def _send_all(apache: ApacheServer) -> list[Sent]:
    v6 = "ipv6" if apache.ipv6 else "ipv4"
    headers = [("User-Agent", USER_AGENT), ("Referer", REFERER), ("X-Forwarded-For", FORWARDED_FOR)]
    sent: list[Sent] = []

    def request(spec: Sent, send: Callable[[], bytes]) -> None:
        spec.response = send()
        assert status_of(spec.response) == spec.status, (spec.name, spec.response[:200])
        sent.append(spec)

    # The 408s take RequestReadTimeout's second: start them first, in parallel with the rest.
    # A request line that never ends: no response at all, a `"-" 408 -` line, and a duration
    # near zero (Apache starts the request's clock only when it gives up on the line).
    line_timeout = Sent("line_timeout", b'"-" 408', 408, None, None, None, protocol_version=None)
    # A request line but headers that never end: a 408 response, the request line logged, and
    # the full second of waiting in %D.
    header_timeout = Sent(
        "header_timeout",
        b"case=slowheaders",
        408,
        "GET",
        "/index.html",
        "case=slowheaders",
        min_duration_s=0.9,
    )

    def send_unfinished_request_line() -> None:
        line_timeout.response = apache.send_raw(b"GET /never-finished")

    def send_unfinished_headers() -> None:
        header_timeout.response = apache.send_raw(
            b"GET /index.html?case=slowheaders HTTP/1.1\r\nHost: localhost\r\n"
        )

    slow = [
        threading.Thread(target=send_unfinished_request_line),
        threading.Thread(target=send_unfinished_headers),
    ]
    for thread in slow:
        thread.start()

    request(
        Sent(
            "query_v4",
            b"case=query",
            200,
            "GET",
            "/index.html",
            "case=query&q=a%20b%22c",
            user_agent=USER_AGENT,
            referer=REFERER,
            forwarded_for=FORWARDED_FOR,
        ),
        lambda: apache.request("GET", "/index.html?case=query&q=a%20b%22c", headers=headers),
    )
    request(
        Sent(
            "index_v6",
            b"case=ipv6",
            200,
            "GET",
            "/index.html",
            "case=ipv6",
            family=v6,
            user_agent="curl/8.5.0",
        ),
        lambda: apache.request(
            "GET", "/index.html?case=ipv6", headers=[("User-Agent", "curl/8.5.0")], family=v6
        ),
    )
    request(
        Sent("not_found", NOT_FOUND_PATH.encode(), 404, "GET", NOT_FOUND_PATH, None, referer=REFERER),
        lambda: apache.request("GET", NOT_FOUND_PATH, headers=[("Referer", REFERER)]),
    )
    request(
        Sent(
            "latin1_target",
            b"case=latin1",
            404,
            "GET",
            "/caf\ufffd.html",  # the logged \xe9 is no UTF-8: U+FFFD, and the record is flagged
            "case=latin1&n=\ufffd",
            invalid_utf8=True,
        ),
        lambda: apache.request("GET", b"/caf\xe9.html?case=latin1&n=\xff"),
    )
    request(
        Sent("utf8_target", b"case=utf8", 404, "GET", "/h\u00e9llo-\u4e16\u754c.html", "case=utf8"),
        lambda: apache.request("GET", "/h\u00e9llo-\u4e16\u754c.html?case=utf8".encode()),
    )
    request(
        Sent("head", b"HEAD /index.html?case=head", 200, "HEAD", "/index.html", "case=head"),
        lambda: apache.request("HEAD", "/index.html?case=head"),
    )
    request(
        Sent("post", b"case=post", 200, "POST", "/index.html", "case=post"),
        lambda: apache.request("POST", "/index.html?case=post", body=POST_BODY),
    )
    request(
        Sent("long_url", b"case=long", 200, "GET", "/index.html", LONG_QUERY),
        lambda: apache.request("GET", "/index.html?" + LONG_QUERY),
    )
    request(
        Sent("http10", b"case=http10", 200, "GET", "/index.html", "case=http10", protocol_version="1.0"),
        lambda: apache.send_raw(b"GET /index.html?case=http10 HTTP/1.0\r\n\r\n"),
    )
    request(
        Sent("garbage", b'"GARBAGE"', 400, None, None, None, protocol_version=None, request_line="GARBAGE"),
        lambda: apache.send_raw(b"GARBAGE\r\n\r\n"),
    )
    request(
        Sent("control_char", b"case=ctl", 400, "GET", "/ctl\x01", "case=ctl"),
        lambda: apache.send_raw(
            b"GET /ctl\x01?case=ctl HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % apache.port
        ),
    )
    for thread in slow:
        thread.join(timeout=30)
    assert line_timeout.response == b"", (
        "a request line that never ends gets no response, only a 408 log line"
    )
    assert status_of(header_timeout.response) == 408
    sent += [line_timeout, header_timeout]
    return sent


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp_path = tmp_path_factory.mktemp("apache-parsing")
    log_dir = tmp_path / "logs"
    apache = ApacheServer(
        tmp_path,
        custom_logs=[CustomLog(log_dir / name, fmt) for name, (fmt, _spec) in ACCESS_LOGS.items()],
        error_log=log_dir / "error.log",
        log_level="trace8",
        request_read_timeout="header=1 body=1",
    )
    started_at = datetime.now(UTC)
    apache.start()
    try:
        docroot = str(apache.docroot)
        port = apache.port
        sent = _send_all(apache)
        # Access lines are written after the response went out: wait for all of them.
        expected = len(sent)
        for name in ACCESS_LOGS:
            wait_for(
                partial(_has_lines, log_dir / name, expected),
                timeout=10,
                message=f"{expected} lines in {name}",
            )
    finally:
        apache.stop()
    yield Scenario(port, docroot, log_dir, log_dir / "error.log", sent, started_at, datetime.now(UTC))


def _has_lines(path: Path, count: int) -> bool:
    return line_count(path) >= count


def parse_file(path: Path, spec: str) -> list[LogRecord]:
    lines = read_lines(path)
    records = build_parser(spec).parse(lines)
    assert len(records) == len(lines)
    return records


def unparsed(records: list[LogRecord]) -> list[tuple[str, object]]:
    return [(r.body, r.attributes[PARSE_ERROR]) for r in records if PARSE_ERROR in r.attributes]


def record_for(records: list[LogRecord], sent: Sent) -> LogRecord:
    # Markers are ASCII; bodies keep non-UTF-8 bytes as \xhh text, so a text search works.
    marker = sent.marker.decode("ascii")
    matching = [r for r in records if marker in r.body]
    assert len(matching) == 1, f"{sent.name}: expected one line with {sent.marker!r}, got {len(matching)}"
    return matching[0]


# -- access logs -----------------------------------------------------------------------------


@pytest.mark.parametrize("log_name", list(ACCESS_LOGS))
def test_every_access_log_line_apache_wrote_parses(scenario: Scenario, log_name: str) -> None:
    records = parse_file(scenario.log_dir / log_name, ACCESS_LOGS[log_name][1])
    assert len(records) == len(scenario.sent)
    assert unparsed(records) == []


@pytest.mark.parametrize("log_name", list(ACCESS_LOGS))
def test_request_fields_match_what_was_sent(scenario: Scenario, log_name: str) -> None:
    records = parse_file(scenario.log_dir / log_name, ACCESS_LOGS[log_name][1])
    for sent in scenario.sent:
        attributes = record_for(records, sent).attributes
        context = f"{log_name} / {sent.name}: {attributes}"
        assert attributes.get("http.request.method") == sent.method, context
        assert attributes.get("url.path") == sent.path, context
        assert attributes.get("url.query") == sent.query, context
        assert attributes.get("network.protocol.version") == sent.protocol_version, context
        assert attributes.get("apache.request_line") == sent.request_line, context
        assert attributes["http.response.status_code"] == sent.status, context
        assert attributes["client.address"] == sent.client_address, context
        assert attributes.get(INVALID_UTF8, False) == sent.invalid_utf8, context
        assert "user.name" not in attributes and "apache.remote_logname" not in attributes, context


@pytest.mark.parametrize("log_name", ["common.log", "combined.log", "custom.log"])
def test_body_size_is_what_apache_sent_and_absent_for_dash(scenario: Scenario, log_name: str) -> None:
    records = parse_file(scenario.log_dir / log_name, ACCESS_LOGS[log_name][1])
    for sent in scenario.sent:
        attributes = record_for(records, sent).attributes
        assert attributes.get("http.response.body.size") == sent.body_size, (log_name, sent.name, attributes)
    head = next(s for s in scenario.sent if s.name == "head")
    assert head.body_size is None  # HEAD: %b writes '-', so the attribute is left out, not 0


@pytest.mark.parametrize("log_name", ["combined.log", "vhost_combined.log"])
def test_quoted_headers_decode_to_exactly_what_was_sent(scenario: Scenario, log_name: str) -> None:
    records = parse_file(scenario.log_dir / log_name, ACCESS_LOGS[log_name][1])
    for sent in scenario.sent:
        attributes = record_for(records, sent).attributes
        assert attributes.get("user_agent.original") == sent.user_agent, (log_name, sent.name)
        assert attributes.get("http.request.header.referer") == sent.referer, (log_name, sent.name)


def test_vhost_combined_carries_server_name_port_and_bytes_sent(scenario: Scenario) -> None:
    records = parse_file(scenario.log_dir / "vhost_combined.log", "vhost_combined")
    for sent in scenario.sent:
        attributes = record_for(records, sent).attributes
        assert attributes["server.address"] == "localhost", sent.name
        # %p is the canonical port: ServerName's, which the harness sets to the listening port.
        assert attributes["server.port"] == scenario.apache_port, sent.name
        # %O counts every byte written, headers included: exactly what we received.
        assert attributes.get("apache.bytes_sent") == len(sent.response), (sent.name, attributes)


def test_custom_format_duration_log_id_forwarded_for_and_strftime_time(scenario: Scenario) -> None:
    records = parse_file(scenario.log_dir / "custom.log", "logformat:" + CUSTOM_FORMAT)
    log_ids = []
    for sent in scenario.sent:
        record = record_for(records, sent)
        attributes = record.attributes
        duration = attributes["http.server.request.duration"]
        assert isinstance(duration, float), (sent.name, duration)
        assert sent.min_duration_s <= duration < 5.0, (sent.name, duration)
        assert attributes.get("http.request.header.x-forwarded-for") == sent.forwarded_for, (
            sent.name,
            attributes,
        )
        if sent.name != "line_timeout":
            log_id = attributes["apache.request_log_id"]
            assert re.fullmatch(r"[A-Za-z0-9+/@_-]{6,}", log_id), (sent.name, log_id)
            log_ids.append(log_id)
        _assert_time_plausible(record, scenario, whole_seconds=True)
    assert len(set(log_ids)) == len(log_ids), "request log ids must be unique per request"


def test_timeout_line_has_dash_request_line_and_no_size(scenario: Scenario) -> None:
    (line,) = [line for line in read_lines(scenario.log_dir / "common.log") if b'"-" 408' in line]
    assert line.endswith(b'"-" 408 -')
    record = build_parser("common").parse([line])[0]
    assert PARSE_ERROR not in record.attributes
    assert record.attributes["http.response.status_code"] == 408
    for absent in ("http.request.method", "url.path", "url.original", "http.response.body.size"):
        assert absent not in record.attributes, absent
    assert record.severity_number == Severity.WARN


@pytest.mark.parametrize("log_name", list(ACCESS_LOGS))
def test_access_times_are_offset_aware_and_plausible(scenario: Scenario, log_name: str) -> None:
    for record in parse_file(scenario.log_dir / log_name, ACCESS_LOGS[log_name][1]):
        _assert_time_plausible(record, scenario, whole_seconds=True)


def _assert_time_plausible(record: LogRecord, scenario: Scenario, whole_seconds: bool) -> None:
    timestamp = record.timestamp
    assert timestamp is not None and timestamp.tzinfo is not None, record.body
    # Apache runs with TZ=UTC (the harness pins it), so the offset written is +0000.
    assert timestamp.utcoffset() == timedelta(0), record.body
    earliest = scenario.started_at - timedelta(seconds=1 if whole_seconds else 0)
    assert earliest <= timestamp <= scenario.stopped_at, (record.body, timestamp)


def test_access_severity_follows_the_status_class(scenario: Scenario) -> None:
    records = parse_file(scenario.log_dir / "combined.log", "combined")
    expected = {2: Severity.INFO, 4: Severity.WARN}
    for sent in scenario.sent:
        assert record_for(records, sent).severity_number == expected[sent.status // 100], sent.name


# -- error log ---------------------------------------------------------------------------------

_LEVEL_IN_LINE = re.compile(rb"^\[[^\]]+\] \[([A-Za-z0-9_]*):([a-z0-9]+)\]")


def test_every_error_log_line_at_trace8_parses_with_severity_and_time(scenario: Scenario) -> None:
    lines = read_lines(scenario.error_log)
    records = build_parser("error").parse(lines)
    assert len(records) == len(lines) > 50
    assert unparsed(records) == []
    levels_seen = set()
    for line, record in zip(lines, records, strict=True):
        match = _LEVEL_IN_LINE.match(line)
        assert match, line
        module, level = match.group(1).decode(), match.group(2).decode()
        levels_seen.add(level)
        assert record.severity_text == level, line
        assert record.attributes.get("apache.module", "") == module, line
        _assert_time_plausible(record, scenario, whole_seconds=False)
        assert record.timestamp is not None and record.timestamp.utcoffset() == timedelta(0)
        if level.startswith("trace"):
            assert Severity.TRACE <= record.severity_number <= Severity.TRACE4, line
        else:
            expected = {
                "debug": Severity.DEBUG,
                "info": Severity.INFO,
                "warn": Severity.WARN,
                "error": Severity.ERROR,
            }.get(level)
            if expected is not None:
                assert record.severity_number == expected, line
            if level == "notice":
                assert Severity.INFO <= record.severity_number <= Severity.INFO4, line
    # A trace8 log of these requests really holds these levels (checked, not assumed).
    assert {"notice", "info", "debug", "trace3", "trace4", "trace5", "trace6", "trace8"} <= levels_seen


def test_trace_levels_keep_their_order(scenario: Scenario) -> None:
    records = build_parser("error").parse(read_lines(scenario.error_log))
    by_level: dict[str, int] = {}
    for record in records:
        assert record.severity_text is not None
        by_level.setdefault(record.severity_text, record.severity_number)
    order = ["trace8", "trace7", "trace6", "trace5", "trace4", "trace3", "debug", "info", "notice"]
    numbers = [by_level[level] for level in order if level in by_level]
    assert numbers == sorted(numbers)


def test_not_found_writes_ah00128_at_info_with_client_and_referer(scenario: Scenario) -> None:
    missing = f"{scenario.docroot}{NOT_FOUND_PATH}"
    lines = [line for line in read_lines(scenario.error_log) if b"AH00128" in line]
    # Three 404s were sent; the one with the Referer names the missing page.
    (line,) = [line for line in lines if missing.encode() in line]
    assert b"[core:info]" in line
    record = build_parser("error").parse([line])[0]
    attributes = record.attributes
    assert PARSE_ERROR not in attributes
    assert record.severity_text == "info"
    assert attributes["apache.module"] == "core"
    assert attributes["apache.error.code"] == "AH00128"
    assert attributes["apache.message"] == f"File does not exist: {missing}"
    assert attributes["client.address"] == "127.0.0.1"
    assert isinstance(attributes["client.port"], int) and 0 < attributes["client.port"] < 65536
    assert attributes["http.request.header.referer"] == REFERER
    assert isinstance(attributes["process.pid"], int)


def test_request_timeouts_write_ah01382_from_reqtimeout(scenario: Scenario) -> None:
    lines = [line for line in read_lines(scenario.error_log) if b"AH01382" in line]
    assert len(lines) == 2  # the unfinished request line and the unfinished headers
    for record in build_parser("error").parse(lines):
        assert record.severity_text == "info"
        assert record.attributes["apache.module"] == "reqtimeout"
        assert record.attributes["apache.error.code"] == "AH01382"
        assert record.attributes["apache.message"] == "Request header read timeout"
        assert record.attributes["client.address"] == "127.0.0.1"


def test_trace_lines_carry_source_file_and_line(scenario: Scenario) -> None:
    lines = [
        line for line in read_lines(scenario.error_log) if b":trace5]" in line and b"protocol.c(" in line
    ]
    assert lines, "trace5 lines from protocol.c (request received) are expected at trace8"
    for record in build_parser("error").parse(lines):
        assert record.attributes["code.file.path"] == "protocol.c"
        assert isinstance(record.attributes["code.line.number"], int)


# -- %L semantics, checked against real Apache at the default LogLevel ---------------------------


@pytest.mark.parametrize("unique_id", [False, True], ids=["plain", "mod_unique_id"])
def test_request_log_id_is_set_only_for_requests_with_an_error_log_entry(
    apache_factory: ApacheFactory, tmp_path: Path, unique_id: bool
) -> None:
    """At LogLevel warn a 200 and a 404 write nothing to the error log, so `%L` is `-` (absent);
    a 6 KB path fails with AH00127 at error level (403), so that request gets an ID. With
    mod_unique_id loaded the ID is the request's UNIQUE_ID."""
    fmt = "%>s %L %{UNIQUE_ID}e"
    access_log = tmp_path / "ids.log"
    apache = apache_factory(
        custom_logs=[CustomLog(access_log, fmt)],
        log_level="warn",
        extra_modules=[("unique_id_module", "mod_unique_id.so")] if unique_id else [],
    )
    statuses = [status_of(apache.request("GET", target)) for target in ("/", "/" + "x" * 6000, "/nope")]
    assert statuses == [200, 403, 404]
    wait_for(lambda: line_count(access_log) == 3, timeout=5)
    records = build_parser("logformat:" + fmt).parse(read_lines(access_log))
    assert unparsed(records) == []
    ok, too_long, not_found = (record.attributes for record in records)
    assert "apache.request_log_id" not in ok and "apache.request_log_id" not in not_found
    assert re.fullmatch(r"[A-Za-z0-9+/@_-]{6,}", too_long["apache.request_log_id"])
    assert b"AH00127: Cannot map GET /xxxx" in apache.error_log.read_bytes()
    if unique_id:
        assert all("apache.env.UNIQUE_ID" in attributes for attributes in (ok, too_long, not_found))
        assert too_long["apache.request_log_id"] == too_long["apache.env.UNIQUE_ID"]
    else:
        assert all("apache.env.UNIQUE_ID" not in attributes for attributes in (ok, too_long, not_found))
