"""The Tailer, in process, under rotation scenarios with a real fast writer thread: the exact multiset
of lines must come out (0 lost, 0 duplicated), for both watcher backends. The `logsidecar tail`
command under real logrotate: tests/integration/command/test_tail_command_rotation.py."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from logsidecar.tail.options import TailOptions, WatchMode
from tests.support.tailer_harness import (
    LineWriter,
    assert_exact,
    assert_exact_once_arrived,
    async_test,
    numbered_line,
    reopen,
    run_writer,
    running,
    wait_for,
)

BACKENDS = [WatchMode.INOTIFY, WatchMode.POLL]


def options_for(mode: WatchMode, *include: str, **extra: object) -> TailOptions:
    return TailOptions(
        include=include,
        watch=mode,
        poll_interval_s=0.05,
        safety_poll_interval_s=0.5,
        discover_interval_s=0.2,
        checkpoint_interval_s=0.2,
        **extra,  # type: ignore[arg-type]
    )


def rename_numbered(path: Path, fd: int, generation: int) -> int:
    """rename-and-create; the writer keeps appending to the renamed file a little (like Apache
    children before a graceful restart), then reopens."""
    os.rename(path, path.with_name(f"{path.name}.{generation}"))
    os.write(fd, f"after-rename {generation}\n".encode())
    return reopen(path, fd)


def rename_over_one(path: Path, fd: int, generation: int) -> int:
    """rename to .1, replacing (unlinking) the previous .1: older generations only survive as open
    descriptors."""
    os.rename(path, path.with_name(path.name + ".1"))
    return reopen(path, fd)


def copytruncate(path: Path, fd: int, generation: int) -> int:
    shutil.copyfile(path, path.with_name(f"{path.name}.{generation}"))
    os.truncate(path, 0)
    return fd


def delete_and_recreate(path: Path, fd: int, generation: int) -> int:
    os.unlink(path)
    return reopen(path, fd)


def expected_with_after_rename(writer: LineWriter) -> object:
    expected = writer.expected()
    for generation in range(1, writer.rotations + 1):
        expected[f"after-rename {generation}".encode()] += 1
    return expected


@pytest.mark.parametrize("mode", BACKENDS)
@async_test
async def test_follows_rename_rotation_and_drains_renamed_file(tmp_path: Path, mode: WatchMode) -> None:
    path = tmp_path / "access.log"
    writer = LineWriter(path, lines_per_s=4000, duration_s=2.5, rotate=rename_numbered, rotate_every_s=0.3)
    async with running(options_for(mode, str(path))) as (tailer, collector, log):
        await run_writer(writer)
        await assert_exact_once_arrived(collector, expected_with_after_rename(writer), 15)
        assert writer.rotations >= 7
        assert len(log.named("file_rotated")) == writer.rotations
        assert tailer.stats()["counters"]["bytes_abandoned"] == 0


@pytest.mark.parametrize("mode", BACKENDS)
@async_test
async def test_follows_delete_and_recreate(tmp_path: Path, mode: WatchMode) -> None:
    path = tmp_path / "error.log"
    writer = LineWriter(
        path, lines_per_s=3000, duration_s=2.0, rotate=delete_and_recreate, rotate_every_s=0.3
    )
    async with running(options_for(mode, str(path))) as (_tailer, collector, log):
        await run_writer(writer)
        await assert_exact_once_arrived(collector, writer.expected(), 15)
        assert any(f.get("deleted") for f in log.named("file_drained")) or log.named("file_rotated")


@pytest.mark.parametrize("mode", BACKENDS)
@async_test
async def test_copytruncate_recovers_copied_tail_from_the_copy(tmp_path: Path, mode: WatchMode) -> None:
    path = tmp_path / "access.log"
    writer = LineWriter(path, lines_per_s=4000, duration_s=2.0, rotate=copytruncate, rotate_every_s=0.3)
    async with running(options_for(mode, str(path))) as (tailer, collector, log):
        await run_writer(writer)
        await assert_exact_once_arrived(collector, writer.expected(), 15)
        assert len(log.named("file_truncated")) == writer.rotations
        assert tailer.stats()["counters"]["bytes_possibly_lost"] == 0


@async_test
async def test_inotify_reads_files_that_live_200ms_at_their_path(tmp_path: Path) -> None:
    """Rename rotation every 200 ms under fast writes, each rename replacing the previous .1: a
    generation exists at the followed path only ~200 ms and afterwards only as our descriptor."""
    path = tmp_path / "access.log"
    writer = LineWriter(path, lines_per_s=8000, duration_s=3.0, rotate=rename_over_one, rotate_every_s=0.2)
    async with running(options_for(WatchMode.INOTIFY, str(path))) as (tailer, collector, _log):
        await run_writer(writer)
        await assert_exact_once_arrived(collector, writer.expected(), 15)
        assert writer.rotations >= 12
        assert tailer.stats()["counters"]["rotations"] == writer.rotations
        # generations that were deleted (replaced .1) and fully acknowledged leave no checkpoint behind
        await wait_for(lambda: tailer.stats()["counters"]["files_drained"] >= writer.rotations - 1, 15)
        assert len(tailer.checkpoints.entries()) <= 3


@pytest.mark.parametrize("mode", BACKENDS)
@async_test
async def test_follows_symlink_whose_target_changes(tmp_path: Path, mode: WatchMode) -> None:
    targets = tmp_path / "targets"
    targets.mkdir()
    link = tmp_path / "current.log"
    (targets / "log.0").touch()
    link.symlink_to(targets / "log.0")

    def retarget(path: Path, fd: int, generation: int) -> int:
        target = targets / f"log.{generation}"
        target.touch()
        tmp_link = tmp_path / "current.log.tmp"
        tmp_link.symlink_to(target)
        os.rename(tmp_link, link)  # atomic switch, like rotatelogs -l / cronolog --symlink
        os.write(fd, f"after-rename {generation}\n".encode())
        return reopen(target, fd)

    writer = LineWriter(
        link,
        lines_per_s=3000,
        duration_s=2.0,
        rotate=retarget,
        rotate_every_s=0.3,
        open_path=targets / "log.0",
    )
    async with running(options_for(mode, str(link))) as (_tailer, collector, _log):
        await run_writer(writer)
        await assert_exact_once_arrived(collector, expected_with_after_rename(writer), 15)


@pytest.mark.parametrize("mode", BACKENDS)
@async_test
async def test_follows_time_named_files_like_rotatelogs(tmp_path: Path, mode: WatchMode) -> None:
    current = {"path": tmp_path / "access_log.0000"}

    def next_name(path: Path, fd: int, generation: int) -> int:
        os.write(fd, f"after-rename {generation}\n".encode())  # late line to the old file
        current["path"] = tmp_path / f"access_log.{generation:04d}"
        return reopen(current["path"], fd)

    writer = LineWriter(
        current["path"], lines_per_s=3000, duration_s=2.0, rotate=next_name, rotate_every_s=0.3
    )
    async with running(options_for(mode, str(tmp_path / "access_log.*"))) as (_tailer, collector, _log):
        await run_writer(writer)
        await assert_exact_once_arrived(collector, expected_with_after_rename(writer), 15)


@pytest.mark.parametrize("mode", BACKENDS)
@async_test
async def test_copytruncate_with_writer_without_o_append_skips_the_nul_hole(
    tmp_path: Path, mode: WatchMode
) -> None:
    """A writer that does not use O_APPEND keeps writing at its old offset after the truncation: the
    file restarts with a hole of NULs as long as the old file. The hole is skipped, nothing is lost."""
    path = tmp_path / "app.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    written: list[bytes] = []
    async with running(options_for(mode, str(path))) as (tailer, collector, log):
        for generation in range(4):
            for i in range(500):
                line = numbered_line(f"G{generation}", i)
                os.write(fd, line)
                written.append(line.rstrip(b"\n"))
            await wait_for(lambda: len(collector.lines) >= len(written), 10)
            shutil.copyfile(path, tmp_path / f"app.log.{generation}")
            os.truncate(path, 0)
        os.close(fd)
        await wait_for(lambda: len(collector.lines) >= len(written), 10)
        await asyncio.sleep(0.3)
        assert sorted(collector.lines) == sorted(written)
        # After the first truncation the file starts with NULs, and so does every later generation:
        # when the new bytes land exactly at our offset the truncation is invisible and harmless.
        assert tailer.stats()["counters"]["nul_runs"] >= 1
        assert len(log.named("file_truncated")) >= 1


@async_test
async def test_inotify_reads_files_renamed_out_of_the_directory_every_200ms(tmp_path: Path) -> None:
    """logrotate `olddir`-style: each generation is renamed into another directory (an unpaired
    IN_MOVED_FROM for the followed directory) and the new file is created right after."""
    logs, old = tmp_path / "logs", tmp_path / "old"
    logs.mkdir()
    old.mkdir()
    path = logs / "access.log"

    def rename_elsewhere(path: Path, fd: int, generation: int) -> int:
        os.rename(path, old / f"access.log.{generation}")
        return reopen(path, fd)

    writer = LineWriter(path, lines_per_s=8000, duration_s=2.5, rotate=rename_elsewhere, rotate_every_s=0.2)
    async with running(options_for(WatchMode.INOTIFY, str(path))) as (tailer, collector, _log):
        await run_writer(writer)
        await assert_exact_once_arrived(collector, writer.expected(), 15)
        assert tailer.stats()["counters"]["rotations"] == writer.rotations


@async_test
async def test_rotated_files_held_stay_within_the_bound_without_abandoning_bytes(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    writer = LineWriter(path, lines_per_s=3000, duration_s=2.0, rotate=rename_over_one, rotate_every_s=0.1)
    held: list[int] = []
    async with running(options_for(WatchMode.INOTIFY, str(path), max_rotated_files_held=2)) as (
        tailer,
        collector,
        _log,
    ):

        async def sample() -> None:
            while True:
                held.append(int(tailer.stats()["counters"]["rotated_files_held"]))
                await asyncio.sleep(0.01)

        sampler = asyncio.create_task(sample())
        await run_writer(writer)
        await wait_for(lambda: len(collector.lines) >= len(writer.written), 15)
        sampler.cancel()
        await asyncio.sleep(0.3)
        assert writer.rotations >= 15
        assert_exact(collector, writer.expected())
        assert max(held) <= 2
        assert tailer.stats()["counters"]["bytes_abandoned"] == 0
