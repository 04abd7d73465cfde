"""The Tailer, in a child that runs it directly (not the command), killed -9 in the middle of reading:
the restarted tailer resumes at the last durable acknowledged offset, so nothing is lost, and the
lines delivered again are at most those in flight at the kill. (The `logsidecar tail` command killed
under load: tests/integration/command/test_tail_command_crash.py.)

The child delivers each batch (writes its lines to stdout), acknowledges it, waits for the future
`acknowledge` returns (the offset is in storage), then says so on stdout (`#durable <offset>`). What
was in flight at the kill is therefore known exactly from the child's output: the lines after the
last `#durable` marker (delivered, acknowledgement not yet durable). The restart must deliver again
only lines of that set. The periodic checkpoint write keeps its default interval (1 s), so the bound
does not come from it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from logsidecar.tail.options import TailOptions, WatchMode
from tests.support.paths import REPO_ROOT
from tests.support.tailer_harness import async_test, numbered_line, running, wait_for

MARKER = b"#durable "

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from logsidecar.tail.options import TailOptions, WatchMode
    from logsidecar.tail.tailer import Tailer

    async def main():
        tailer = Tailer(TailOptions(include=(sys.argv[1],), state_dir=Path(sys.argv[2]), watch=WatchMode.INOTIFY,
                                    max_batch_lines=100))
        out = sys.stdout.buffer
        async def emit(batch):
            out.write(b"\\n".join(batch.lines) + b"\\n")  # delivered...
            out.flush()
            durable = tailer.acknowledge(batch.file_key, batch.end_offset)  # ...so acknowledged
            if durable is not None:
                await asyncio.wrap_future(durable)
            out.write(b"#durable %d\\n" % batch.end_offset)
            out.flush()
        await tailer.run(emit)

    asyncio.run(main())
    """
)


@async_test
async def test_sigkill_mid_run_replays_at_most_the_lines_in_flight(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    state = tmp_path / "state"
    lines = [numbered_line("K", i) for i in range(100_000)]
    log.write_bytes(b"".join(lines))
    expected = [line.rstrip(b"\n") for line in lines]
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), str(log), str(state)], stdout=subprocess.PIPE, cwd=REPO_ROOT
    )
    assert child.stdout is not None
    output: list[bytes] = []
    delivered_so_far = 0
    while delivered_so_far < 30_000:
        line = child.stdout.readline()
        assert line, "child ended early"
        output.append(line.rstrip(b"\n"))
        delivered_so_far += not line.startswith(MARKER)
    os.kill(child.pid, signal.SIGKILL)
    rest = child.stdout.read()
    child.wait()
    output.extend(rest.split(b"\n")[:-1])  # complete lines only; a torn last line is not "delivered"
    delivered = [line for line in output if not line.startswith(MARKER)]
    assert delivered == expected[: len(delivered)]
    markers = [i for i, line in enumerate(output) if line.startswith(MARKER)]
    assert markers, "no acknowledgement became durable before the kill"
    in_flight = [line for line in output[markers[-1] + 1 :] if not line.startswith(MARKER)]
    durable_offset = int(output[markers[-1]][len(MARKER) :])
    assert durable_offset == sum(len(line) for line in lines[: len(delivered) - len(in_flight)])

    options = TailOptions(include=(str(log),), state_dir=state, watch=WatchMode.INOTIFY)
    async with running(options) as (_t, collector, _l):
        await wait_for(lambda: bool(collector.lines) and collector.lines[-1] == expected[-1], 20)
        resumed_at = expected.index(collector.lines[0])
        assert collector.lines == expected[resumed_at:]  # contiguous to the end: nothing lost
    replayed = delivered[resumed_at:]
    print(f"kill -9: delivered={len(delivered)} in_flight={len(in_flight)} replayed={len(replayed)}")
    assert resumed_at <= len(delivered)  # nothing skipped
    assert set(replayed) <= set(in_flight)  # the bound: only what was in flight comes again
