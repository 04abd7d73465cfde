"""What one durable acknowledgement costs, at the pace of a 1,000 lines/s stream (a settle every 20 ms).

    python benchmarks/commit_cost.py [--commits 500] [--interval-ms 20]

For each way of making an acknowledged offset process-crash durable, --commits of them, one every
--interval-ms (caches go cold in between, as they do in the sidecar): the CPU of the whole process
per commit, above a loop that only sleeps (user+sys, `time.process_time`), and how long the
caller's thread is held per call (`time.thread_time`: p50 / p99 / max), which is what the event
loop would wait when the call is made on it.

- commit() in memory only: `CheckpointStore.commit()` and no storage, the part every way below
  but EXCLUSIVE (plain sqlite3) includes.
- sqlite, thread: `CheckpointStore.flush_soon()` served by the commit thread (the journal disabled):
  an UPDATE transaction in WAL mode, synchronous=NORMAL, plus a thread wake-up per settle.
- sqlite, inline: `CheckpointStore.flush()` on the caller's thread (no thread hop).
- sqlite, inline, locking_mode=EXCLUSIVE: the same with plain sqlite3 and no shared-memory locks.
- journal: `CheckpointStore.flush_soon()` as shipped: one append to `offsets.journal`.

No assertions: numbers only.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from logsidecar.tail.checkpoints import CheckpointStore  # noqa: E402


class ThreadOnlyStore(CheckpointStore):
    """The store as before the journal: every flush_soon() goes to the commit thread."""

    def _append_moved(self) -> bool:
        return False


def paced(commits: int, interval_s: float, step: Callable[[int], object]) -> tuple[float, list[float]]:
    """CPU seconds of the process over the run, and the caller's thread time of each step (s)."""
    held = []
    started = time.process_time()
    for i in range(commits):
        before = time.thread_time()
        step(i)
        held.append(time.thread_time() - before)
        time.sleep(interval_s)
    return time.process_time() - started, held


def store_step(store: CheckpointStore, flush: bool | None) -> Callable[[int], object]:
    """commit() then flush() (True), flush_soon() (False), or nothing (None: the offset in memory)."""
    store.track("k", 1, 2, b"GET / HTTP/1.1", "/var/log/apache2/access.log")
    store.flush()

    def step(i: int) -> object:
        store.commit("k", i + 1)
        if flush is None:
            return None
        return store.flush() if flush else store.flush_soon()

    return step


def sqlite_step(path: Path, exclusive: bool) -> Callable[[int], object]:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    if exclusive:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
    db.execute("CREATE TABLE c (file_key TEXT PRIMARY KEY, offset INTEGER NOT NULL)")
    db.execute("INSERT INTO c VALUES ('k', 0)")
    db.isolation_level = "DEFERRED"

    def step(i: int) -> object:
        with db:
            db.execute("UPDATE c SET offset = ? WHERE file_key = 'k'", (i + 1,))
        return None

    return step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    args = parser.parse_args()
    interval = args.interval_ms / 1000
    work = Path(tempfile.mkdtemp(prefix="logsidecar-commit-cost-"))
    idle, _ = paced(args.commits, interval, lambda i: None)
    ways: list[tuple[str, Callable[[], Callable[[int], object]]]] = [
        ("commit() in memory only", lambda: store_step(CheckpointStore(None), flush=None)),
        ("sqlite, thread", lambda: store_step(ThreadOnlyStore(work / "thread"), flush=False)),
        ("sqlite, inline", lambda: store_step(CheckpointStore(work / "inline"), flush=True)),
        ("sqlite, inline, EXCLUSIVE", lambda: sqlite_step(work / "exclusive.sqlite", exclusive=True)),
        ("journal", lambda: store_step(CheckpointStore(work / "journal"), flush=False)),
    ]
    print(f"{args.commits} commits, one every {args.interval_ms:g} ms; CPU above a sleeping loop")
    print(f"{'way':<26}  {'CPU us/commit':>13}  {'held us p50 / p99 / max':>24}")
    for name, make in ways:
        cpu, held = paced(args.commits, interval, make())
        held.sort()

        def at(q: float) -> float:
            return held[int(q * (len(held) - 1))] * 1e6  # noqa: B023

        per_commit = (cpu - idle) / args.commits * 1e6
        print(f"{name:<26}  {per_commit:>13.1f}  {at(0.5):>8.1f} / {at(0.99):>5.1f} / {at(1.0):>6.1f}")


if __name__ == "__main__":
    main()
