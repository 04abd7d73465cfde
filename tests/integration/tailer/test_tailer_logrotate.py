"""Real logrotate (Debian's binary, forced with -f) rotating under a fast writer thread: the tailer
must deliver the exact multiset of written lines for `create` (rename) and `copytruncate` modes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from logsidecar.tail.options import TailOptions, WatchMode
from tests.support.tailer_harness import (
    LineWriter,
    assert_exact_once_arrived,
    async_test,
    reopen,
    run_writer,
    running,
)

pytestmark = pytest.mark.skipif(shutil.which("logrotate") is None, reason="needs Debian's logrotate")

CONFIGS = {
    # rename-and-create, old generations shifted and deleted after 2: only our descriptors keep them
    "create": "rotate 2\ncreate 0644\nmissingok\nnocompress\n",
    "copytruncate": "rotate 3\ncopytruncate\nmissingok\ncompress\ndelaycompress\n",
}


def logrotate(directory: Path, path: Path, mode: str) -> None:
    conf = directory / f"{mode}.conf"
    if not conf.exists():
        conf.write_text(f"{path} {{\n{CONFIGS[mode]}}}\n")
    subprocess.run(
        ["logrotate", "-f", "-s", str(directory / "logrotate.state"), str(conf)],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.mark.parametrize("mode", ["create", "copytruncate"])
@pytest.mark.parametrize("watch", [WatchMode.INOTIFY, WatchMode.POLL])
@async_test
async def test_real_logrotate_loses_and_duplicates_nothing(
    tmp_path: Path, mode: str, watch: WatchMode
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    path = logs / "access.log"

    def rotate(path: Path, fd: int, generation: int) -> int:
        logrotate(tmp_path, path, mode)
        # `create` needs the writer to reopen (what `apachectl graceful` in postrotate does).
        return reopen(path, fd) if mode == "create" else fd

    writer = LineWriter(path, lines_per_s=3000, duration_s=2.5, rotate=rotate, rotate_every_s=0.35)
    options = TailOptions(include=(str(path),), watch=watch, poll_interval_s=0.05, discover_interval_s=0.2)
    async with running(options) as (tailer, collector, log):
        await run_writer(writer)
        await assert_exact_once_arrived(collector, writer.expected(), 15)
        assert writer.rotations >= 5
        counters = tailer.stats()["counters"]
        if mode == "copytruncate":
            assert counters["copytruncate_recovered"] == len(log.named("file_truncated")) >= 1
        assert counters["bytes_abandoned"] == 0
    assert sorted(os.listdir(logs))[0] == "access.log"
