"""The stop: read what the files hold, then say what is left.

On stop (`Tailer.drain`, then `Tailer.stop`): after one last match of the paths, discovery ends;
`read_to_end` reads every followed file, active and rotated, until a pass finds nothing more, and emits
each file's last line even without its newline (partial_line_flushed, reason "stopping"); then `run`
returns. `stop` commits the acknowledged offsets and returns what is left after them per file
(`leftovers`): where a restart resumes, bytes and lines read but not acknowledged, bytes and lines not
read.
"""

from __future__ import annotations

import asyncio
import os

from logsidecar.tail.counters import TailCounters
from logsidecar.tail.fileset import FileSet
from logsidecar.tail.reading import BatchReader, Emit

# `leftovers` counts the lines left after the acknowledged offsets by reading them: at most this much
# per stop (~30 ms at the ~2 GiB/s measured from the page cache), so a huge backlog cannot hold up the exit.
LEFTOVER_COUNT_MAX_BYTES = 64 * 1024 * 1024


async def read_to_end(
    reading: BatchReader, counters: TailCounters, stopping: asyncio.Event, emit: Emit
) -> None:
    """Read every followed file (rotated ones first, as always) until a pass over all of them reads
    nothing more, then emit each file's last line even without its newline. Under a writer faster than
    us it goes on until `stopping` is set (`Tailer.drain`'s deadline). The caller matched paths once
    more first."""
    empty_passes = 0
    while not stopping.is_set():
        before = counters.bytes_read
        more = await reading.read_changed_files(emit)
        empty_passes = empty_passes + 1 if counters.bytes_read == before else 0
        # (`more` with nothing read: a truncation was just handled, or a read failed: once more)
        if empty_passes and (not more or empty_passes > 1):
            break
        await asyncio.sleep(0)  # let the consumer run
    if not stopping.is_set():
        await reading.flush_partial_lines(emit, stopping=True)


def leftovers(files: FileSet) -> list[dict[str, object]]:
    """Per followed file with bytes after its acknowledged offset: `path`, `file_key`, `from_offset`
    (the acknowledged offset: a restart resumes there), `undelivered_bytes`/`undelivered_lines` (read,
    not acknowledged), `unread_bytes`/`unread_lines` (not read). Lines are counted by reading them,
    at most LEFTOVER_COUNT_MAX_BYTES in all; beyond that a count is None (the bytes stay exact)."""
    left: list[dict[str, object]] = []
    count_budget = LEFTOVER_COUNT_MAX_BYTES
    for key, tracked in files.items():
        reader = tracked.reader
        size = reader.size
        # A file on a network mount is neither stat'ed nor counted here: its server may be the
        # reason we are late, and a call on the event loop would hang the exit (netfs).
        local = reader.fd >= 0 and reader.fs is None
        if local:
            try:
                size = os.fstat(reader.fd).st_size
            except OSError:
                pass
        start = tracked.committed_offset
        read_end = min(max(reader.read_offset, start), size)
        if size <= start:
            continue
        counts: list[int | None] = []
        for begin, end in ((start, read_end), (read_end, size)):
            count = None
            if end - begin <= count_budget and local:
                count_budget -= end - begin
                count = count_lines(reader.fd, begin, end)
            counts.append(count)
        left.append(
            {
                "path": reader.path,
                "file_key": key,
                "from_offset": start,
                "undelivered_bytes": read_end - start,
                "undelivered_lines": counts[0],
                "unread_bytes": size - read_end,
                "unread_lines": counts[1],
            }
        )
    return left


def count_lines(fd: int, begin: int, end: int) -> int | None:
    """Lines in [begin, end) of `fd`, a last one without newline included; None if unreadable."""
    count = 0
    last = b"\n"
    offset = begin
    try:
        while offset < end:
            chunk = os.pread(fd, min(1024 * 1024, end - offset), offset)
            if not chunk:
                break
            count += chunk.count(b"\n")
            last = chunk[-1:]
            offset += len(chunk)
    except OSError:
        return None
    return count + int(last != b"\n")
