"""Raw read paths for the tailer, in MiB/s: os.pread inline (FileReader on local filesystems),
os.pread in a worker thread, aiofiles (the product's async file library), and the stall-guarded
aiofiles pread that FileReader uses on network mounts (netfs.StallGuard: a deadline per call).

    python benchmarks/tail_read.py [--size-mib 256] [--chunk-kib 256]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

import aiofiles
import aiofiles.os

from logsidecar.tail.netfs import StallGuard


async def pread_inline(path: str, chunk: int) -> int:
    fd = os.open(path, os.O_RDONLY)
    offset = 0
    while data := os.pread(fd, chunk, offset):
        offset += len(data)
    os.close(fd)
    return offset


async def pread_thread(path: str, chunk: int) -> int:
    loop = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDONLY)
    offset = 0
    while data := await loop.run_in_executor(None, os.pread, fd, chunk, offset):
        offset += len(data)
    os.close(fd)
    return offset


async def with_aiofiles(path: str, chunk: int) -> int:
    total = 0
    async with aiofiles.open(path, "rb", buffering=0) as f:
        while data := await f.read(chunk):
            total += len(data)
    return total


async def pread_guarded(path: str, chunk: int) -> int:
    guard = StallGuard()
    pread = aiofiles.os.wrap(os.pread)
    fd = os.open(path, os.O_RDONLY)
    offset = 0
    while data := await guard.call(path, "/", "read", pread, fd, chunk, offset):
        offset += len(data)
    os.close(fd)
    guard.close()
    return offset


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--chunk-kib", type=int, nargs="*", default=[16, 64, 256])
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(prefix="tail-read-", delete=False) as f:
        line = (
            b'127.0.0.1 - - [28/Nov/2026:02:00:00 +0000] "GET /index.html HTTP/1.1" 200 1234 "-" "curl/8"\n'
        )
        block = line * (1024 * 1024 // len(line))
        for _ in range(args.size_mib):
            f.write(block)
        path = f.name
    try:
        for chunk_kib in args.chunk_kib:
            for name, function in (
                ("pread_inline", pread_inline),
                ("pread_thread", pread_thread),
                ("aiofiles", with_aiofiles),
                ("pread_guarded", pread_guarded),
            ):
                await function(path, chunk_kib * 1024)  # warm the page cache
                start = time.perf_counter()
                total = await function(path, chunk_kib * 1024)
                elapsed = time.perf_counter() - start
                print(f"chunk={chunk_kib:4d}KiB {name:13s} {total / elapsed / 2**20:9.0f} MiB/s")
    finally:
        os.unlink(path)


if __name__ == "__main__":
    asyncio.run(main())
