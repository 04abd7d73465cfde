"""A file whose lines mostly fail to parse is loud: `tail` warns (the file, the share, an example,
the closest format and where it diverged), /healthz fails with the reason "parse" (/readyz does
not: the lines are still forwarded, raw), and a metric says so, until the lines parse again.

Real parts: a real apache2 writes two access logs, one with a custom LogFormat `auto` does not know
(combined, then `%D` and an unquoted Host header) and one `combined`; the real `logsidecar tail`
process follows the custom one; /healthz and /metrics are read over HTTP. The recovery appends
lines Apache wrote to the combined log.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from logsidecar.pipeline.parse_watch import FAILING_SHARE, MIN_LINES
from tests.support.apache import ApacheFactory, CustomLog, find_apache_binary, status_of
from tests.support.helpers import read_lines
from tests.support.http_probe import http_json, metric_value
from tests.support.otlp_receiver import free_port, wait_for
from tests.support.tail_command import TailProcess

pytestmark = [
    pytest.mark.apache,
    pytest.mark.skipif(find_apache_binary() is None, reason="the apache2 binary is not installed"),
]

CUSTOM = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %D %{Host}i'
CONDITION = 'logsidecar_health_condition{condition="parse"}'


def test_a_log_that_mostly_does_not_parse_is_warned_about_and_degrades_healthz(
    apache_factory: ApacheFactory, tmp_path: Path
) -> None:
    custom, combined = tmp_path / "custom_access.log", tmp_path / "combined_access.log"
    apache = apache_factory(custom_logs=[CustomLog(custom, CUSTOM), CustomLog(combined, "combined")])
    requests = MIN_LINES + 5
    for n in range(requests):
        assert status_of(apache.request("GET", f"/?n={n}")) == 200
    wait_for(lambda: len(read_lines(custom)) == requests, 10, what="apache writing every line")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tail = TailProcess(
        ["--http-addr", f"127.0.0.1:{port}", str(custom)], tmp_path / "state", tmp_path / "tail.stderr"
    ).start()
    try:
        wait_for(lambda: tail.count() >= requests, 30, what="every line forwarded (raw)")
        [warning] = wait_for(lambda: tail.events("parse_failing"), 30, what="the parse_failing warning")
        status, verdict = http_json(base + "/healthz")
        assert status == 503 and verdict["reasons"] == [f"parse: recent lines mostly not parsed in {custom}"]
        assert http_json(base + "/readyz")[0] == 200
        assert metric_value(base, CONDITION) == 1

        # The lines parse again (more of them than the failing ones): health comes back.
        good = read_lines(combined)
        with custom.open("ab") as handle:
            handle.write(b"".join(line + b"\n" for line in good * 2))
        wait_for(lambda: tail.events("parse_recovered"), 30, what="parse_recovered")
        assert http_json(base + "/healthz")[0] == 200 and metric_value(base, CONDITION) == 0
    finally:
        code, _ = tail.terminate(timeout=30)
    assert code == 0, tail.stderr_text()

    assert warning["level"] == "warning" and warning["path"] == str(custom)
    assert warning["unparsed_share"] > FAILING_SHARE and warning["recent_lines"] >= MIN_LINES
    first = read_lines(custom)[0].decode()
    assert warning["example"] in {line.decode() for line in read_lines(custom)[:requests]}, first
    assert warning["reason"] == "no known format matched" and warning["format"] == "auto"
    assert warning["closest_format"] in ("combined+%D", "combinedio")
    assert warning["diverged"].startswith("does not match LogFormat")
    assert "--format 'logformat:" in warning["fix"]
    assert len(tail.events("parse_failing")) == 1  # said once, not per batch
    assert [e["format"] for e in tail.events("format_detected")] == ["combined"]  # once it could
