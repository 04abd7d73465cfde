"""Apache error-log parsing: golden lines from real httpd 2.4 (captured from Debian's apache2
2.4 on this machine unless noted) and 2.2, the ErrorLogFormat compiler, and time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsidecar.parse import build_parser
from logsidecar.parse.base import FormatError
from logsidecar.parse.error_time import ErrorTimeParser
from logsidecar.parse.errorlog import ErrorLogParser, split_host_port
from logsidecar.parse.errorlog_compiled import compile_errorlogformat
from logsidecar.parse.severity import APACHE_LEVELS, apache_severity
from logsidecar.record import FORMAT, INVALID_UTF8, PARSE_ERROR, Severity


def parse_one(line: bytes, tz=UTC):
    records = ErrorLogParser(timezone=tz).parse([line])
    assert len(records) == 1
    return records[0]


# (line, expected attributes without logsidecar.format, severity_text, timestamp)
GOLDEN_24 = [
    (
        b"[Sat Nov 28 02:09:07.632088 2026] [core:info] [pid 12682:tid 12692] [client 127.0.0.1:43346] "
        b"AH00128: File does not exist: /tmp/errlab/htdocs/nope, referer: http://a/b",
        {
            "apache.module": "core",
            "process.pid": 12682,
            "thread.id": 12692,
            "client.address": "127.0.0.1",
            "client.port": 43346,
            "apache.error.code": "AH00128",
            "apache.message": "File does not exist: /tmp/errlab/htdocs/nope",
            "http.request.header.referer": "http://a/b",
        },
        "info",
        datetime(2026, 11, 28, 2, 9, 7, 632088, tzinfo=UTC),
    ),
    (  # IPv6 client as httpd writes it: no brackets, port after the last colon
        b"[Sat Nov 28 02:09:07.644871 2026] [authz_core:error] [pid 12683:tid 12707] [client ::1:49896] "
        b"AH01630: client denied by server configuration: /tmp/errlab/htdocs/denied/x",
        {
            "apache.module": "authz_core",
            "process.pid": 12683,
            "thread.id": 12707,
            "client.address": "::1",
            "client.port": 49896,
            "apache.error.code": "AH01630",
            "apache.message": "client denied by server configuration: /tmp/errlab/htdocs/denied/x",
        },
        "error",
        datetime(2026, 11, 28, 2, 9, 7, 644871, tzinfo=UTC),
    ),
    (  # trace level with source file(line) and a referer
        b"[Sat Nov 28 02:09:07.632070 2026] [core:trace3] [pid 12682:tid 12692] request.c(360): "
        b"[client 127.0.0.1:43346] request authorized without authentication by access_checker_ex hook: "
        b"/nope, referer: http://a/b",
        {
            "apache.module": "core",
            "process.pid": 12682,
            "thread.id": 12692,
            "code.file.path": "request.c",
            "code.line.number": 360,
            "client.address": "127.0.0.1",
            "client.port": 43346,
            "apache.message": "request authorized without authentication by access_checker_ex hook: /nope",
            "http.request.header.referer": "http://a/b",
        },
        "trace3",
        datetime(2026, 11, 28, 2, 9, 7, 632070, tzinfo=UTC),
    ),
    (  # server-level line, no client
        b"[Sat Nov 28 02:09:06.621961 2026] [mpm_event:notice] [pid 12678:tid 12678] AH00489: "
        b"Apache/2.4.71 (Debian) configured -- resuming normal operations",
        {
            "apache.module": "mpm_event",
            "process.pid": 12678,
            "thread.id": 12678,
            "apache.error.code": "AH00489",
            "apache.message": "Apache/2.4.71 (Debian) configured -- resuming normal operations",
        },
        "notice",
        datetime(2026, 11, 28, 2, 9, 6, 621961, tzinfo=UTC),
    ),
    (  # debug: file(line) then AH code
        b"[Sat Nov 28 02:09:06.621976 2026] [core:debug] [pid 12678:tid 12678] log.c(1611): AH02639: "
        b"Using SO_REUSEPORT: yes (1)",
        {
            "apache.module": "core",
            "process.pid": 12678,
            "thread.id": 12678,
            "code.file.path": "log.c",
            "code.line.number": 1611,
            "apache.error.code": "AH02639",
            "apache.message": "Using SO_REUSEPORT: yes (1)",
        },
        "debug",
        datetime(2026, 11, 28, 2, 9, 6, 621976, tzinfo=UTC),
    ),
    (  # prefork: [pid N] only; empty module [:error]; mod_security's own "[client ip]" without port
        b"[Tue Mar 05 10:11:12.000123 2019] [:error] [pid 4321] [client 10.0.0.7] ModSecurity: Access denied "
        b'with code 403 (phase 2). [file "/etc/modsecurity/rules.conf"] [id "942100"] [uri "/login"]',
        {
            "process.pid": 4321,
            "client.address": "10.0.0.7",
            "apache.message": 'ModSecurity: Access denied with code 403 (phase 2). [file "/etc/modsecurity/rules.conf"] '
            '[id "942100"] [uri "/login"]',
        },
        "error",
        datetime(2019, 3, 5, 10, 11, 12, 123, tzinfo=UTC),
    ),
    (  # APR status before the client, [remote] peer is a backend connection (mod_proxy)
        b"[Sun Oct 07 12:00:00.000001 2018] [proxy_http:error] [pid 28:tid 140234567890] (70007)The timeout "
        b"specified has expired: [remote 10.1.2.3:8080] AH01102: error reading status line from remote server "
        b"backend:8080",
        {
            "apache.module": "proxy_http",
            "process.pid": 28,
            "thread.id": 140234567890,
            "apache.status": "(70007)The timeout specified has expired",
            "network.peer.address": "10.1.2.3",
            "network.peer.port": 8080,
            "apache.error.code": "AH01102",
            "apache.message": "error reading status line from remote server backend:8080",
        },
        "error",
        datetime(2018, 10, 7, 12, 0, 0, 1, tzinfo=UTC),
    ),
    (  # status, no client
        b"[Sun Oct 07 12:00:01.500000 2018] [proxy:error] [pid 28:tid 140] (111)Connection refused: AH00957: "
        b"HTTP: attempt to connect to 127.0.0.1:8080 (localhost) failed",
        {
            "apache.module": "proxy",
            "process.pid": 28,
            "thread.id": 140,
            "apache.status": "(111)Connection refused",
            "apache.error.code": "AH00957",
            "apache.message": "HTTP: attempt to connect to 127.0.0.1:8080 (localhost) failed",
        },
        "error",
        datetime(2018, 10, 7, 12, 0, 1, 500000, tzinfo=UTC),
    ),
    (  # PHP message through mod_php, bracketed IPv6 form, trace8
        b"[Wed Oct 11 14:32:52.123456 2000] [php7:trace8] [pid 1234:tid 5678] [client [2001:db8::1]:5678] "
        b"PHP Warning:  Undefined variable $x in /var/www/html/index.php on line 3, referer: http://a/b?c=d",
        {
            "apache.module": "php7",
            "process.pid": 1234,
            "thread.id": 5678,
            "client.address": "2001:db8::1",
            "client.port": 5678,
            "apache.message": "PHP Warning:  Undefined variable $x in /var/www/html/index.php on line 3",
            "http.request.header.referer": "http://a/b?c=d",
        },
        "trace8",
        datetime(2000, 10, 11, 14, 32, 52, 123456, tzinfo=UTC),
    ),
    (  # PHP-FPM message relayed by mod_proxy_fcgi
        b"[Wed Oct 11 14:32:53.000000 2000] [proxy_fcgi:error] [pid 9:tid 10] [client 1.2.3.4:5678] AH01071: "
        b"Got error 'PHP message: PHP Fatal error:  Uncaught Error: Call to undefined function foo()'",
        {
            "apache.module": "proxy_fcgi",
            "process.pid": 9,
            "thread.id": 10,
            "client.address": "1.2.3.4",
            "client.port": 5678,
            "apache.error.code": "AH01071",
            "apache.message": "Got error 'PHP message: PHP Fatal error:  Uncaught Error: Call to undefined function foo()'",
        },
        "error",
        datetime(2000, 10, 11, 14, 32, 53, tzinfo=UTC),
    ),
]

GOLDEN_22 = [
    (
        b"[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration: "
        b"/export/home/live/ap/htdocs/test",
        {
            "client.address": "127.0.0.1",
            "apache.message": "client denied by server configuration: /export/home/live/ap/htdocs/test",
        },
        "error",
        datetime(2000, 10, 11, 14, 32, 52, tzinfo=UTC),
    ),
    (  # 2.2 never writes a port: "::1" is the whole address
        b"[Thu Jan 02 03:04:05 2014] [warn] [client ::1] mod_fcgid: stderr: PHP Notice:  Undefined index: q, "
        b"referer: http://example.com/",
        {
            "client.address": "::1",
            "apache.message": "mod_fcgid: stderr: PHP Notice:  Undefined index: q",
            "http.request.header.referer": "http://example.com/",
        },
        "warn",
        datetime(2014, 1, 2, 3, 4, 5, tzinfo=UTC),
    ),
    (
        b"[Thu Jan 02 03:04:05 2014] [notice] Apache/2.2.22 (Debian) configured -- resuming normal operations",
        {"apache.message": "Apache/2.2.22 (Debian) configured -- resuming normal operations"},
        "notice",
        datetime(2014, 1, 2, 3, 4, 5, tzinfo=UTC),
    ),
    (
        b"[Thu Jan 02 03:04:05 2014] [debug] mod_deflate.c(615): [client 1.2.3.4] Zlib: Compressed 10 to 12 : URL /",
        {
            "code.file.path": "mod_deflate.c",
            "code.line.number": 615,
            "client.address": "1.2.3.4",
            "apache.message": "Zlib: Compressed 10 to 12 : URL /",
        },
        "debug",
        datetime(2014, 1, 2, 3, 4, 5, tzinfo=UTC),
    ),
    (
        b"[Thu Jan 02 03:04:05 2014] [crit] (13)Permission denied: /var/www/.htaccess pcfg_openfile: unable to check "
        b"htaccess file",
        {
            "apache.status": "(13)Permission denied",
            "apache.message": "/var/www/.htaccess pcfg_openfile: unable to check htaccess file",
        },
        "crit",
        datetime(2014, 1, 2, 3, 4, 5, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize(("line", "attributes", "level", "timestamp"), GOLDEN_24 + GOLDEN_22)
def test_golden_lines_parse_to_exact_attributes(line, attributes, level, timestamp):
    record = parse_one(line)
    assert record.attributes == {FORMAT: "error", **attributes}
    assert record.severity_text == level
    assert record.severity_number == APACHE_LEVELS[level]
    assert record.timestamp == timestamp
    assert record.timestamp.utcoffset() == timedelta(0)
    assert record.body == line.decode()


def test_startup_line_without_time_or_level_keeps_its_code_and_message_and_is_flagged():
    line = (
        b"AH00558: apache2: Could not reliably determine the server's fully qualified domain name, using "
        b"127.0.0.1. Set the 'ServerName' directive globally to suppress this message"
    )
    record = parse_one(line)
    assert record.attributes == {
        FORMAT: "error",
        PARSE_ERROR: "no [time] [level] header",
        "apache.error.code": "AH00558",
        "apache.message": "apache2: Could not reliably determine the server's fully qualified domain name, using "
        "127.0.0.1. Set the 'ServerName' directive globally to suppress this message",
    }
    assert record.timestamp is None
    assert record.severity_number == Severity.UNSPECIFIED
    assert record.severity_text is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "no [time] [level] header"),
        (b"-", "no [time] [level] header"),
        (b"Segmentation fault (core dumped)", "no [time] [level] header"),
        (b"  at Foo.bar (index.js:10:3)", "no [time] [level] header"),
        (b"PHP Warning:  Undefined variable $x in /var/www/a.php on line 3", "no [time] [level] header"),
        (
            b"[Wed Oct 11 14:32:52 2000] [bogus] level that does not exist",
            "unrecognised [time] [level] header",
        ),
        (b"[Wed Oct 11 14:32:52 2000] missing level", "no [time] [level] header"),
    ],
)
def test_continuation_and_raw_stderr_lines_are_flagged_with_raw_body(line, reason):
    record = parse_one(line)
    assert record.body == line.decode()
    assert record.attributes == {FORMAT: "error", PARSE_ERROR: reason}
    assert record.severity_number == Severity.UNSPECIFIED
    assert record.timestamp is None


@pytest.mark.parametrize(
    "time_text",
    [
        "Wed Feb 30 14:32:52.000001 2000",  # no such day
        "Wed Oct 11 24:00:00.000001 2000",  # hour 24
        "Wed Oct 11 14:60:00 2000",
        "Wed Foo 11 14:32:52 2000",
        "yesterday",
    ],
)
def test_a_time_that_is_not_a_real_instant_is_flagged_and_the_rest_parsed(time_text):
    record = parse_one(f"[{time_text}] [core:error] [pid 1] AH00128: x".encode())
    assert record.timestamp is None
    assert record.attributes == {
        FORMAT: "error",
        PARSE_ERROR: "invalid time in [time]: not a real instant",
        "apache.time.original": time_text,
        "apache.module": "core",
        "process.pid": 1,
        "apache.error.code": "AH00128",
        "apache.message": "x",
    }
    assert (record.severity_text, record.severity_number) == ("error", Severity.ERROR)


def test_invalid_utf8_is_kept_escaped_and_flagged():
    record = parse_one(b"[Wed Oct 11 14:32:52.000001 2000] [core:error] [pid 1] bad \xff byte")
    assert record.body == "[Wed Oct 11 14:32:52.000001 2000] [core:error] [pid 1] bad \\xff byte"
    assert record.attributes["apache.message"] == "bad \\xff byte"
    assert record.attributes[INVALID_UTF8] is True
    assert PARSE_ERROR not in record.attributes


def test_batch_gives_one_record_per_line_in_order_with_one_observed_timestamp():
    lines = [line for line, *_ in GOLDEN_24] + [b"garbage"] + [line for line, *_ in GOLDEN_22]
    records = ErrorLogParser().parse(lines)
    assert [r.body for r in records] == [line.decode() for line in lines]
    assert len({r.observed_timestamp for r in records}) == 1
    assert records[0].observed_timestamp.tzinfo is not None


def test_formats_2_2_and_2_4_mix_in_one_file():
    records = ErrorLogParser().parse([GOLDEN_22[0][0], GOLDEN_24[0][0], GOLDEN_22[1][0]])
    assert [PARSE_ERROR in r.attributes for r in records] == [False, False, False]
    assert [r.attributes.get("client.port") for r in records] == [None, 43346, None]


# --- severity ----------------------------------------------------------------------------------


def test_every_apache_level_maps_to_the_documented_severity_number():
    assert {level: int(apache_severity(level)) for level in APACHE_LEVELS} == {
        "emerg": 21,
        "alert": 19,
        "crit": 18,
        "error": 17,
        "warn": 13,
        "notice": 10,
        "info": 9,
        "debug": 5,
        "trace1": 4,
        "trace2": 4,
        "trace3": 3,
        "trace4": 3,
        "trace5": 2,
        "trace6": 2,
        "trace7": 1,
        "trace8": 1,
    }
    assert apache_severity("nonsense") == Severity.UNSPECIFIED


@pytest.mark.parametrize("level", list(APACHE_LEVELS))
def test_each_level_is_recognised_in_a_line(level):
    record = parse_one(f"[Wed Oct 11 14:32:52.000001 2000] [core:{level}] [pid 1] msg".encode())
    assert record.severity_text == level
    assert record.severity_number == APACHE_LEVELS[level]


# --- host:port ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "has_port", "expected"),
    [
        ("1.2.3.4:80", True, ("1.2.3.4", 80)),
        ("::1:5678", True, ("::1", 5678)),
        ("fe80::1%eth0:443", True, ("fe80::1%eth0", 443)),
        ("[::1]:5678", True, ("::1", 5678)),
        ("[::1]", True, ("::1", None)),
        ("::1", False, ("::1", None)),
        ("1.2.3.4", True, ("1.2.3.4", None)),
        ("host:notaport", True, ("host:notaport", None)),
        ("2001:db8::5", True, ("2001:db8::5", None)),
        ("2001:db8::5:443", True, ("2001:db8::5", 443)),
    ],
)
def test_split_host_port(value, has_port, expected):
    assert split_host_port(value, has_port=has_port) == expected


# --- time zones --------------------------------------------------------------------------------


def test_times_are_read_in_the_configured_zone_with_dst():
    berlin = ZoneInfo("Europe/Berlin")
    winter = parse_one(b"[Wed Jan 11 14:32:52.000001 2023] [core:error] [pid 1] x", tz=berlin)
    summer = parse_one(b"[Tue Jul 11 14:32:52.000001 2023] [core:error] [pid 1] x", tz=berlin)
    assert winter.timestamp.utcoffset() == timedelta(hours=1)
    assert summer.timestamp.utcoffset() == timedelta(hours=2)
    assert summer.timestamp.astimezone(UTC) == datetime(2023, 7, 11, 12, 32, 52, 1, tzinfo=UTC)


def test_fixed_offset_zone_is_applied():
    record = parse_one(b"[Wed Oct 11 14:32:52 2000] [error] x", tz=timezone(timedelta(hours=-7)))
    assert record.timestamp.isoformat() == "2000-10-11T14:32:52-07:00"


def test_repeated_dst_hour_stays_monotonic():
    """New York, 2023-11-05: 01:00-01:59 happens twice (EDT, then EST)."""
    times = ErrorTimeParser(ZoneInfo("America/New_York"))
    stamps = [
        "Sun Nov 05 00:59:59.000000 2023",  # EDT
        "Sun Nov 05 01:30:00.000000 2023",  # first pass, EDT
        "Sun Nov 05 01:59:59.000000 2023",  # first pass, EDT
        "Sun Nov 05 01:00:01.000000 2023",  # second pass, EST
        "Sun Nov 05 01:30:00.000000 2023",  # second pass, EST
        "Sun Nov 05 02:00:00.000000 2023",  # EST
    ]
    utc = [times.parse(s).astimezone(UTC) for s in stamps]
    assert [u.strftime("%H:%M:%S") for u in utc] == [
        "04:59:59",
        "05:30:00",
        "05:59:59",
        "06:00:01",
        "06:30:00",
        "07:00:00",
    ]
    assert utc == sorted(utc)


def test_time_parser_caches_per_second_and_keeps_fractions_distinct():
    times = ErrorTimeParser(UTC)
    a = times.parse("Wed Oct 11 14:32:52.000001 2000")
    b = times.parse("Wed Oct 11 14:32:52.999999 2000")
    assert (a.microsecond, b.microsecond) == (1, 999999)
    assert len(times._cache) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Wed Oct 11 14:32:52 2000", datetime(2000, 10, 11, 14, 32, 52, tzinfo=UTC)),
        ("Wed Oct  1 14:32:52 2000", datetime(2000, 10, 1, 14, 32, 52, tzinfo=UTC)),
        ("Wed Oct 11 14:32:52.5 2000", datetime(2000, 10, 11, 14, 32, 52, 500000, tzinfo=UTC)),
        ("2000-10-11 14:32:52", datetime(2000, 10, 11, 14, 32, 52, tzinfo=UTC)),
        ("2000-10-11 14:32:52.000042", datetime(2000, 10, 11, 14, 32, 52, 42, tzinfo=UTC)),
        ("Wed Foo 11 14:32:52 2000", None),
        ("not a time", None),
        ("Wed Oct 11 14:32:52.12x456 2000", None),
        ("Wed Oct 11 14:32:52 2000 +0200", datetime(2000, 10, 11, 12, 32, 52, tzinfo=UTC)),  # %{z}t
        ("2000-10-11 14:32:52.000042 -0100", datetime(2000, 10, 11, 15, 32, 52, 42, tzinfo=UTC)),
        ("Wed Oct 11 14:32:52 2000 +2400", None),
    ],
)
def test_time_strings(text, expected):
    assert ErrorTimeParser(UTC).parse(text) == expected


# --- ErrorLogFormat compiler --------------------------------------------------------------------

DOCS_FORMAT = r"[%{u}t] [%-m:%l] [pid %P:tid %T] %7F: %E: [client\ %a] %M% ,\ referer\ %{Referer}i"


def test_docs_example_format_parses_real_httpd_output():
    """Lines written by Debian's httpd 2.4 with the ErrorLogFormat example from the docs."""
    parser = compile_errorlogformat(DOCS_FORMAT)
    debug, request, proxy = parser.parse(
        [
            b"[Sat Nov 28 02:14:24.798522 2026] [core:debug] [pid 20411:tid 140125682657152] log.c(1611): "
            b"AH02639: Using SO_REUSEPORT: yes (1)",
            b"[Sat Nov 28 02:14:25.845497 2026] [core:info] [pid 20413:tid 140125672126144] "
            b"[client 127.0.0.1:42252] AH00128: File does not exist: /tmp/errlab/htdocs/nope, referer http://a/b",
            b"[Sat Nov 28 02:14:25.877707 2026] [proxy:error] [pid 20414:tid 1] (111)Connection refused: "
            b"[client ::1:55092] AH00957: attempt failed",
        ]
    )
    assert debug.attributes == {
        FORMAT: "errorlogformat",
        "apache.module": "core",
        "process.pid": 20411,
        "thread.id": 140125682657152,
        "code.file.path": "log.c",
        "code.line.number": 1611,
        "apache.error.code": "AH02639",
        "apache.message": "Using SO_REUSEPORT: yes (1)",
    }
    assert debug.severity_text == "debug"
    assert debug.timestamp == datetime(2026, 11, 28, 2, 14, 24, 798522, tzinfo=UTC)
    assert request.attributes == {
        FORMAT: "errorlogformat",
        "apache.module": "core",
        "process.pid": 20413,
        "thread.id": 140125672126144,
        "client.address": "127.0.0.1",
        "client.port": 42252,
        "apache.error.code": "AH00128",
        "apache.message": "File does not exist: /tmp/errlab/htdocs/nope",
        "http.request.header.referer": "http://a/b",
    }
    assert proxy.attributes == {
        FORMAT: "errorlogformat",
        "apache.module": "proxy",
        "process.pid": 20414,
        "thread.id": 1,
        "apache.status": "(111)Connection refused",
        "client.address": "::1",
        "client.port": 55092,
        "apache.error.code": "AH00957",
        "apache.message": "attempt failed",
    }
    assert proxy.severity_number == Severity.ERROR


def test_compact_time_hyphens_and_log_ids_from_real_output():
    parser = compile_errorlogformat("%{cu}t %-m %-l %-a %-L %M")
    startup, request = parser.parse(
        [
            b"2026-11-28 02:14:26.971271 unixd alert - - AH02155: getpwuid: couldn't determine user name",
            b"2026-11-28 02:14:27.995135 core info 127.0.0.1:42264 mzV9vIwcbAQ AH00128: File does not exist: /x",
        ]
    )
    assert startup.attributes == {
        FORMAT: "errorlogformat",
        "apache.module": "unixd",
        "apache.error.code": "AH02155",
        "apache.message": "getpwuid: couldn't determine user name",
    }
    assert startup.severity_number == Severity.ERROR3
    assert startup.timestamp == datetime(2026, 11, 28, 2, 14, 26, 971271, tzinfo=UTC)
    assert request.attributes == {
        FORMAT: "errorlogformat",
        "apache.module": "core",
        "client.address": "127.0.0.1",
        "client.port": 42264,
        "apache.log_id": "mzV9vIwcbAQ",
        "apache.error.code": "AH00128",
        "apache.message": "File does not exist: /x",
    }


def test_optional_fields_may_be_absent():
    parser = compile_errorlogformat("[%t] [%l] [pid %P] [client\\ %a] %M")
    with_client, without_client = parser.parse(
        [
            b"[Wed Oct 11 14:32:52 2000] [warn] [pid 7] [client 1.2.3.4:5] hello",
            b"[Wed Oct 11 14:32:52 2000] [warn] [pid 7] hello",
        ]
    )
    assert with_client.attributes["client.address"] == "1.2.3.4"
    assert "client.address" not in without_client.attributes
    assert without_client.attributes["apache.message"] == "hello"
    assert PARSE_ERROR not in without_client.attributes


def test_every_directive_compiles_and_maps_to_its_attribute():
    parser = compile_errorlogformat(
        "%{c}t|%a|%{c}a|%A|%{X}e|%E|%F|%{X-Y}i|%{User-Agent}i|%k|%l|%L|%{c}L|%m|%{n}n|%P|%T|%{g}T|%v|%V|%%|%M"
    )
    [record] = parser.parse(
        [
            b"2000-10-11 14:32:52|1.1.1.1:1|2.2.2.2:2|3.3.3.3:3|ev|(2)No such file|f.c(9)|hv|curl/8|4|info|rid|"
            b"cid|mod|nv|5|6|7|vh|sn|%|msg"
        ]
    )
    assert record.attributes == {
        FORMAT: "errorlogformat",
        "client.address": "1.1.1.1",
        "client.port": 1,
        "network.peer.address": "2.2.2.2",
        "network.peer.port": 2,
        "network.local.address": "3.3.3.3",
        "network.local.port": 3,
        "apache.env.X": "ev",
        "apache.status": "(2)No such file",
        "code.file.path": "f.c",
        "code.line.number": 9,
        "http.request.header.x-y": "hv",
        "user_agent.original": "curl/8",
        "apache.keepalives": 4,
        "apache.log_id": "rid",
        "apache.connection.log_id": "cid",
        "apache.module": "mod",
        "apache.note.n": "nv",
        "process.pid": 5,
        "thread.id": 7,  # %T then %{g}T: the later one wins
        "server.address": "vh",
        "apache.server_name": "sn",
        "apache.message": "msg",
    }
    assert record.severity_text == "info"
    assert record.timestamp == datetime(2000, 10, 11, 14, 32, 52, tzinfo=UTC)


def test_compiled_format_flags_non_matching_lines():
    parser = compile_errorlogformat("[%t] [%l] %M")
    [record] = parser.parse([b"no brackets here"])
    assert record.attributes == {
        FORMAT: "errorlogformat",
        PARSE_ERROR: "line does not match the ErrorLogFormat",
    }
    assert record.body == "no brackets here"


@pytest.mark.parametrize(
    ("fmt", "line", "expected"),
    [
        ("[%{z}t] %M", "[Wed Oct 11 14:32:52 2000 +0200] hi", "2000-10-11T14:32:52+02:00"),
        ("[%{uz}t] %M", "[Wed Oct 11 14:32:52.000042 2000 -0330] hi", "2000-10-11T14:32:52.000042-03:30"),
        ("[%{cuz}t] %M", "[2000-10-11 14:32:52.000042 +0000] hi", "2000-10-11T14:32:52.000042+00:00"),
        ("[%{zc}t] %M", "[2000-10-11 14:32:52 +0100] hi", "2000-10-11T14:32:52+01:00"),
        ("[%{%Y-%m-%d %H:%M:%S}t] %M", "[2000-10-11 14:32:52] hi", "2000-10-11T14:32:52+09:00"),
        ("[%{%d/%b/%Y:%T %z}t] %M", "[11/Oct/2000:14:32:52 -0700] hi", "2000-10-11T14:32:52-07:00"),
    ],
)
def test_compiled_format_reads_every_time_form_of_log_ctime(fmt, line, expected):
    [record] = compile_errorlogformat(fmt, timezone=ZoneInfo("Asia/Tokyo")).parse([line.encode()])
    assert PARSE_ERROR not in record.attributes
    assert record.timestamp.isoformat() == expected
    assert record.attributes["apache.message"] == "hi"


@pytest.mark.parametrize(
    ("fmt", "line", "source", "original"),
    [
        ("[%{cu}t] [%l] %M", "[2000-02-30 14:32:52.000042] [warn] hi", "%{cu}t", "2000-02-30 14:32:52.000042"),
        ("[%t] [%l] %M", "[Wed Oct 11 24:32:52 2000] [warn] hi", "%t", "Wed Oct 11 24:32:52 2000"),
        ("[%{z}t] [%l] %M", "[Wed Oct 11 14:32:52 2000 +9900] [warn] hi", "%{z}t", "Wed Oct 11 14:32:52 2000 +9900"),
        ("[%{%Y-%m-%d}t] [%l] %M", "[2000-13-01] [warn] hi", "%{%Y-%m-%d}t", "2000-13-01"),
    ],
)  # fmt: skip
def test_compiled_format_flags_a_time_that_is_not_a_real_instant(fmt, line, source, original):
    [record] = compile_errorlogformat(fmt).parse([line.encode()])
    assert record.timestamp is None
    assert record.attributes[PARSE_ERROR] == f"invalid time in {source}: not a real instant"
    assert record.attributes["apache.time.original"] == original
    assert (record.severity_text, record.attributes["apache.message"]) == ("warn", "hi")


def test_compiled_format_hands_lines_in_the_built_in_format_to_the_error_parser():
    """httpd logs what it does while reading its configuration before ErrorLogFormat applies."""
    line = (
        b"[Sat Dec 05 10:47:45.692285 2026] [core:trace3] [pid 1941:tid 1941] core.c(3490): Setting LogLevel"
    )
    [record] = compile_errorlogformat("%{cu}t %l %M").parse([line])
    assert record.attributes[FORMAT] == "error"
    assert PARSE_ERROR not in record.attributes
    assert (record.severity_text, record.attributes["code.line.number"]) == ("trace3", 3490)


def test_compiled_format_unescapes_headers_env_and_notes_as_the_access_parser_does():
    parser = compile_errorlogformat(r"[%l] [ua\ %{User-Agent}i] [env\ %{E}e] [note\ %{N}n] %M")
    [record] = parser.parse(
        [rb'[warn] [ua a\\b "c" \xc3\xa9] [env tab\there] [note \xff] m']
    )  # as httpd escapes
    assert record.attributes["user_agent.original"] == 'a\\b "c" \u00e9'
    assert record.attributes["apache.env.E"] == "tab\there"
    assert record.attributes["apache.note.N"] == "\ufffd"
    assert record.attributes[INVALID_UTF8] is True


def test_compiled_format_reads_times_in_its_zone():
    parser = compile_errorlogformat("[%{cu}t] %M", timezone=ZoneInfo("Asia/Tokyo"))
    [record] = parser.parse([b"[2024-02-03 04:05:06.000007] hi"])
    assert record.timestamp.isoformat() == "2024-02-03T04:05:06.000007+09:00"


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("[%t] %Q %M", "unrecognized ErrorLogFormat directive %Q at position 6 of ErrorLogFormat:\n  [%t] %Q %M\n        ^"),
        ("%M %{Referer", "'{' without a closing '}' at position 4 of ErrorLogFormat:\n  %M %{Referer\n      ^"),
        ("%M %-", "directive runs off the end of the format (missing letter) at position 3 of ErrorLogFormat:\n"
         "  %M %-\n     ^"),
        ("", "empty ErrorLogFormat"),
    ],
)  # fmt: skip
def test_bad_errorlogformat_raises_formaterror_pointing_at_the_directive(fmt, message):
    with pytest.raises(FormatError) as excinfo:
        compile_errorlogformat(fmt)
    assert str(excinfo.value) == message


def test_build_parser_knows_error_and_errorlogformat():
    assert build_parser("error").format_name == "error"
    assert build_parser("errorlogformat:[%t] %M").format_name == "errorlogformat"
    with pytest.raises(FormatError, match="%Z"):
        build_parser("errorlogformat:%Z")


def test_escaped_space_and_control_characters_in_literals():
    parser = compile_errorlogformat(r"%P\ \t%M")
    [record] = parser.parse([b"12 \tmessage"])
    assert record.attributes["process.pid"] == 12
    assert record.attributes["apache.message"] == "message"


# --- property: any bytes → exactly one record, no exception -------------------------------------

_PREFIXES = st.sampled_from(
    [
        b"",
        b"[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 1:tid 2] ",
        b"[Wed Oct 11 14:32:52 2000] [error] ",
        b"AH00001: ",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_PREFIXES, st.binary(max_size=200)), max_size=20))
def test_any_bytes_give_exactly_one_record_per_line(pieces):
    lines = [prefix + tail for prefix, tail in pieces]
    for parser in (ErrorLogParser(), compile_errorlogformat(DOCS_FORMAT)):
        records = parser.parse(lines)
        assert len(records) == len(lines)
        for line, record in zip(lines, records, strict=True):
            assert record.body == line.decode("utf-8", "backslashreplace")
            assert record.observed_timestamp is not None
            # A compiled format hands lines in httpd's built-in format to the `error` parser.
            assert record.attributes[FORMAT] in (parser.format_name, "error")


def test_pasted_errorlogformat_line_and_config_quoting_are_accepted():
    parser = compile_errorlogformat('ErrorLogFormat "[%t] [%l] \\"%M\\""')
    assert parser.fmt == '[%t] [%l] "%M"'
    [record] = parser.parse([b'[Wed Oct 11 14:32:52 2000] [warn] "quoted message"'])
    assert record.attributes["apache.message"] == "quoted message"
    assert record.severity_text == "warn"


def test_once_per_connection_format_is_rejected_with_a_reason():
    with pytest.raises(FormatError, match="once-per-connection"):
        compile_errorlogformat('ErrorLogFormat connection "[%{uc}t] [C:%{c}L] local\\ %a remote\\ %A"')


def test_required_item_makes_its_field_mandatory():
    lines = [b"[Wed Oct 11 14:32:52 2000] abc hello", b"[Wed Oct 11 14:32:52 2000] hello"]
    with_id, without_id = compile_errorlogformat("[%t] %+L %M").parse(lines)
    assert (with_id.attributes["apache.log_id"], with_id.attributes["apache.message"]) == ("abc", "hello")
    # httpd never writes a line whose required item is empty, so a line without it does not match
    assert without_id.attributes[PARSE_ERROR] == "line does not match the ErrorLogFormat"
    # without `+` the field is optional
    optional = compile_errorlogformat("[%t] %L %M").parse(lines)
    assert [r.attributes.get("apache.log_id") for r in optional] == ["abc", None]
    assert [r.attributes.get("apache.message") for r in optional] == ["hello", "hello"]


def test_min_level_field_is_absent_below_its_level():
    parser = compile_errorlogformat("[%l] %7F: %M")
    debug, info = parser.parse([b"[debug] mod_x.c(12): details", b"[info] plain message"])
    assert (debug.attributes["code.file.path"], debug.attributes["code.line.number"]) == ("mod_x.c", 12)
    assert debug.attributes["apache.message"] == "details"
    assert "code.file.path" not in info.attributes
    assert info.attributes["apache.message"] == "plain message"


def test_status_after_the_client_is_accepted_too():
    record = parse_one(
        b"[Sat Mar 14 09:26:53.165614 2026] [proxy_http:error] [pid 35254:tid 8160] [client 114.33.56.242:7063] "
        b"(111)Connection refused: AH01114: HTTP: failed to make connection to backend: 127.0.0.1"
    )
    assert record.attributes["apache.status"] == "(111)Connection refused"
    assert record.attributes["apache.error.code"] == "AH01114"
    assert record.attributes["apache.message"] == "HTTP: failed to make connection to backend: 127.0.0.1"


# --- hostile numbers (issue 13) ------------------------------------------------------------------

HUGE = "1" * 23  # beyond 64 bits: OTLP's int_value would raise "Integer exceeds 64-bit range"


def _encodable(record) -> None:
    from logsidecar.encoding.otlp_wire import LogsRequestEncoder

    assert LogsRequestEncoder({}).encode_record(record, 0)


def test_a_pid_tid_port_or_line_beyond_64_bits_stays_text_and_encodes() -> None:
    line = (
        f"[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid {HUGE}:tid {HUGE}] x.c({HUGE}): "
        f"[client 1.2.3.4:{HUGE}] AH00128: File does not exist: /x"
    ).encode()
    record = parse_one(line)
    assert PARSE_ERROR not in record.attributes
    for key in ("process.pid", "thread.id", "client.port", "code.line.number"):
        assert record.attributes[key] == HUGE
    _encodable(record)


def test_compiled_format_numbers_beyond_64_bits_stay_text() -> None:
    parser = compile_errorlogformat("[%l] [pid %P:tid %T] [k %k] [client %a] %M")
    record = parser.parse([f"[error] [pid {HUGE}:tid {HUGE}] [k {HUGE}] [client ::1:{HUGE}] m".encode()])[0]
    assert PARSE_ERROR not in record.attributes
    assert record.attributes["process.pid"] == record.attributes["thread.id"] == HUGE
    assert record.attributes["apache.keepalives"] == record.attributes["client.port"] == HUGE
    _encodable(record)


@pytest.mark.parametrize("digit", ["\uff17", "\u0667", "\u00b2"])
def test_non_ascii_digits_are_not_numbers(digit: str) -> None:
    record = parse_one(
        f"[Wed Oct 11 14:32:52 2000] [error] [pid 1{digit}] [client 1.2.3.4:8{digit}] m".encode()
    )
    assert "process.pid" not in record.attributes
    assert split_host_port(f"1.2.3.4:8{digit}") == (f"1.2.3.4:8{digit}", None)
    assert ErrorTimeParser().parse(f"Wed Oct 11 14:32:5{digit} 2000") is None
