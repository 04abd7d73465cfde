"""`auto` recognises the presets with the trailing fields custom LogFormats most often add, on lines
written by a real apache2 configured with each LogFormat, and names the variant it chose.

One Apache instance writes one access log per LogFormat (every variant `auto` knows, plus `%T` and
`%{ms}T`, which look like `%D`), we send real requests (with a proxy's X-Forwarded-For, a referer,
a user agent), stop Apache, and parse every file with `auto`. The expected name comes from the
LogFormat we configured, never from the lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from logsidecar.parse import build_parser
from logsidecar.parse.detect import VARIANTS, variant_logformat
from logsidecar.record import FORMAT, PARSE_ERROR
from tests.support.apache import ApacheFactory, CustomLog, find_apache_binary, status_of
from tests.support.helpers import read_lines

pytestmark = [
    pytest.mark.apache,
    pytest.mark.skipif(find_apache_binary() is None, reason="the apache2 binary is not installed"),
]

COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"'
# LogFormat -> the name `auto` must give it
EXPECTED: dict[str, str] = {str(variant_logformat(name)): name for name in VARIANTS}
EXPECTED[COMBINED + " %T"] = "combined+%D"  # one integer: the same shape as %D (INTEGER_TIME_NOTE)
EXPECTED[COMBINED + " %{ms}T"] = "combined+%D"
REQUESTS = 6


def test_auto_names_the_variant_of_every_logformat_apache_writes(
    apache_factory: ApacheFactory, tmp_path: Path
) -> None:
    logs = {fmt: tmp_path / f"access-{n:02d}.log" for n, fmt in enumerate(EXPECTED)}
    apache = apache_factory(
        custom_logs=[CustomLog(path, fmt) for fmt, path in logs.items()], log_level="warn"
    )  # started by the factory
    headers = [
        ("X-Forwarded-For", "203.0.113.7, 198.51.100.2"),
        ("Referer", "http://referer.test/page?q=1"),
        ("User-Agent", "Mozilla/5.0 (X11; Linux) test"),
    ]
    for n in range(REQUESTS):
        target = f"/?n={n}" if n % 2 else "/missing.html"
        assert status_of(apache.request("GET", target, headers=headers)) in (200, 404)
    apache.stop()

    chosen: dict[str, set[str]] = {}
    for fmt, path in logs.items():
        lines = read_lines(path)
        assert len(lines) == REQUESTS, (fmt, lines)
        records = build_parser("auto", path=str(path)).parse(lines)
        unparsed = [(r.body, r.attributes[PARSE_ERROR]) for r in records if PARSE_ERROR in r.attributes]
        assert unparsed == [], (fmt, unparsed[:2])
        chosen[fmt] = {r.attributes[FORMAT] for r in records}
    assert chosen == {fmt: {name} for fmt, name in EXPECTED.items()}
