"""InotifyWatcher on a real directory: content hints (IN_MODIFY) are read on the event loop and held
until the caller's coalescing time, structure hints and wake() are not held, and an idle watcher
sleeps for its whole timeout (it blocks on the descriptor instead of polling)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from logsidecar.tail.watch.inotify import InotifyWatcher, ModifyHints
from tests.support.tailer_harness import async_test


def append(path: Path, text: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(text)


@asynccontextmanager
async def watching(directory: Path) -> AsyncIterator[InotifyWatcher]:
    """An inotify watcher of `directory` (its initial "run discovery now" taken), closed at the end."""
    watcher = InotifyWatcher(60.0, lambda path: path.endswith(".log"))
    watcher.start(asyncio.get_running_loop())
    watcher.watch_directories({directory})
    watcher.take_structure_changed()  # the initial "run discovery now"
    try:
        yield watcher
    finally:
        watcher.close()


def test_modify_hints_report_pending_events_once(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"")
    hints = ModifyHints()
    try:
        hints.add(tmp_path)
        assert hints.drain() is False
        for _ in range(50):
            append(log, b"line\n")
        assert hints.drain() is True
        assert hints.drain() is False  # everything was read at once
    finally:
        hints.close()


def test_modify_hints_keep_a_directory_watched_while_another_path_to_it_is(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"")
    alias = tmp_path.parent / f"{tmp_path.name}-alias"
    alias.symlink_to(tmp_path, target_is_directory=True)
    hints = ModifyHints()
    try:
        first = hints.add(tmp_path)
        second = hints.add(alias)
        assert first == second  # the kernel gives one watch per directory
        hints.remove(first)
        append(log, b"line\n")
        assert hints.drain() is True
        hints.remove(second)
        hints.drain()  # IN_IGNORED of the removed watch
        append(log, b"line\n")
        assert hints.drain() is False
    finally:
        hints.close()
        alias.unlink()


@async_test
async def test_content_hint_is_held_until_the_coalescing_time(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"")
    async with watching(tmp_path) as watcher:
        append(log, b"one\n")
        hold_until = time.monotonic() + 0.2
        assert await watcher.wait(5.0, hold_content_until=hold_until) is True
        assert time.monotonic() >= hold_until
        assert watcher.take_structure_changed() is False


@async_test
async def test_content_hint_after_a_quiet_spell_wakes_the_waiter(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"")
    async with watching(tmp_path) as watcher:
        waiting = asyncio.create_task(watcher.wait(30.0, hold_content_until=0.0))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        append(log, b"one\n")
        assert await asyncio.wait_for(waiting, 10.0) is True
        # the hint was consumed: a new wait with nothing written times out
        assert await watcher.wait(0.2) is False


@async_test
async def test_a_structure_hint_in_the_same_turn_as_a_content_hint_is_not_held(tmp_path: Path) -> None:
    """A followed file grows and a new file appears at once: when both wakes land in one loop turn,
    one clear takes both; the structure change must still end the wait (seen failing in CI: the wait
    then held for the whole content hold). The race is timing-dependent, so it is tried many times;
    on the code before the fix, about 1 try in 8 held."""
    hold_s = 30.0
    held = 0
    for attempt in range(60):
        directory = tmp_path / f"try{attempt}"
        directory.mkdir()
        (directory / "a.log").write_bytes(b"")
        async with watching(directory) as watcher:
            waiting = asyncio.create_task(watcher.wait(hold_s, hold_content_until=time.monotonic() + hold_s))
            await asyncio.sleep(0.02)
            append(directory / "a.log", b"grown\n")
            (directory / "b.log").write_bytes(b"new\n")
            try:
                await asyncio.wait_for(waiting, hold_s / 15)  # far below the hold it must not wait out
            except TimeoutError:
                held += 1
            for _path, fd, _st in watcher.take_early_opened():
                os.close(fd)
    assert held == 0


@async_test
async def test_structure_hint_is_not_held(tmp_path: Path) -> None:
    async with watching(tmp_path) as watcher:
        waiting = asyncio.create_task(watcher.wait(30.0, hold_content_until=time.monotonic() + 30.0))
        await asyncio.sleep(0.1)
        (tmp_path / "b.log").write_bytes(b"new\n")
        assert await asyncio.wait_for(waiting, 10.0) is True
        assert watcher.take_structure_changed() is True
        early = watcher.take_early_opened()
        assert [path for path, _fd, _st in early] == [str(tmp_path / "b.log")]
        for _path, fd, _st in early:
            os.close(fd)


@async_test
async def test_wake_ends_a_held_wait(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"")
    async with watching(tmp_path) as watcher:
        append(log, b"one\n")
        waiting = asyncio.create_task(watcher.wait(30.0, hold_content_until=time.monotonic() + 30.0))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        watcher.wake()
        assert await asyncio.wait_for(waiting, 10.0) is True


@async_test
async def test_idle_wait_lasts_its_timeout(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(b"")
    async with watching(tmp_path) as watcher:
        started = time.monotonic()
        assert await watcher.wait(0.3) is False
        assert time.monotonic() - started >= 0.3
