"""Restarts and file identity: resume exactly at the last acknowledged offset, find files rotated
while we were down, never trust a reused inode, recognise small files."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.options import ReadBatch, StartAt, TailOptions, WatchMode
from logsidecar.tail.tailer import Tailer
from tests.support.tailer_harness import Collector, async_test, numbered_line, running, wait_for


def options(state_dir: Path, *include: str, **extra: object) -> TailOptions:
    values: dict[str, object] = {
        "watch": WatchMode.INOTIFY,
        "discover_interval_s": 0.1,
        "checkpoint_interval_s": 0.1,
    }
    values.update(extra)
    return TailOptions(include=include, state_dir=state_dir, **values)  # type: ignore[arg-type]


def write_lines(path: Path, prefix: str, count: int, start: int = 0) -> list[bytes]:
    lines = [numbered_line(prefix, i) for i in range(start, start + count)]
    with open(path, "ab") as f:
        f.write(b"".join(lines))
    return [line.rstrip(b"\n") for line in lines]


async def read_to_the_end(opts: TailOptions, count: int) -> None:
    """A run that reads (and acknowledges, so checkpoints) the `count` lines there are, then stops."""
    async with running(opts) as (_t, collector, _l):
        await wait_for(lambda: len(collector.lines) == count)


class PartialAcker(Collector):
    """Acknowledges only the first `limit` lines (the rest is "not delivered" when we stop)."""

    def __init__(self, limit: int) -> None:
        super().__init__(acknowledge=False)
        self.limit = limit

    async def emit(self, batch: ReadBatch) -> None:
        already = len(self.lines)
        await super().emit(batch)
        if already < self.limit and self.tailer is not None:
            index = min(self.limit - already, len(batch.lines)) - 1
            self.tailer.acknowledge(batch.file_key, batch.end_offsets[index])


@async_test
async def test_unacknowledged_lines_are_reread_after_restart_and_nothing_else(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    written = write_lines(log, "A", 1000)
    state = tmp_path / "state"
    async with running(options(state, str(log)), collector=PartialAcker(600)) as (_t, collector, _l):
        await wait_for(lambda: len(collector.lines) == 1000)
    async with running(options(state, str(log))) as (_t, collector, log_events):
        await wait_for(lambda: len(collector.lines) == 400)
        await asyncio.sleep(0.3)
        assert collector.lines == written[600:]
        assert len(log_events.named("file_resumed")) == 1


@async_test
async def test_file_rotated_while_down_is_found_by_identity_and_drained_from_checkpoint(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    state = tmp_path / "state"
    write_lines(log, "A", 500)
    await read_to_the_end(options(state, str(log)), 500)
    # while we are down: more lines, rename rotation, a new file with lines of its own
    late = write_lines(log, "A", 200, start=500)
    os.rename(log, tmp_path / "access.log.1")
    fresh = write_lines(log, "B", 100)
    async with running(options(state, str(log))) as (_t, collector, log_events):
        await wait_for(lambda: len(collector.lines) >= 300)
        await asyncio.sleep(0.3)
        assert sorted(collector.lines) == sorted(late + fresh)
        assert any(e.get("rotated_while_down") for e in log_events.named("file_resumed"))


@async_test
async def test_start_at_end_applies_only_to_files_without_checkpoint(tmp_path: Path) -> None:
    known = tmp_path / "known.log"
    state = tmp_path / "state"
    write_lines(known, "K", 100)
    await read_to_the_end(options(state, str(tmp_path / "*.log")), 100)
    missed_known = write_lines(known, "K", 50, start=100)
    unknown = tmp_path / "unknown.log"
    write_lines(unknown, "U", 70)  # no checkpoint: start_at=end skips these
    opts = options(state, str(tmp_path / "*.log"), start_at=StartAt.END)
    async with running(opts) as (_t, collector, _l):
        await wait_for(lambda: len(collector.lines) >= 50)
        new_unknown = write_lines(unknown, "U", 5, start=70)
        await wait_for(lambda: len(collector.lines) >= 55)
        await asyncio.sleep(0.3)
        assert sorted(collector.lines) == sorted(missed_known + new_unknown)


@async_test
async def test_small_file_is_read_and_recognised_after_restart(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    log.write_bytes(b"[notice] AH00094: started, 40 bytes\n")  # well under fingerprint_bytes
    state = tmp_path / "state"
    await read_to_the_end(options(state, str(log)), 1)
    with open(log, "ab") as f:
        f.write(b"[error] second line\n")
    async with running(options(state, str(log))) as (_t, collector, _l):
        await wait_for(lambda: len(collector.lines) >= 1)
        await asyncio.sleep(0.3)
        assert collector.lines == [b"[error] second line"]
    entries = CheckpointStore(state).entries()
    assert [e.offset for e in entries] == [log.stat().st_size]


def create_on_reused_inode(path: Path, old_inode: int, content: bytes) -> bool:
    """Create `path` until the filesystem hands out `old_inode` again (ext4 reuses freed inodes).
    Candidates are made under a hidden name the glob does not match and only the one on the old
    inode is renamed into place, so the tailer sees exactly one new file at `path`."""
    spare: list[Path] = []
    try:
        for attempt in range(200):
            candidate = path.with_name(f".candidate{attempt}")
            candidate.write_bytes(content)
            if candidate.stat().st_ino == old_inode:
                os.rename(candidate, path)
                return True
            spare.append(candidate)
        return False
    finally:
        for holder in spare:
            holder.unlink()


@async_test
async def test_new_file_on_reused_inode_is_read_from_zero_after_restart(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    state = tmp_path / "state"
    write_lines(log, "OLD", 300)
    old_inode = log.stat().st_ino
    await read_to_the_end(options(state, str(log)), 300)
    log.unlink()
    new_lines = [numbered_line("NEW", i) for i in range(400)]
    assert create_on_reused_inode(log, old_inode, b"".join(new_lines)), "inode was not reused"
    async with running(options(state, str(log))) as (_t, collector, _l):
        await wait_for(lambda: len(collector.lines) >= 400)
        await asyncio.sleep(0.3)
        assert collector.lines == [line.rstrip(b"\n") for line in new_lines]


@async_test
async def test_new_file_on_reused_inode_is_read_from_zero_while_running(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write_lines(log, "OLD", 300)
    old_inode = log.stat().st_ino
    opts = options(tmp_path / "state", str(log))
    async with running(opts) as (tailer, collector, _l):
        await wait_for(lambda: len(collector.lines) == 300)
        log.unlink()
        await wait_for(
            lambda: tailer.stats()["counters"]["files_drained"] == 1 or not tailer.stats()["files"], 10
        )
        new_lines = [numbered_line("NEW", i) for i in range(20)]  # shorter than the old offset
        assert create_on_reused_inode(log, old_inode, b"".join(new_lines)), "inode was not reused"
        await wait_for(lambda: len(collector.lines) >= 320)
        await asyncio.sleep(0.3)
        assert collector.lines[300:] == [line.rstrip(b"\n") for line in new_lines]


@async_test
async def test_start_at_end_begins_after_the_last_complete_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"old 1\nold 2\nbeing wri")
    async with running(options(tmp_path / "state", str(log), start_at=StartAt.END)) as (_t, collector, _l):
        await asyncio.sleep(0.3)
        with open(log, "ab") as f:
            f.write(b"tten\nnew\n")
        await wait_for(lambda: len(collector.lines) >= 2)
        await asyncio.sleep(0.2)
        assert collector.lines == [b"being written", b"new"]


@async_test
async def test_new_file_rotated_while_down_after_a_crash_is_found_from_its_durable_identity(
    tmp_path: Path,
) -> None:
    """A file created after the last periodic checkpoint write, read (and acknowledged) in part, then
    the process dies (no final write, no periodic one: the interval is an hour) and the file is
    rotated while we are down: the restart finds it by its identity, which was made durable before it
    was read, and nothing is lost. Its acknowledgements were committed as they came, so nothing that
    was acknowledged is read again."""
    log = tmp_path / "access.log"
    state = tmp_path / "state"
    slow_checkpoints = options(state, str(log), checkpoint_interval_s=3600.0)
    tailer = Tailer(slow_checkpoints)
    collector = Collector()
    collector.tailer = tailer
    task = asyncio.create_task(tailer.run(collector.emit))
    first = write_lines(log, "B", 300)
    await wait_for(lambda: len(collector.lines) == 300)
    assert collector.durable is not None
    await asyncio.wrap_future(collector.durable)  # nothing in flight: every line acknowledged is in storage
    task.cancel()  # "kill -9": no stop(), no final checkpoint write
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert tailer.watcher is not None
    tailer.watcher.close()
    for tracked in tailer.files.values():
        tracked.reader.close()
    late = write_lines(log, "B", 200, start=300)
    os.rename(log, tmp_path / "access.log.1")
    fresh = write_lines(log, "C", 50)
    async with running(options(state, str(log))) as (_t, collector2, _l):
        await wait_for(lambda: len(collector2.lines) >= 250)
        await asyncio.sleep(0.3)
        # B resumes at its durable offset (the 300 acknowledged lines): nothing missing, nothing twice
        assert sorted(collector2.lines) == sorted(late + fresh)
        assert not set(first) & set(collector2.lines)


@async_test
async def test_file_created_and_rotated_entirely_while_down_is_read(tmp_path: Path) -> None:
    """Down through two rotations: A (checkpointed) becomes access.log.2, B was born and rotated to
    access.log.1 while nothing ran, C is at the path. A is drained from its checkpoint, B and C are
    read whole; old compressed generations and the already-read history are left alone."""
    log = tmp_path / "access.log"
    state = tmp_path / "state"
    (tmp_path / "access.log.9.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 40)
    history = tmp_path / "access.log.8"
    history.write_bytes(b"".join(numbered_line("OLD", i) for i in range(10)))
    os.utime(history, (1_000_000, 1_000_000))
    write_lines(log, "A", 100)
    await read_to_the_end(options(state, str(log)), 100)
    late_a = write_lines(log, "A", 20, start=100)
    os.rename(log, tmp_path / "access.log.1")
    b_lines = write_lines(log, "B", 70)
    os.rename(tmp_path / "access.log.1", tmp_path / "access.log.2")
    os.rename(log, tmp_path / "access.log.1")
    c_lines = write_lines(log, "C", 30)
    async with running(options(state, str(log))) as (_t, collector, events_log):
        await wait_for(lambda: len(collector.lines) >= 120)
        await asyncio.sleep(0.4)
        assert sorted(collector.lines) == sorted(late_a + b_lines + c_lines)
        assert any(e.get("created_after_last_checkpoint") for e in events_log.named("file_resumed"))


@async_test
async def test_two_logs_that_start_with_the_same_lines_are_both_read(tmp_path: Path) -> None:
    """Two vhost logs in one directory can open with the same probe request in the same second: that
    shared beginning must not make the second look like a copytruncate copy of the first."""
    shared = (
        b'10.0.0.1 - - [28/Nov/2026:03:00:00 +0000] "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.31"\n' * 3
    )
    first, second = tmp_path / "a_access.log", tmp_path / "b_access.log"
    first.write_bytes(shared + b"only in a\n")
    async with running(options(tmp_path / "state", str(tmp_path / "*_access.log"))) as (_t, collector, _l):
        await wait_for(lambda: len(collector.lines) == 4)
        staged = tmp_path / ".b_staged"
        staged.write_bytes(shared)  # the probe lines land first, the vhost's own traffic later
        os.rename(staged, second)
        await asyncio.sleep(0.5)
        with open(second, "ab") as f:
            f.write(b"only in b\n")
        await wait_for(lambda: len(collector.lines) >= 8)
        await asyncio.sleep(0.3)
    assert sorted(collector.lines) == sorted(shared.splitlines() * 2 + [b"only in a", b"only in b"])
