"""Tailer throughput and idle cost, printed as numbers (no assertions).

    python benchmarks/tail_throughput.py [--mib 200] [--files 200] [--idle-s 10]

1. backlog: one file of Apache-like lines (~110 bytes), read to the end by a Tailer whose emit only
   acknowledges: lines/s, MiB/s, CPU seconds.
2. idle: --files small files followed under inotify for --idle-s seconds: CPU seconds used and loop
   cycles (should be ~0 CPU: the loop sleeps on events and intervals).
3. live: a writer appending 20k lines/s to one file while rotating it every 200 ms: lines lost or
   duplicated, and the tailer's CPU share.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from logsidecar.tail.options import ReadBatch, TailOptions, WatchMode
from logsidecar.tail.tailer import Tailer

LINE = (
    b'192.168.10.20 - - [28/Nov/2026:02:00:00 +0000] "GET /index.html?q=%d HTTP/1.1" 200 5120 "-" "bench"\n'
)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def backlog(directory: Path, mib: int, watch: WatchMode) -> None:
    path = directory / "backlog.log"
    block = b"".join(LINE.replace(b"%d", str(i).encode()) for i in range(10000))
    with open(path, "wb") as f:
        while f.tell() < mib * 2**20:
            f.write(block)
    size = path.stat().st_size
    total_lines = 0
    done = asyncio.Event()
    tailer = Tailer(TailOptions(include=(str(path),), watch=watch))

    async def emit(batch: ReadBatch) -> None:
        nonlocal total_lines
        total_lines += len(batch.lines)
        tailer.acknowledge(batch.file_key, batch.end_offset)
        if batch.end_offset >= size:
            done.set()

    cpu0, t0 = cpu_seconds(), time.perf_counter()
    task = asyncio.create_task(tailer.run(emit))
    await done.wait()
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    await tailer.stop()
    await task
    print(
        f"backlog[{watch.value}]: {total_lines} lines, {size / 2**20:.0f} MiB in {elapsed:.2f}s = "
        f"{total_lines / elapsed:,.0f} lines/s, {size / 2**20 / elapsed:.0f} MiB/s, cpu {cpu:.2f}s"
    )
    path.unlink()


async def idle(directory: Path, files: int, seconds: float) -> None:
    for n in range(files):
        (directory / f"idle{n:03d}.log").write_bytes(LINE)
    tailer = Tailer(TailOptions(include=(str(directory / "idle*.log"),), watch=WatchMode.AUTO))
    seen = 0

    async def emit(batch: ReadBatch) -> None:
        nonlocal seen
        seen += len(batch.lines)
        tailer.acknowledge(batch.file_key, batch.end_offset)

    task = asyncio.create_task(tailer.run(emit))
    while seen < files:
        await asyncio.sleep(0.05)
    cycles0 = tailer.stats()["counters"]["cycles"]
    cpu0 = cpu_seconds()
    await asyncio.sleep(seconds)
    cpu = cpu_seconds() - cpu0
    cycles = tailer.stats()["counters"]["cycles"] - cycles0
    print(
        f"idle[{tailer.stats()['watcher']}]: {files} files for {seconds:.0f}s: cpu {cpu:.3f}s "
        f"({100 * cpu / seconds:.2f}% of a core), {cycles} cycles"
    )
    await tailer.stop()
    await task


async def live(directory: Path, seconds: float, rate: int) -> None:
    path = directory / "live.log"
    written: list[bytes] = []
    got: list[bytes] = []

    def writer() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        start = time.monotonic()
        next_rotation = start + 0.2
        seq = 0
        generation = 0
        while time.monotonic() - start < seconds:
            for _ in range(rate // 200):
                line = LINE.replace(b"%d", str(seq).encode())
                os.write(fd, line)
                written.append(line[:-1])
                seq += 1
            if time.monotonic() >= next_rotation:
                generation += 1
                os.rename(path, directory / "live.log.1")
                new = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                os.close(fd)
                fd = new
                next_rotation += 0.2
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        os.close(fd)

    tailer = Tailer(TailOptions(include=(str(path),), watch=WatchMode.INOTIFY))

    async def emit(batch: ReadBatch) -> None:
        got.extend(batch.lines)
        tailer.acknowledge(batch.file_key, batch.end_offset)

    task = asyncio.create_task(tailer.run(emit))
    await asyncio.sleep(0.2)
    thread = threading.Thread(target=writer)
    cpu0 = cpu_seconds()
    thread.start()
    await asyncio.to_thread(thread.join)
    deadline = time.monotonic() + 10
    while len(got) < len(written) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    cpu = cpu_seconds() - cpu0
    await asyncio.sleep(0.3)
    expected, received = Counter(written), Counter(got)
    lost, extra = sum((expected - received).values()), sum((received - expected).values())
    print(
        f"live[inotify]: {len(written)} lines at {rate}/s, rename every 200 ms for {seconds:.0f}s: lost {lost}, "
        f"duplicated {extra}, process cpu (writer thread included) {cpu:.2f}s, "
        f"rotations {tailer.stats()['counters']['rotations']}"
    )
    await tailer.stop()
    await task


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--live-s", type=float, default=5.0)
    parser.add_argument("--live-rate", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tail-bench-") as tmp:
        directory = Path(tmp)
        await backlog(directory, args.mib, WatchMode.INOTIFY)
        await backlog(directory, args.mib, WatchMode.POLL)
        await idle(directory, args.files, args.idle_s)
        await live(directory, args.live_s, args.live_rate)


if __name__ == "__main__":
    asyncio.run(main())
