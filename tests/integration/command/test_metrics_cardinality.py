"""Self-metrics under real dated rotation: Apache's own `rotatelogs` writes a new dated file every
second (access.log.<timestamp>, the rotatelogs/cronolog layout), a real `logsidecar tail` follows the
pattern, and /metrics is scraped over HTTP. The read series are per configured input, so however many
dated names went by, there is one series per pattern, and it counts every line."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.helpers import wait_for
from tests.support.http_probe import scrape
from tests.support.numbered_lines import access_line
from tests.support.otlp_receiver import free_port
from tests.support.tail_command import start_tail

pytestmark = pytest.mark.skipif(
    shutil.which("rotatelogs") is None, reason="rotatelogs (apache2-utils) needed"
)


def test_dated_rotation_leaves_one_series_per_input_pattern(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    pattern = str(logs / "access.log.*")
    port = free_port()
    process = start_tail(tmp_path, "--http-addr", f"127.0.0.1:{port}", "--format", "combined", pattern)
    # A new dated file every second, as `CustomLog "|rotatelogs access.log.%Y%m%d-%H%M%S 1"` would.
    writer = subprocess.Popen(
        ["rotatelogs", "-f", str(logs / "access.log.%Y%m%d-%H%M%S"), "1"], stdin=subprocess.PIPE
    )
    assert writer.stdin is not None
    total = 0
    try:
        before = scrape(port) if wait_for(lambda: _serving(port), 20, message="/metrics") else {}
        # Declared at zero before the first line: the series exists, with the pattern as its label.
        assert before[("logsidecar_lines_read_total", (("input", pattern),))] == 0
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            writer.stdin.write((access_line(total) + "\n").encode())
            writer.stdin.flush()
            total += 1
            time.sleep(0.05)
        writer.stdin.close()
        writer.wait(10)
        names = sorted(p.name for p in logs.iterdir())
        assert len(names) >= 5, names  # the rotation really happened, under as many dated names
        wait_for(lambda: process.count() == total, 30, message=f"all {total} lines")
        metrics = scrape(port)
    finally:
        if writer.poll() is None:
            writer.kill()
        code, _ = process.terminate()
    assert code == 0
    read = {labels: v for (name, labels), v in metrics.items() if name == "logsidecar_lines_read_total"}
    assert read == {(("input", pattern),): total}
    behind = {labels for (name, labels), _ in metrics.items() if name == "logsidecar_bytes_behind"}
    assert behind == {(("input", pattern),)}
    text_labels = {value for (_, labels) in metrics for _, value in labels}
    assert not [n for n in names if any(n in str(v) for v in text_labels)]  # no dated name as a label


def _serving(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True
