"""otlp_connection: our own Retry-After parser, retryable statuses, HTTP POST and gRPC credentials
(replacing the exporter packages' private helpers). HTTP goes to a real server on loopback."""

from __future__ import annotations

import email.utils
import http.server
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests

from logsidecar.sinks.otlp_connection import USER_AGENT, HttpPoster, grpc_credentials, retry_after_s
from logsidecar.sinks.otlp_settings import OtlpProtocol, OtlpSettings
from logsidecar.sinks.otlp_transport import HttpTransport, Misconfigured, Rejected, Retryable

NOW = 1_700_000_000.0  # a fixed "now" for HTTP-date arithmetic


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),  # not RFC 9110 delay-seconds, but a server that sends it still means "wait"
        ("-3", 0.0),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_delay_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_s(value, now=NOW) == expected


@pytest.mark.parametrize("ahead_s", [1, 30, 3600])
def test_retry_after_http_date_is_the_time_left_until_that_date(ahead_s: int) -> None:
    # IMF-fixdate, the form RFC 9110 says senders use.
    assert retry_after_s(email.utils.formatdate(NOW + ahead_s, usegmt=True), now=NOW) == ahead_s


@pytest.mark.parametrize(
    "date",
    [
        "Tue, 14 Nov 2023 22:13:20 GMT",  # IMF-fixdate
        "Tuesday, 14-Nov-23 22:13:20 GMT",  # obsolete RFC 850 form, which recipients must accept
        "Tue Nov 14 22:13:20 2023",  # obsolete asctime form, no zone: GMT per RFC 9110
    ],
)
def test_retry_after_accepts_the_three_http_date_forms(date: str) -> None:
    assert retry_after_s(date, now=NOW - 10) == 10.0  # 2023-11-14 22:13:20 UTC is NOW


def test_retry_after_a_date_in_the_past_means_now() -> None:
    assert retry_after_s(email.utils.formatdate(NOW - 60, usegmt=True), now=NOW) == 0.0


# --- HTTP, against a real server --------------------------------------------------------------------


class _Collector(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the status named in the path (/503), echoing what it was sent."""

    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(dict(self.headers))
        status = int(self.path.strip("/").split("/")[0] or 200)
        self.send_response(status)
        if status in (429, 503):
            self.send_header("Retry-After", "2")
        if status in (301, 302, 307, 308):
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        body = b"" if status < 300 else b"collector says no"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def collector() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _transport(url: str) -> HttpTransport:
    return HttpTransport(
        OtlpSettings(endpoint=url, protocol=OtlpProtocol.HTTP_PROTOBUF, headers={"x-k": "v"})
    )


# The OTLP/HTTP specification lists the retryable statuses (429, 502, 503, 504) and calls every other
# error final. We drop data only on a malformed answer (400) and split on 413; an authentication or
# endpoint error is a configuration error (kept, retried, reported); any other status is retried:
# nothing in it says the data is bad (issue 13: a wrong token must never drop data).
DROPPED = {400}
TOO_LARGE = {413}
MISCONFIGURED = {401: "Authorization", 403: "Authorization", 404: "endpoint"}
SERVER_DELAY = {429, 503}  # the test collector sends Retry-After: 2 with these


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 413, 429, 500, 501, 502, 503, 504, 507])
def test_http_status_decides_between_drop_split_configuration_error_and_retry(
    collector: str, status: int
) -> None:
    outcome = _transport(f"{collector}/{status}").export(b"payload", 5.0)
    if status in DROPPED | TOO_LARGE:
        assert isinstance(outcome, Rejected), outcome
        assert outcome.too_large is (status in TOO_LARGE)
    elif status in MISCONFIGURED:
        assert isinstance(outcome, Misconfigured), outcome
        assert MISCONFIGURED[status] in outcome.fix
    else:
        assert isinstance(outcome, Retryable), outcome
        assert outcome.delay_s == (2.0 if status in SERVER_DELAY else None)
    assert f"HTTP {status}" in outcome.reason
    assert outcome.detail == "collector says no"


def test_http_redirect_is_not_followed_and_is_a_configuration_error(collector: str) -> None:
    _Collector.seen.clear()
    outcome = _transport(f"{collector}/307").export(b"payload", 5.0)
    assert isinstance(outcome, Misconfigured) and "HTTP 307" in outcome.reason
    assert "endpoint" in outcome.fix
    assert len(_Collector.seen) == 1  # the payload went nowhere else


def test_http_post_sends_our_user_agent_and_the_configured_headers(collector: str) -> None:
    _Collector.seen.clear()
    outcome = _transport(f"{collector}/200").export(b"payload", 5.0)
    assert not isinstance(outcome, Retryable | Rejected)
    headers = {k.lower(): v for k, v in _Collector.seen[-1].items()}
    assert headers["user-agent"] == USER_AGENT
    assert headers["x-k"] == "v"
    assert headers["content-type"] == "application/x-protobuf"


def test_http_post_returns_the_error_instead_of_raising() -> None:
    poster = HttpPoster(requests.Session())
    try:
        # Port 9 (discard) on loopback: nothing listens there in the test environment.
        result = poster.post("http://127.0.0.1:9/v1/logs", headers={}, data=b"x", timeout_s=2.0)
    finally:
        poster.close()
    assert result.status is None
    assert isinstance(result.error, requests.ConnectionError)


# --- gRPC credentials ---------------------------------------------------------------------------------


# Credentials that work are proven end to end by tests/integration/otlp/test_otlp_sink.py (TLS, mutual TLS).


def test_grpc_credentials_with_an_unreadable_file_warn_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with caplog.at_level(logging.WARNING, logger="logsidecar.sinks.otlp_connection"):
        credentials = grpc_credentials(str(missing), None, None)
    assert isinstance(credentials, grpc.ChannelCredentials)
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot read the OTLP CA certificate file {missing}: No such file or directory; going on without it"
    ]
    assert all(r.exc_info is None for r in caplog.records)  # a line, not a traceback


def test_requests_is_imported_without_a_character_detector_that_stays_importable() -> None:
    """In a fresh interpreter (this one may hold requests already): requests loads without
    charset_normalizer or chardet and without a warning (-W error), and a later import of the
    detector by anyone else still works."""
    script = textwrap.dedent(
        """
        import sys
        from logsidecar.sinks.otlp_connection import import_requests
        requests = import_requests()
        assert requests.Session, requests
        assert not [m for m in sys.modules if m.startswith(("charset_normalizer", "chardet"))], sys.modules
        import charset_normalizer
        assert charset_normalizer.from_bytes
        assert import_requests() is requests
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
