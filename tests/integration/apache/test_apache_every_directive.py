"""Every LogFormat and ErrorLogFormat directive, written by a real Apache, parses to the right values.

One apache2 instance writes:
- `every.log`: one LogFormat holding every directive of mod_log_config and mod_logio (httpd 2.4.x
  `log_pfn_register` calls), with every argument form and modifier: `%{c}a`, `%{c}h`, the three
  `%p` forms, the three `%P` forms, every `%{...}t` form (CLF, `sec` `msec` `usec` `msec_frac`
  `usec_frac`, `begin:`/`end:`, `%{end}t`, strftime), `%T` in s/ms/us, `%<s`/`%>s`, status
  conditions (`%404{..}i`, `%!200t`, `%!404r`), trailers and `%^FB`;
- `conditions.log`: directives whose status condition is not met, so httpd writes `-` in place of a
  time, a strftime time, a query and a request line;
- `strftime.log`: a strftime time with `%z` and a millisecond fraction;
- `error.log` with an ErrorLogFormat using every directive and every `log_ctime` form
  (`%{cuz}t`, strftime, `%t`), at `LogLevel trace8`.

We send real requests over raw sockets, hostile ones included: control characters, quotes,
backslashes, a literal `\\xfc` next to a raw 0xFC byte, non-UTF-8 and UTF-8 bytes, a tab, a request
line with spaces, a Basic-auth user name with a space. Apache is stopped, then every line of every
file must parse with no `logsidecar.parse_error`, and the values must be what we sent or what came
back (byte counts from the bytes on the wire, times from the run's window), never read back from
the line itself.

The request-line representation under test (see `parse/escape.py`): `ap_escape_logitem` writes
a raw 0xFC byte as `\\xfc` and a client's backslash as `\\\\`, so the logged `\\xfc` and
`\\\\xfc` become U+FFFD (+ `logsidecar.invalid_utf8`) and the four characters `\\xfc`
respectively; the body keeps both exactly as logged.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from logsidecar.parse import build_parser
from logsidecar.record import INVALID_UTF8, PARSE_ERROR, LogRecord
from tests.support.apache import SERVER_NAME, ApacheServer, CustomLog, find_apache_binary, status_of
from tests.support.helpers import line_count, read_lines, wait_for

pytestmark = [
    pytest.mark.apache,
    pytest.mark.skipif(find_apache_binary() is None, reason="the apache2 binary is not installed"),
]

EVERY_FORMAT = (
    '%a %{c}a %A %B %b "%{session}C" %D "%{TEST_ENV}e" "%f" %h %{c}h %H "%{X-Test}i" %k %l %L %m'
    ' "%{no-such-note}n" "%{X-Resp}o" %p %{canonical}p %{local}p %{remote}p %P %{pid}P %{tid}P %{hextid}P'
    ' "%q" "%r" "%R" %<s %>s %t %{sec}t %{msec}t %{usec}t %{msec_frac}t %{usec_frac}t %{begin:msec}t'
    ' %{end:usec}t %{end}t [%{%Y-%m-%dT%H:%M:%S %z}t] %T %{ms}T %{us}T "%u" "%U" "%v" "%V" %X'
    ' %I %O %S %^FB "%{X-Trailer}^ti" "%{X-Trailer}^to" "%404{X-Test}i" %!200t "%!404r" %{MS}T'
)
CONDITIONS_FORMAT = '%{X-Case}i %!200t %200{%Y-%m-%d}t %404q "%!200r" %404{sec}t %>s'
STRFTIME_FORMAT = "%>s [%{%d/%b/%Y:%H:%M:%S %z}t.%{msec_frac}t] %{end:%s}t %{begin:%F %T}t"

ACCESS_LOGS = {
    "every.log": EVERY_FORMAT,
    "conditions.log": CONDITIONS_FORMAT,
    "strftime.log": STRFTIME_FORMAT,
}

ERROR_LOG_FORMAT = (
    # `\ ` keeps a bracketed item one field, so an empty item drops all of it (httpd splits fields at
    # spaces: with `[k %k]` an empty %k would leave `[k` behind).
    r"[%{cuz}t] [%{%Y-%m-%d %H:%M:%S}t] [%t] [%-m:%l] [pid %P:tid %T:%{g}T] [k\ %k] [C\ %{c}L] [R\ %L]"
    r" [%v] [%V] %7F: %E: [client\ %a] [local\ %A] [peer\ %{c}a] [env\ %{TEST_ENV}e]"
    r" [note\ %{no-such-note}n] [case\ %{X-Case}i] %M% ,\ referer\ %{Referer}i"
)

TEST_HEADER = b'quote " back\\slash tab\there caf\xe9 \xc3\xa9 \\xfc-as-text'
TEST_HEADER_DECODED = 'quote " back\\slash tab\there caf\ufffd é \\xfc-as-text'
SECURE_USER = "john doe"


@dataclass
class Sent:
    """One request: the bytes we sent, what Apache answered, and what the line must decode to."""

    name: str
    raw: bytes
    status: int
    method: str | None = None
    target: str | None = None  # url.original, decoded
    request_line: str | None = None  # apache.request_line, when the line is not METHOD TARGET PROTOCOL
    logged_target: str | None = None  # the target as Apache's escaping writes it (in the body)
    invalid_utf8: bool = False
    user: str | None = None
    complete: bool = True  # Apache read the whole request: %I is exactly its length
    response: bytes = b""

    @property
    def marker(self) -> str:
        return f"case={self.name}"


def _request(name: str, target: bytes, headers: list[bytes] | None = None, method: bytes = b"GET") -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", f"Host: {SERVER_NAME}".encode(), b"Connection: close"]
    return b"\r\n".join(lines + (headers or []) + [f"X-Case: {name}".encode()]) + b"\r\n\r\n"


def _requests() -> list[Sent]:
    auth = base64.b64encode(f"{SECURE_USER}:secret".encode())
    return [
        Sent(
            "plain",
            _request(
                "plain",
                b"/index.html?case=plain",
                [b"X-Test: " + TEST_HEADER, b"Cookie: other=1; session=s3ss10n; z=2"],
            ),
            200,
            "GET",
            "/index.html?case=plain",
            invalid_utf8=True,  # the 0xE9 in X-Test
        ),
        Sent("rawbyte", _request("rawbyte", b"/caf\xfc?case=rawbyte"), 404, "GET", "/caf\ufffd?case=rawbyte",
             logged_target="/caf\\xfc?case=rawbyte", invalid_utf8=True),
        Sent("literal", _request("literal", b"/lit\\xfc?case=literal"), 404, "GET", "/lit\\xfc?case=literal",
             logged_target="/lit\\\\xfc?case=literal"),
        Sent("utf8", _request("utf8", "/h\u00e9llo-\u4e16\u754c?case=utf8".encode()), 404, "GET",
             "/h\u00e9llo-\u4e16\u754c?case=utf8", logged_target="/h\\xc3\\xa9llo-\\xe4\\xb8\\x96\\xe7\\x95\\x8c?case=utf8"),
        Sent("quote", _request("quote", b'/q"uo\\te?case=quote'), 404, "GET", '/q"uo\\te?case=quote',
             logged_target='/q\\"uo\\\\te?case=quote'),
        Sent("control", _request("control", b"/ctl\x01\x7f?case=control"), 400, "GET", "/ctl\x01\x7f?case=control",
             logged_target="/ctl\\x01\\x7f?case=control", complete=False),
        # httpd cuts a refused request line after its second space: the protocol is not logged.
        Sent("spaces", _request("spaces", b"/a b?case=spaces"), 400,
             request_line="GET /a b?case=spaces", complete=False),
        Sent("auth", _request("auth", b"/secure/?case=auth", [b"Authorization: Basic " + auth]), 401, "GET",
             "/secure/?case=auth", user=SECURE_USER),
        # An empty user name: httpd writes %u as `""`.
        Sent("emptyuser", _request("emptyuser", b"/secure/?case=emptyuser",
                                   [b"Authorization: Basic " + base64.b64encode(b":secret")]), 401, "GET",
             "/secure/?case=emptyuser", user=""),
    ]  # fmt: skip


@dataclass
class Scenario:
    log_dir: Path
    error_log: Path
    sent: list[Sent]
    port: int
    pid: int
    started_at: datetime
    stopped_at: datetime


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp_path = tmp_path_factory.mktemp("apache-every-directive")
    log_dir = tmp_path / "logs"
    apache = ApacheServer(
        tmp_path,
        custom_logs=[CustomLog(log_dir / name, fmt) for name, fmt in ACCESS_LOGS.items()],
        error_log=log_dir / "error.log",
        log_level="trace8",
        extra_modules=[
            ("headers_module", "mod_headers.so"),
            ("auth_basic_module", "mod_auth_basic.so"),
            ("authn_core_module", "mod_authn_core.so"),
            ("authn_file_module", "mod_authn_file.so"),
            ("authz_user_module", "mod_authz_user.so"),
        ],
        extra_config="\n".join(
            [
                f"ErrorLogFormat {_conf_quote(ERROR_LOG_FORMAT)}",
                'SetEnvIf Request_URI "^/" TEST_ENV=env-value',
                'Header always set X-Resp "resp value"',
                "LogIOTrackTTFB On",
                "<Location /secure/>",
                "  AuthType Basic",
                "  AuthName test",
                "  AuthBasicProvider file",
                "  AuthUserFile htdocs/.htpasswd",  # relative to ServerRoot; the workers can read it
                "  Require valid-user",
                "</Location>",
            ]
        ),
    )
    started_at = datetime.now(UTC)
    apache.start()
    (apache.docroot / ".htpasswd").write_text("someone-else:{SHA}AAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    (apache.docroot / ".htpasswd").chmod(0o644)
    sent = _requests()
    try:
        for spec in sent:
            spec.response = apache.send_raw(spec.raw)
            assert status_of(spec.response) == spec.status, (spec.name, spec.response[:300])
        for name in ACCESS_LOGS:
            wait_for(partial(_has_lines, log_dir / name, len(sent)), timeout=10, message=f"lines in {name}")
        pid = apache.pid
    finally:
        apache.stop()
    yield Scenario(log_dir, log_dir / "error.log", sent, apache.port, pid, started_at, datetime.now(UTC))


def _conf_quote(value: str) -> str:
    """httpd.conf quoting for ErrorLogFormat: only `"` is escaped; its own `\\ ` must stay."""
    return '"' + value.replace('"', '\\"') + '"'


def _has_lines(path: Path, count: int) -> bool:
    return line_count(path) >= count


def parse_file(path: Path, spec: str) -> list[LogRecord]:
    lines = read_lines(path)
    records = build_parser(spec).parse(lines)
    assert len(records) == len(lines) > 0
    return records


def record_for(records: list[LogRecord], sent: Sent) -> LogRecord:
    matching = [r for r in records if sent.marker in r.body]
    assert len(matching) == 1, (sent.name, [r.body for r in records])
    return matching[0]


def unparsed(records: list[LogRecord]) -> list[tuple[str, object]]:
    return [(r.body, r.attributes[PARSE_ERROR]) for r in records if PARSE_ERROR in r.attributes]


@pytest.mark.parametrize("log_name", list(ACCESS_LOGS))
def test_every_line_apache_wrote_parses_without_error(scenario: Scenario, log_name: str) -> None:
    records = parse_file(scenario.log_dir / log_name, "logformat:" + ACCESS_LOGS[log_name])
    assert len(records) == len(scenario.sent)
    assert unparsed(records) == []


def test_every_directive_gives_what_was_sent_and_received(scenario: Scenario) -> None:
    records = parse_file(scenario.log_dir / "every.log", "logformat:" + EVERY_FORMAT)
    for sent in scenario.sent:
        record = record_for(records, sent)
        a = record.attributes
        context = f"{sent.name}: {record.body!r} -> {a}"
        assert a.get("http.request.method") == sent.method, context
        assert a.get("url.original") == sent.target, context
        assert a.get("apache.request_line") == sent.request_line, context
        assert a.get(INVALID_UTF8, False) is sent.invalid_utf8, context
        if sent.logged_target is not None:  # the body keeps the line exactly as Apache escaped it
            assert f" {sent.logged_target} HTTP/1.1" in record.body, context
        assert a.get("user.name") == sent.user, context
        assert a["http.response.status_code"] == sent.status, context
        assert a["client.address"] == a["network.peer.address"] == a["network.local.address"] == "127.0.0.1"
        assert a["apache.remote_host"] == a["apache.peer_host"] == "127.0.0.1", context
        assert a["server.port"] == a["network.local.port"] == scenario.port, context
        assert 1024 <= a["client.port"] <= 65535, context
        assert a["process.pid"] != scenario.pid and a["process.pid"] > 0, context  # a child served it
        assert isinstance(a["thread.id"], int) and a["thread.id"] > 0, context
        assert a["server.address"] == SERVER_NAME and a["apache.server_name"] == SERVER_NAME, context
        assert a["apache.connection_status"] == "-", context  # Connection: close
        assert a["apache.keepalive_requests"] == 0, context
        assert a["apache.bytes_sent"] == len(sent.response), context
        if sent.complete:
            assert a["apache.bytes_received"] == len(sent.raw), context
        assert a["apache.bytes_transferred"] == a["apache.bytes_received"] + a["apache.bytes_sent"], context
        assert a["http.response.header.x-resp"] == "resp value", context
        assert (
            0
            <= a["http.server.request.duration"]
            < (scenario.stopped_at - scenario.started_at).total_seconds()
        )
        assert "apache.note.no-such-note" not in a and "apache.request_trailer.x-trailer" not in a, context
        if sent.status < 400:
            assert a["apache.env.TEST_ENV"] == "env-value", context
            assert a["apache.filename"].endswith("/index.html"), context
            assert a["apache.time_to_first_byte"] >= 0, context
        assert "http.request.header.x-test" not in a or sent.name == "plain", context
        assert _record_time_is_request_time(record), context
        assert scenario.started_at <= record.timestamp <= scenario.stopped_at, context
    plain = record_for(records, next(s for s in scenario.sent if s.name == "plain")).attributes
    assert plain["http.request.header.x-test"] == TEST_HEADER_DECODED
    assert plain["apache.cookie.session"] == "s3ss10n"
    assert plain["url.path"] == plain["apache.url_path"] == "/index.html"
    assert plain["url.query"] == "case=plain"
    assert plain["apache.url_query"] == "?case=plain"  # %q as written: it is not the OTel url.query


EPOCH_TIMES = re.compile(
    r"\] (\d+) (\d+) (\d+) (\d{3}) (\d{6}) "
)  # after %t: sec msec usec msec_frac usec_frac


def _record_time_is_request_time(record: LogRecord) -> bool:
    """%t with %{usec_frac}t is the request's start to the microsecond: the same instant as
    %{sec}t, %{msec}t and %{usec}t."""
    match = EPOCH_TIMES.search(record.body)
    assert match is not None and record.timestamp is not None, record.body
    sec, msec, usec = (int(match[n]) for n in (1, 2, 3))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return (
        record.timestamp == epoch + timedelta(microseconds=usec)
        and usec // 1_000_000 == sec
        and usec // 1000 == msec
    )


def test_directives_whose_condition_is_not_met_are_absent(scenario: Scenario) -> None:
    records = parse_file(scenario.log_dir / "conditions.log", "logformat:" + CONDITIONS_FORMAT)
    for sent in scenario.sent:
        record = next((r for r in records if r.body.startswith(sent.name + " ")), None)
        if record is None:  # no X-Case header parsed (the request line was refused first)
            continue
        a = record.attributes
        context = f"{sent.name}: {record.body!r} -> {a}"
        assert a["http.response.status_code"] == sent.status, context
        # 200: %!200t is `-` and %200{%Y-%m-%d}t the day alone (midnight); else the CLF time.
        assert record.timestamp is not None, context
        midnight = record.timestamp.time() == datetime.min.time()
        assert midnight is (sent.status == 200), context
        assert ("http.request.method" in a) is (sent.status != 200), context
        assert ("apache.url_query" in a) is (sent.status == 404), context  # %404q (%r has url.query)


def test_strftime_time_with_offset_and_fraction_is_the_request_time(scenario: Scenario) -> None:
    records = parse_file(scenario.log_dir / "strftime.log", "logformat:" + STRFTIME_FORMAT)
    for record in records:
        assert record.timestamp is not None
        assert scenario.started_at - timedelta(seconds=1) <= record.timestamp <= scenario.stopped_at
        assert record.timestamp.microsecond % 1000 == 0
        assert record.timestamp.utcoffset() is not None


def test_every_error_log_line_with_every_errorlogformat_directive_parses(scenario: Scenario) -> None:
    records = parse_file(scenario.error_log, "errorlogformat:" + ERROR_LOG_FORMAT)
    assert len(records) > 100  # trace8: every request logs many lines
    assert unparsed(records) == []
    # What httpd logs while it reads its configuration is in the built-in format.
    formats = [r.attributes["logsidecar.format"] for r in records]
    assert formats.count("errorlogformat") > 100 and set(formats) <= {"error", "errorlogformat"}
    for record in records:
        assert record.timestamp is not None and record.severity_text is not None, record.body
        assert scenario.started_at - timedelta(seconds=1) <= record.timestamp <= scenario.stopped_at, (
            record.body
        )
        assert record.timestamp.utcoffset() is not None
    with_client = [r for r in records if "client.address" in r.attributes]
    assert with_client and all(r.attributes["client.address"] == "127.0.0.1" for r in with_client)
    cases = {r.attributes.get("http.request.header.x-case") for r in records}
    assert {"plain", "auth"} <= cases
    with_ids = [r for r in records if "apache.log_id" in r.attributes]
    assert with_ids and all("apache.connection.log_id" in r.attributes for r in with_ids)


RAW_STDERR = [b"Traceback (most recent call last):", b"  File logger.py, line 1, in <module>"]


def test_lines_written_raw_to_apaches_stderr_are_flagged_and_the_rest_parse(tmp_path: Path) -> None:
    """A piped logger inherits httpd's stderr, which is the error log: what it prints there has no
    `[time] [level]` header. Such lines must be recognisable, and keep their text."""
    script = tmp_path / "logger.sh"
    script.write_bytes(
        b"".join(b"echo '" + line + b"' >&2\n" for line in RAW_STDERR) + b"exec cat >/dev/null\n"
    )
    apache = ApacheServer(
        tmp_path,
        custom_logs=[CustomLog(tmp_path / "unused.log", "common")],
        error_log=tmp_path / "error.log",
        log_level="info",
        extra_config=f'CustomLog "|/bin/sh {script}" common',  # run by the root parent: it can read it
    )
    apache.start()
    try:
        wait_for(
            lambda: RAW_STDERR[-1] in (tmp_path / "error.log").read_bytes(), timeout=10, message="raw lines"
        )
        assert status_of(apache.send_raw(_request("stderr", b"/nope?case=stderr"))) == 404
    finally:
        apache.stop()
    lines = read_lines(tmp_path / "error.log")
    for spec in ("error", "auto"):
        records = build_parser(spec, path=str(tmp_path / "error.log")).parse(lines)
        flagged = [
            (r.body.encode(), r.attributes[PARSE_ERROR]) for r in records if PARSE_ERROR in r.attributes
        ]
        # The logger may be started more than once (httpd's start-up reads its configuration twice),
        # and one started by the last start-up may be killed by the stop between two of its lines: the
        # flagged lines are runs of RAW_STDERR, each whole or cut short, at least one whole.
        assert set(flagged) == {(line, "no [time] [level] header") for line in RAW_STDERR}, spec
        runs: list[list[bytes]] = []
        for body, _ in flagged:
            if body == RAW_STDERR[0]:
                runs.append([])
            runs[-1].append(body)  # IndexError: a run that does not start with the first line
        assert all(run == list(RAW_STDERR[: len(run)]) for run in runs), (spec, runs)
        assert list(RAW_STDERR) in runs, (spec, runs)
        for record in records:
            if PARSE_ERROR in record.attributes:
                assert record.timestamp is None and record.severity_text is None
            else:
                assert record.timestamp is not None and record.severity_text is not None, record.body
    assert len(records) > len(RAW_STDERR)  # and Apache's own lines (start, the 404 at info ...) are there
