"""End-to-end numbers for the `logsidecar tail` command (a real subprocess), printed as a table.

    python benchmarks/tail_end_to_end.py [--lines 1000000] [--format auto] [--idle-seconds 60]
                                         [--latency-seconds 10] [--skip-latency] [--skip-idle]

1. throughput: `logsidecar tail --start-at beginning FILE --stdout-format json` on a pre-generated
   combined-format file (benchmarks/generate_logs.py), its stdout read by this script, which counts
   newlines until it has seen every line: lines/s (from start, and from the first record on), CPU
   seconds of the child (user+sys, from /proc/PID/stat) and its peak RSS (VmHWM), then SIGTERM.
   Baselines in the same run: `cat FILE > /dev/null` and `wc -l FILE`.
2. latency: a writer appends combined lines carrying their own write time (monotonic ns in the query
   string) at 1,000 and 10,000 lines/s; the time from append to the record read from our stdout,
   p50/p99/max, and the child's CPU % at that rate.
3. idle: the child following a file nobody writes, CPU % over --idle-seconds.

No assertions: numbers only. The machine's load matters (2 shared cores): the table prints it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user+sys of a live process, from /proc (children of the child are not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generate(path: Path, lines: int) -> None:
    try:
        from benchmarks.generate_logs import write_log
    except ImportError:  # fall back to a small local generator
        line = '192.0.2.%d - - [28/Nov/2026:02:00:00 +0000] "GET /index.html?q=%d HTTP/1.1" 200 5120 "-" "bench/1.0"\n'
        with path.open("w") as handle:
            for i in range(lines):
                handle.write(line % (i % 250, i))
        return
    write_log(path, "combined", lines)


def tail_command(state_dir: Path, fmt: str, *paths: str) -> list[str]:
    return [
        sys.executable, "-m", "logsidecar", "tail", "--start-at", "beginning", "--stdout-format", "json",
        "--state-dir", str(state_dir), "--format", fmt, "--log-level", "warning", *paths,
    ]  # fmt: skip


def timed(command: list[str], **kwargs: object) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - started


@dataclass
class Throughput:
    lines: int
    seconds_total: float
    seconds_from_first: float
    cpu_s: float
    peak_rss_mib: float


def throughput(path: Path, lines: int, fmt: str, work: Path) -> Throughput:
    state = work / "state-throughput"
    started = time.perf_counter()
    child = subprocess.Popen(tail_command(state, fmt, str(path)), stdout=subprocess.PIPE, cwd=REPO)
    assert child.stdout is not None
    fd = child.stdout.fileno()
    seen = 0
    first: float | None = None
    while seen < lines:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise RuntimeError(f"tail exited after {seen} lines")
        if first is None:
            first = time.perf_counter()
        seen += chunk.count(b"\n")
    ended = time.perf_counter()
    cpu = cpu_seconds(child.pid)
    rss = peak_rss_mib(child.pid)
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    assert first is not None
    return Throughput(seen, ended - started, ended - first, cpu, rss)


@dataclass
class Latency:
    rate: int
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_percent: float


_WRITE_TIME = re.compile(rb"[?&]t=(\d+)")


def latency(rate: int, seconds: float, fmt: str, work: Path) -> Latency:
    log = work / f"latency-{rate}.log"
    log.write_bytes(b"")
    state = work / f"state-latency-{rate}"
    child = subprocess.Popen(tail_command(state, fmt, str(log)), stdout=subprocess.PIPE, cwd=REPO)
    assert child.stdout is not None
    delays: list[float] = []
    lines_seen = [0]
    stop_reading = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        fd = child.stdout.fileno()
        pending = b""
        while not stop_reading.is_set():
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return
            now = time.monotonic_ns()
            pending += chunk
            *complete, pending = pending.split(b"\n")
            lines_seen[0] += len(complete)
            for line in complete:
                match = _WRITE_TIME.search(line)
                if match:
                    delays.append((now - int(match.group(1))) / 1e6)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # Start-up is not latency: measure only once a warm-up line has come through.
    with log.open("ab") as handle:
        handle.write(b'192.0.2.1 - - [28/Nov/2026:02:00:00 +0000] "GET /warmup HTTP/1.1" 200 5 "-" "bench"\n')
    deadline = time.monotonic() + 60
    while not lines_seen[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    cpu_before = cpu_seconds(child.pid)
    wall_before = time.monotonic()
    written = 0
    with log.open("ab", buffering=0) as handle:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) + 1
            if due > written:
                now = time.monotonic_ns()
                handle.write(
                    b"".join(
                        b'192.0.2.1 - - [28/Nov/2026:02:00:00 +0000] "GET /lat?t=%d&n=%d HTTP/1.1" 200 512 "-" "bench"\n'
                        % (now, n)
                        for n in range(written, due)
                    )
                )
                written = due
            time.sleep(0.0005)
    written = log.read_bytes().count(b"\n") - 1  # what is in the file must come out (but the warm-up)
    deadline = time.monotonic() + 30
    while len(delays) < written and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu = cpu_seconds(child.pid) - cpu_before
    wall = time.monotonic() - wall_before
    stop_reading.set()
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    ordered = sorted(delays)
    return Latency(
        rate,
        len(ordered) if len(ordered) == written else -len(ordered),  # negative: some never came
        statistics.median(ordered) if ordered else float("nan"),
        ordered[int(len(ordered) * 0.99) - 1] if ordered else float("nan"),
        ordered[-1] if ordered else float("nan"),
        100.0 * cpu / wall,
    )


def idle_cpu_percent(seconds: float, fmt: str, work: Path) -> float:
    log = work / "idle.log"
    log.write_bytes(b'192.0.2.1 - - [28/Nov/2026:02:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "idle"\n')
    child = subprocess.Popen(
        tail_command(work / "state-idle", fmt, str(log)), stdout=subprocess.PIPE, cwd=REPO
    )
    assert child.stdout is not None
    # Start-up is not idle time: wait for the file's one record, then for the first checkpoint
    # write and the like to pass (a loaded machine can take seconds to import and start).
    child.stdout.readline()
    time.sleep(2.0)
    before = cpu_seconds(child.pid)
    time.sleep(seconds)
    used = cpu_seconds(child.pid) - before
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    return 100.0 * used / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--format", default="auto", help="--format given to logsidecar tail")
    parser.add_argument("--file", type=Path, help="use this combined-format file instead of generating one")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-idle", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="logsidecar-bench-"))
    try:
        path = args.file
        if path is None:
            path = work / "access.log"
            print(f"generating {args.lines:,} combined lines ...", file=sys.stderr)
            generate(path, args.lines)
        lines = sum(1 for _ in path.open("rb")) if args.file else args.lines
        size_mib = path.stat().st_size / 2**20
        cat_s = timed(["cat", str(path)], stdout=subprocess.DEVNULL)
        wc_s = timed(["wc", "-l", str(path)], stdout=subprocess.DEVNULL)
        load_before = os.getloadavg()[0]
        result = throughput(path, lines, args.format, work)
        rows = [
            ("file", f"{lines:,} lines, {size_mib:.1f} MiB, format {args.format}"),
            ("load average (1 min) before", f"{load_before:.2f} on {os.cpu_count()} cores"),
            ("baseline: cat FILE > /dev/null", f"{cat_s:.3f} s  ({lines / cat_s:,.0f} lines/s)"),
            ("baseline: wc -l FILE", f"{wc_s:.3f} s  ({lines / wc_s:,.0f} lines/s)"),
            ("tail → json: lines/s (from start)", f"{result.lines / result.seconds_total:,.0f}"),
            ("tail → json: lines/s (from first record)", f"{result.lines / result.seconds_from_first:,.0f}"),
            ("tail → json: wall s", f"{result.seconds_total:.2f}"),
            (
                "tail → json: CPU s (user+sys)",
                f"{result.cpu_s:.2f}  ({result.lines / result.cpu_s:,.0f} lines per CPU s)",
            ),
            ("tail → json: peak RSS", f"{result.peak_rss_mib:.1f} MiB"),
        ]
        if not args.skip_latency:
            for rate in (1_000, 10_000):
                lat = latency(rate, args.latency_seconds, args.format, work)
                rows += [
                    (
                        f"latency @ {rate:,} lines/s: p50 / p99 / max",
                        f"{lat.p50_ms:.1f} / {lat.p99_ms:.1f} / {lat.max_ms:.1f} ms  ({lat.samples:,} records)",
                    ),
                    (f"CPU @ {rate:,} lines/s", f"{lat.cpu_percent:.1f} %"),
                ]
        if not args.skip_idle:
            rows.append(
                (
                    f"idle CPU over {args.idle_seconds:g} s",
                    f"{idle_cpu_percent(args.idle_seconds, args.format, work):.2f} %",
                )
            )
        width = max(len(name) for name, _ in rows)
        print()
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
