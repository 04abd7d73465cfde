"""`logsidecar tail` following a real Apache httpd under `ab` load while real logrotate renames its
access log and Apache is gracefully restarted (SIGUSR1, what `apache2 -k graceful` sends) after each
rotation. Old workers keep finishing requests into the renamed file, so the tailer must drain it.

Every request's line (made unique by mod_unique_id's %{UNIQUE_ID}e) must come out exactly once,
parsed by the LogFormat compiler without a parse error; what came out must equal, as a multiset, the
lines in every access log file on disk.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.apache import ApacheFactory, CustomLog
from tests.support.helpers import wait_for
from tests.support.tail_command import TailProcess, logrotate, write_logrotate_conf

LOGFORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %{UNIQUE_ID}e'
ROTATIONS = 6


def _disk_lines(logs: Path) -> Counter[str]:
    lines: Counter[str] = Counter()
    for path in logs.glob("access.log*"):
        lines.update(path.read_text(errors="backslashreplace").splitlines())
    return lines


@pytest.mark.apache
@pytest.mark.parametrize("watch", ["inotify", "poll"])
def test_apache_under_ab_load_with_logrotate_and_graceful_every_request_arrives_once(
    tmp_path: Path, apache_factory: ApacheFactory, watch: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    apache = apache_factory(
        custom_logs=[CustomLog(log, LOGFORMAT)],
        extra_modules=[("unique_id_module", "mod_unique_id.so")],
    )
    conf = tmp_path / "logrotate.conf"
    write_logrotate_conf(conf, log, mode="create", rotate=ROTATIONS + 5)
    tail = TailProcess(
        ["--watch", watch, "--poll-interval", "100ms", "--format", f"logformat:{LOGFORMAT}", str(log)],
        tmp_path / "state",
        tmp_path / "tail.stderr",
    ).start()
    load = subprocess.Popen(
        ["ab", "-q", "-t", "60", "-n", "1000000", "-c", "4", apache.url("/index.html")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: tail.count() > 0, timeout=30, message="first access-log line through the tailer")
        for _ in range(ROTATIONS):
            time.sleep(0.5)  # the pace of rotations (ab keeps the load on), not a synchronisation
            logrotate(conf, tmp_path / "logrotate.state")
            apache.graceful()
        load.send_signal(signal.SIGINT)  # ab prints its report on SIGINT, then exits
        report, _ = load.communicate(timeout=30)
        apache.graceful(wait_for_old_workers=True)  # nothing writes to any access log after this
        disk = _disk_lines(logs)
        wait_for(
            lambda: tail.count() >= sum(disk.values()), timeout=90, message="every line on disk delivered"
        )
    finally:
        if load.poll() is None:
            load.kill()
        code, _took = tail.terminate()
    received = Counter(r.record["body"] for r in tail.snapshot())
    completed = re.search(r"Complete requests:\s+(\d+)", report)
    unique_ids = Counter(body.rsplit(" ", 1)[1] for body in received.elements())
    parse_errors = [r.record for r in tail.snapshot() if "logsidecar.parse_error" in r.record["attributes"]]
    print(
        f"apache {watch}: ab completed={completed.group(1) if completed else '?'} on_disk={sum(disk.values())} "
        f"received={sum(received.values())} rotations={ROTATIONS} lost={sum((disk - received).values())} "
        f"duplicated={sum((received - disk).values())}"
    )
    assert code == 0
    assert len(list(logs.glob("access.log.*"))) == ROTATIONS
    assert received == disk
    assert max(unique_ids.values()) == 1  # each request's line exactly once
    assert completed is not None and int(completed.group(1)) <= sum(disk.values())
    assert parse_errors == []
    sample = tail.snapshot()[-1].record["attributes"]
    assert sample["http.request.method"] == "GET" and sample["url.path"] == "/index.html"
    assert sample["http.response.status_code"] == 200
