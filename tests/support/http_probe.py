"""Asking a running logsidecar's HTTP endpoint (/healthz, /readyz, /livez, /metrics) from a test."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def http_get(url: str) -> tuple[int, str]:
    """(status, body) of GET `url`; an HTTP error status is an answer, not an exception. Raises
    (URLError: timed out) when nothing answers within 5 s."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def http_json(url: str) -> tuple[int, Any]:
    """(status, parsed JSON body): the probes answer JSON saying why, on 200 and 503 alike."""
    status, body = http_get(url)
    return status, json.loads(body)


def metric_value(base: str, series: str) -> float | None:
    """The value of the /metrics line that starts with `series` exactly (name and labels), or None."""
    _status, text = http_get(base + "/metrics")
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
