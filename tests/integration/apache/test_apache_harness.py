"""The Apache harness itself: a real apache2 serves over loopback, writes the configured logs, and
reopens them on a graceful restart (what the rotation tests depend on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.apache import ApacheFactory, ApacheServer, find_apache_binary, status_of
from tests.support.helpers import line_count, read_lines, wait_for

pytestmark = pytest.mark.apache


def test_apache_serves_over_ipv4_and_writes_the_access_and_error_logs(
    apache_factory: ApacheFactory, tmp_path: Path
) -> None:
    access_log = tmp_path / "logs" / "access.log"
    apache = apache_factory(custom_logs=[(access_log, '%h "%r" %>s %b')], log_level="info")

    response = apache.request("GET", "/index.html")
    assert status_of(response) == 200
    assert response.endswith(b"\r\n\r\nhello from apache\n")
    not_found = apache.request("GET", "/no-such-file")
    assert status_of(not_found) == 404
    not_found_size = len(not_found.split(b"\r\n\r\n", 1)[1])

    wait_for(lambda: line_count(access_log) == 2, timeout=5)
    assert read_lines(access_log) == [
        b'127.0.0.1 "GET /index.html HTTP/1.1" 200 18',
        b'127.0.0.1 "GET /no-such-file HTTP/1.1" 404 %d' % not_found_size,
    ]
    error_text = apache.error_log.read_text()
    assert "AH00489: Apache/2.4" in error_text
    assert f"AH00128: File does not exist: {apache.docroot}/no-such-file" in error_text


def test_apache_serves_over_ipv6_loopback(apache_factory: ApacheFactory, tmp_path: Path) -> None:
    access_log = tmp_path / "access.log"
    apache = apache_factory(custom_logs=[(access_log, "%a %>s")])
    if not apache.ipv6:
        pytest.skip("this host has no IPv6 loopback")
    assert apache.url("/x", family="ipv6") == f"http://[::1]:{apache.port}/x"
    assert status_of(apache.request("GET", "/", family="ipv6")) == 200
    wait_for(lambda: read_lines(access_log) == [b"::1 200"], timeout=5)


def test_graceful_restart_reopens_a_renamed_log(apache_factory: ApacheFactory, tmp_path: Path) -> None:
    access_log = tmp_path / "access.log"
    apache = apache_factory(custom_logs=[(access_log, "%U")])
    apache.request("GET", "/before")
    wait_for(lambda: line_count(access_log) == 1, timeout=5)

    rotated = tmp_path / "access.log.1"
    access_log.rename(rotated)
    apache.request("GET", "/still-old-file")
    wait_for(lambda: line_count(rotated) == 2, timeout=5)

    apache.graceful(wait_for_old_workers=True)
    assert access_log.exists()
    apache.request("GET", "/after")
    wait_for(lambda: line_count(access_log) == 1, timeout=5)
    assert read_lines(rotated) == [b"/before", b"/still-old-file"]
    assert read_lines(access_log) == [b"/after"]


def test_stop_ends_the_process_and_removes_the_runtime_dir(tmp_path: Path) -> None:
    if find_apache_binary() is None:
        pytest.skip("the apache2 binary is not installed (apt-get install apache2)")
    with ApacheServer(tmp_path) as apache:
        process = apache.process
        runtime_dir = apache.runtime_dir
        assert apache.running
    assert process is not None and process.returncode is not None
    assert runtime_dir is not None and not runtime_dir.exists()
