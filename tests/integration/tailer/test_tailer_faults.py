"""Bad conditions: said once, retried, never fatal, recovered when fixed. Hostile content: long
lines, invalid UTF-8, NUL runs, partial lines. Many files. An idle tailer sleeps."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.options import ReadBatch, TailOptions, WatchMode
from logsidecar.tail.tailer import Tailer
from tests.support.paths import REPO_ROOT
from tests.support.tailer_harness import Collector, async_test, numbered_line, running, wait_for


def options(*include: str, **extra: object) -> TailOptions:
    values: dict[str, object] = {
        "watch": WatchMode.INOTIFY,
        "discover_interval_s": 0.1,
        "poll_interval_s": 0.05,
    }
    values.update(extra)
    return TailOptions(include=include, **values)  # type: ignore[arg-type]


PERMISSION_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from pathlib import Path
    from logsidecar import events
    from logsidecar.tail.options import TailOptions, WatchMode
    from logsidecar.tail.tailer import Tailer

    directory = Path(sys.argv[1])
    log = directory / "access.log"
    seen = []
    events.subscribe(lambda e, f: seen.append(e.value))

    async def main():
        lines = []
        tailer = Tailer(TailOptions(include=(str(log),), watch=WatchMode.INOTIFY, discover_interval_s=0.05))
        async def emit(batch):
            lines.extend(line.decode() for line in batch.lines)
        task = asyncio.create_task(tailer.run(emit))
        await asyncio.sleep(1.0)  # ~20 discovery cycles against an unreadable file
        errors_while_denied = seen.count("file_error")
        os.chmod(log, 0o644)
        deadline = time.monotonic() + 10
        while len(lines) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await tailer.stop()
        await task
        print(json.dumps({"errors_while_denied": errors_while_denied, "lines": lines,
                          "recovered": seen.count("file_recovered")}))

    asyncio.run(main())
    """
)


@pytest.mark.skipif(shutil.which("capsh") is None, reason="needs capsh to drop CAP_DAC_OVERRIDE")
def test_permission_denied_is_reported_once_and_recovers_when_fixed() -> None:
    # As root a chmod 000 file is still readable: drop the override capabilities for real (capsh).
    directory = Path(tempfile.mkdtemp(prefix="logsidecar-perm-"))
    try:
        log = directory / "access.log"
        log.write_bytes(b"one\ntwo\nthree\n")
        os.chmod(log, 0)
        script = directory / "scenario.py"
        script.write_text(PERMISSION_SCRIPT)
        command = f"{sys.executable} {script} {directory}"
        result = subprocess.run(
            ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )
        assert result.returncode == 0, result.stderr
        outcome = json.loads(result.stdout.strip().splitlines()[-1])
        assert outcome == {"errors_while_denied": 1, "lines": ["one", "two", "three"], "recovered": 1}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@async_test
async def test_file_replaced_by_directory_is_reported_once_and_recovers(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"a\n")
    async with running(options(str(log))) as (_t, collector, events_log):
        await wait_for(lambda: collector.lines == [b"a"])
        log.unlink()
        log.mkdir()
        await wait_for(lambda: len(events_log.named("file_refused")) == 1)
        await asyncio.sleep(0.5)  # several discovery cycles: still one event
        [refused] = events_log.named("file_refused")
        assert (refused["reason"], refused["path"]) == ("not_regular", str(log))
        assert "directory" in str(refused["detail"])
        log.rmdir()
        log.write_bytes(b"b\n")
        await wait_for(lambda: collector.lines == [b"a", b"b"])
        assert len(events_log.named("file_recovered")) == 1


@pytest.mark.parametrize("mode", [WatchMode.INOTIFY, WatchMode.POLL])
@async_test
async def test_vanished_directory_is_reported_once_and_followed_again_when_back(
    tmp_path: Path, mode: WatchMode
) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    (directory / "access.log").write_bytes(b"first\n")
    async with running(options(str(directory / "access.log"), watch=mode)) as (_t, collector, events_log):
        await wait_for(lambda: collector.lines == [b"first"])
        shutil.rmtree(directory)
        await wait_for(lambda: len(events_log.named("file_error")) == 1)
        await asyncio.sleep(0.5)
        assert len(events_log.named("file_error")) == 1
        directory.mkdir()
        (directory / "access.log").write_bytes(b"second\n")
        await wait_for(lambda: collector.lines == [b"first", b"second"])


@async_test
async def test_missing_path_says_file_waiting_once_then_follows_it(tmp_path: Path) -> None:
    log = tmp_path / "later" / "access.log"
    async with running(options(str(log))) as (_t, collector, events_log):
        await asyncio.sleep(0.5)
        assert len(events_log.named("file_waiting")) == 1
        assert not events_log.named("file_error")
        log.parent.mkdir()
        log.write_bytes(b"hello\n")
        await wait_for(lambda: collector.lines == [b"hello"])
        assert len(events_log.named("file_waiting")) == 1


@async_test
async def test_long_line_is_truncated_flagged_and_the_rest_skipped(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    ten_mib = b"A" * (10 * 1024 * 1024)
    log.write_bytes(b"before\n" + ten_mib + b"\nafter\n")
    async with running(options(str(log), max_line_bytes=64 * 1024)) as (tailer, collector, events_log):
        await wait_for(lambda: len(collector.lines) == 3)
        assert collector.lines == [b"before", b"A" * 64 * 1024, b"after"]
        flagged = [(i, batch.lines[i][:1]) for batch in collector.batches for i in batch.truncated]
        assert flagged == [(1, b"A")] or flagged == [(0, b"A")]
        assert len(events_log.named("line_truncated")) == 1
        assert tailer.stats()["counters"]["truncated_lines"] == 1
        last = [b for b in collector.batches if b.lines[-1] == b"after"][0]
        assert last.end_offset == log.stat().st_size


@async_test
async def test_invalid_utf8_and_nul_runs_are_bytes_preserved_and_nuls_skipped(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"caf\xe9 \xff\xfe\n" + b"\x00" * 5000 + b"after hole\n" + b"x\x00\x00y\n")
    async with running(options(str(log))) as (tailer, collector, events_log):
        await wait_for(lambda: len(collector.lines) == 3)
        assert collector.lines == [b"caf\xe9 \xff\xfe", b"after hole", b"xy"]
        assert tailer.stats()["counters"]["nul_runs"] == 2
        assert events_log.named("nul_run_skipped")


@async_test
async def test_partial_last_line_waits_then_is_flushed_and_its_rest_is_a_new_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"complete\npart")
    async with running(options(str(log), partial_line_flush_s=0.5)) as (_t, collector, _l):
        await wait_for(lambda: collector.lines == [b"complete"])
        with open(log, "ab") as f:
            f.write(b"ial")
        await wait_for(lambda: len(collector.lines) == 2, 5)
        assert collector.lines == [b"complete", b"partial"]
        assert collector.batches[-1].end_offset == len(b"complete\npartial")
        with open(log, "ab") as f:
            f.write(b" rest\nnext\n")
        await wait_for(lambda: len(collector.lines) == 4)
        assert collector.lines[2:] == [b" rest", b"next"]


@async_test
async def test_two_hundred_files_at_once(tmp_path: Path) -> None:
    expected: list[bytes] = []
    for n in range(200):
        lines = [numbered_line(f"F{n:03d}", i) for i in range(50)]
        (tmp_path / f"site{n:03d}.log").write_bytes(b"".join(lines))
        expected.extend(line.rstrip(b"\n") for line in lines)
    async with running(options(str(tmp_path / "**" / "*.log"))) as (tailer, collector, _l):
        await wait_for(lambda: len(collector.lines) >= len(expected), 20)
        for n in range(200):
            with open(tmp_path / f"site{n:03d}.log", "ab") as f:
                f.write(numbered_line(f"F{n:03d}", 50))
            expected.append(numbered_line(f"F{n:03d}", 50).rstrip(b"\n"))
        await wait_for(lambda: len(collector.lines) >= len(expected), 20)
        await asyncio.sleep(0.2)
        assert sorted(collector.lines) == sorted(expected)
        assert len(tailer.stats()["files"]) == 200


@async_test
async def test_idle_tailer_sleeps_instead_of_spinning(tmp_path: Path) -> None:
    for n in range(20):
        (tmp_path / f"idle{n}.log").write_bytes(b"x\n")
    opts = options(str(tmp_path / "*.log"), discover_interval_s=1.0, safety_poll_interval_s=2.0)
    async with running(opts) as (tailer, collector, _l):
        await wait_for(lambda: len(collector.lines) == 20)
        before = tailer.stats()["counters"]["cycles"]
        await asyncio.sleep(3.0)
        cycles = tailer.stats()["counters"]["cycles"] - before
        # wakes for discovery (1 s) and checkpoints (1 s) only: a handful of cycles, not thousands
        # (idle CPU itself is measured by benchmarks/tail_throughput.py, not asserted here)
        assert cycles <= 10, cycles


@async_test
async def test_blocked_emit_stops_reading_and_the_file_is_the_buffer(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    lines = [numbered_line("B", i) for i in range(20000)]
    log.write_bytes(b"".join(lines))
    gate = asyncio.Event()
    received: list[bytes] = []

    async def slow_emit(batch: ReadBatch) -> None:
        received.extend(batch.lines)
        await gate.wait()

    tailer = Tailer(options(str(log), read_chunk_bytes=4096, max_batch_lines=10))
    task = asyncio.create_task(tailer.run(slow_emit))
    await wait_for(lambda: len(received) == 10)
    await asyncio.sleep(0.3)
    [state] = tailer.stats()["files"]
    assert len(received) == 10  # nothing more was taken while emit was blocked
    assert state["read_offset"] <= 4096 < log.stat().st_size
    gate.set()
    await wait_for(lambda: len(received) == 20000, 20)
    assert received == [line.rstrip(b"\n") for line in lines]
    await tailer.stop()
    await task


@async_test
async def test_a_line_cut_by_a_chunk_boundary_is_never_flushed_as_partial_under_backpressure(
    tmp_path: Path,
) -> None:
    """A last line without newline is flushed after partial_line_flush_s only when it is the end of
    the file. A line cut by a read chunk's boundary, its rest already in the file but not yet read
    because emit was blocked longer than the flush delay, must not go out as two records."""
    log = tmp_path / "access.log"
    lines = [numbered_line("C", i) for i in range(400)]  # 19-78 bytes: boundaries cut lines
    log.write_bytes(b"".join(lines))
    flush_s = 0.05
    received: list[bytes] = []

    async def slow_emit(batch: ReadBatch) -> None:
        received.extend(batch.lines)
        await asyncio.sleep(flush_s * 3)  # every batch outlasts the flush delay

    tailer = Tailer(options(str(log), read_chunk_bytes=1024, partial_line_flush_s=flush_s))
    task = asyncio.create_task(tailer.run(slow_emit))
    await wait_for(lambda: len(received) >= len(lines), 30)
    await tailer.stop()
    await task
    assert received == [line.rstrip(b"\n") for line in lines]


@async_test
async def test_stop_returns_and_writes_checkpoints_even_while_emit_is_stuck(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"".join(numbered_line("S", i) for i in range(100)))
    state = tmp_path / "state"
    never = asyncio.Event()
    tailer = Tailer(options(str(log), state_dir=state, max_batch_lines=10))

    async def stuck_emit(batch: ReadBatch) -> None:
        tailer.acknowledge(batch.file_key, batch.end_offset)
        await never.wait()

    task = asyncio.create_task(tailer.run(stuck_emit))
    await wait_for(lambda: tailer.stats()["files"] and tailer.stats()["files"][0]["committed_offset"] > 0)
    await asyncio.wait_for(tailer.stop(), 15)
    assert task.done()
    [entry] = CheckpointStore(state).entries()
    assert entry.offset == len(b"".join(numbered_line("S", i) for i in range(10)))


@async_test
async def test_ignore_older_skips_stale_files_once_and_follows_them_when_written(tmp_path: Path) -> None:
    stale = tmp_path / "stale.log"
    stale.write_bytes(b"ancient\n")
    os.utime(stale, (1_000_000, 1_000_000))
    (tmp_path / "fresh.log").write_bytes(b"fresh\n")
    async with running(options(str(tmp_path / "*.log"), ignore_older_s=3600.0)) as (
        _t,
        collector,
        events_log,
    ):
        await wait_for(lambda: collector.lines == [b"fresh"])
        await asyncio.sleep(0.4)
        assert [e["path"] for e in events_log.named("file_skipped")] == [str(stale)]
        with open(stale, "ab") as f:
            f.write(b"woke up\n")
        await wait_for(lambda: len(collector.lines) == 3)
        assert collector.lines[1:] == [b"ancient", b"woke up"]


@async_test
async def test_a_busy_file_does_not_starve_the_others(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    big.write_bytes(b"".join(numbered_line("BIG", i) for i in range(300_000)))  # ~14 MiB backlog
    small = tmp_path / "small.log"
    small.write_bytes(b"small one\n")
    big_lines_before_small: list[int] = []

    class Recorder(Collector):
        async def emit(self, batch: ReadBatch) -> None:
            if b"small one" in batch.lines:
                big_lines_before_small.append(len(self.lines))
            await super().emit(batch)

    opts = options(str(tmp_path / "*.log"), read_chunk_bytes=64 * 1024)
    async with running(opts, collector=Recorder()) as (_t, collector, _l):
        await wait_for(lambda: len(collector.lines) == 300_001, 30)
    # the small file was served after at most one per-file budget (4 chunks) of the big one
    assert big_lines_before_small[0] <= 4 * 64 * 1024 // 14  # 14 bytes: the shortest line here


@async_test
async def test_log_symlinked_to_dev_stdout_is_refused_and_explained_once(tmp_path: Path) -> None:
    link = tmp_path / "access_log"
    link.symlink_to("/dev/stdout")  # what the httpd image ships; our fd 1 is pytest's capture file
    async with running(options(str(link))) as (_t, collector, events_log):
        await wait_for(lambda: len(events_log.named("file_refused")) == 1)
        await asyncio.sleep(0.3)
        [refused] = events_log.named("file_refused")
        assert refused["reason"] == "own_output"
        assert "docker logs" in str(refused["detail"])
        assert collector.lines == []
