"""A sidecar's footprint: CPU and memory at the rates Apache really runs, next to Fluent Bit. One table.

    python benchmarks/footprint.py [--rates 10,100,1000,10000] [--seconds 20] [--warmup 3] [--repeat 2]
                                   [--idle-seconds 20] [--outage-seconds 30] [--throughput-lines 300000]
                                   [--skip ROW,...]

Subjects, run one at a time and alternated (A B C, A B C ...; medians over --repeat, the spread in
brackets, because the machine is shared): `logsidecar tail` with its defaults (checkpoints on,
stdout JSON lines), and, when a `fluent-bit` binary is on PATH, Fluent Bit's tail input with its
stock `apache2` parser and stdout json_lines output at flush 1 s (its default) and 0.05 s (a latency
near ours); without it those columns are skipped with a message. Fluent Bit keeps no checkpoints
here (no `db`), we do.

Rows:
- idle: following a file nobody writes, after --warmup s of start-up: CPU % of a core over
  --idle-seconds, wake-ups per second (every thread's run count, /proc/PID/task/*/schedstat), RSS;
- at each rate of --rates: a writer process appends realistic combined lines (benchmarks/
  generate_logs.py, one write per due line or group of lines, as httpd children do) at that steady
  rate; after --warmup s, the CPU % of a core over --seconds, and the peak RSS (VmHWM) at the end.
  stdout is a pipe drained by `cat` into a file, as a container runtime's log shim drains a
  container's stdout (the issue's first run used /dev/null, run_all.py a Python reader and latency
  probe; a pipe is what a Pod has), and afterwards "kept up" says whether every line written came out;
- latency at 1,000 lines/s: the same writer puts its write time (CLOCK_MONOTONIC ns) in each line's
  query string (`t=`); a reader thread here takes the subject's stdout from a pipe and notes the
  arrival time: p50 / p99 of arrival - write (and the CPU % with that pipe reader, for comparison);
- OTLP outage: output to the real rotel collector (logsidecar: OTLP/gRPC; Fluent Bit: its
  opentelemetry output, OTLP/HTTP), 1,000 lines/s; after --warmup s rotel is stopped for
  --outage-seconds while the writer goes on: RSS before, at the end of the outage, and the peak;
- throughput: tail a --throughput-lines combined file from its beginning to a pipe (JSON lines),
  lines/s from process start, CPU s and peak RSS (Fluent Bit: read_from_head, file_cache_advise off,
  flush 0.1 s, as in /work/shared/notes/fluent-bit-build.md);
- throughput into rotel: the same file from its beginning over OTLP into one real rotel collector
  (blackhole exporter, as in the outage row; started once for the row): logsidecar over OTLP/gRPC
  and OTLP/HTTP, Fluent Bit's opentelemetry output (OTLP/HTTP, logs_uri /v1/logs; flush 0.1 s).
  The clock runs from process start until the subject's own count of records delivered reaches
  the file's line count (asked every 20 ms near the end, rarely before: `poll_interval_s`): ours
  is logsidecar_records_delivered_total on --http-addr /metrics (a record counts once its send
  returned, i.e. rotel answered), Fluent Bit's is its output's `proc_records` on its HTTP server
  (-H, /api/v1/metrics: records of chunks the output flushed with success). Both count exactly the
  records the collector accepted (rotel's blackhole gives no count of its own). CPU s and peak RSS
  as for stdout;
- image size: `docker image inspect logsidecar/logsidecar:local`, when present.

Numbers only, no assertions. CPU is user+sys of the whole process (every thread) from /proc/PID/stat.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.generate_logs import generate_lines  # noqa: E402
from benchmarks.tail_end_to_end import cpu_seconds, peak_rss_mib  # noqa: E402

if TYPE_CHECKING:
    from tests.support.otlp_receiver import RotelCollector

IMAGE = "logsidecar/logsidecar:local"
ROWS = ("idle", "rates", "latency", "outage", "throughput", "otlp-throughput", "image")
LATENCY_RATE = 1_000
LOOPBACK = "127.0.0.1"
OUTAGE_RATE = 1_000


# -- probes ---------------------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_count(pid: int) -> int:
    """How many times any thread of `pid` was scheduled (third field of each task's schedstat):
    a wake-up counter."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[2])
        except (OSError, IndexError, ValueError):
            pass  # the thread ended meanwhile
    return total


# -- the writer: realistic combined lines, each with its write time --------------------------------------

_REQUEST = re.compile(rb'^(.*?"[A-Z]+ )(\S+)( HTTP/[0-9.]+".*)$')


def line_templates(count: int = 4096, seed: int = 18) -> list[tuple[bytes, bytes]]:
    """(before, after) pairs of realistic combined lines, split where the write time goes: the end
    of the request URL, as `?t=NS` or `&t=NS`. Lines without a request line are left out."""
    templates = []
    for line in generate_lines("combined", count, seed):
        match = _REQUEST.match(line)
        if match is None:
            continue
        url = match.group(2)
        joiner = b"&" if b"?" in url else b"?"
        templates.append((match.group(1) + url + joiner + b"t=", match.group(3) + b"\n"))
    return templates


def write_steady(path: str, rate: int, seconds: float, templates: list[tuple[bytes, bytes]]) -> None:
    """Append `rate` lines/s to `path` for `seconds`: every line when it is due (lines due at the same
    moment in one write), each carrying time.monotonic_ns() at its write."""
    count = len(templates)
    written = 0
    with open(path, "ab", buffering=0) as handle:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) + 1
            if due > written:
                stamp = b"%d" % time.monotonic_ns()
                handle.write(
                    b"".join(
                        templates[n % count][0] + stamp + templates[n % count][1] for n in range(written, due)
                    )
                )
                written = due
            time.sleep(max(0.0, started + written / rate - time.monotonic()))


class Writer:
    """`write_steady` in its own process, so that it takes no GIL from a reader thread here."""

    def __init__(self, path: Path, rate: int, seconds: float, templates: list[tuple[bytes, bytes]]) -> None:
        context = multiprocessing.get_context("fork")
        self.process = context.Process(target=write_steady, args=(str(path), rate, seconds, templates))

    def __enter__(self) -> Writer:
        self.process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()


# -- the subjects ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    name: str
    # (log file, work directory, output: "stdout" | OTLP endpoint URL) -> argv
    command: Callable[[Path, Path, str], list[str]]
    # argv to read an existing file from its beginning (throughput)
    from_head: Callable[[Path, Path], list[str]]
    otlp_over_grpc: bool  # else OTLP/HTTP
    # argv to read an existing file from its beginning into OTLP: (log file, work directory, rotel,
    # protocol "grpc" | "http", port of the subject's metrics server) -> argv
    otlp_from_head: Callable[[Path, Path, RotelCollector, str, int], list[str]]
    # records delivered so far, from the subject's metrics server on that port (0 while it is not up)
    delivered: Callable[[int], int]
    otlp_protocols: tuple[str, ...]  # what the throughput-into-rotel row measures it with
    cwd: Path = REPO  # `python -m logsidecar` imports the tree it runs in


def logsidecar_subject(tree: Path = REPO, name: str = "logsidecar") -> Subject:
    def argv(log: Path, work: Path, output: str, *extra: str) -> list[str]:
        outputs = ["--stdout-format", "json"]
        if output != "stdout":
            outputs = ["--output", "otlp", "--otlp-endpoint", output]
        state = Path(tempfile.mkdtemp(dir=work, prefix="state-"))
        return [
            sys.executable, "-m", "logsidecar", "tail", "--format", "combined", "--state-dir", str(state),
            "--log-level", "warning", *outputs, *extra, str(log),
        ]  # fmt: skip

    def otlp_argv(log: Path, work: Path, rotel: RotelCollector, protocol: str, port: int) -> list[str]:
        endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
        extra = ["--http-addr", f"{LOOPBACK}:{port}", "--start-at", "beginning"]
        if protocol == "http":
            extra += ["--otlp-protocol", "http/protobuf"]
        return argv(log, work, endpoint, *extra)

    return Subject(
        name,
        lambda log, work, output: argv(log, work, output),
        lambda log, work: argv(log, work, "stdout", "--start-at", "beginning"),
        otlp_over_grpc=True,
        otlp_from_head=otlp_argv,
        delivered=logsidecar_delivered,
        otlp_protocols=("grpc", "http"),
        cwd=tree,
    )


def logsidecar_delivered(port: int) -> int:
    """logsidecar_records_delivered_total, summed over sinks, from the tailer's /metrics."""
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("logsidecar_records_delivered_total{")))  # fmt: skip


def fluent_bit_delivered(port: int) -> int:
    """`proc_records` of Fluent Bit's outputs, from its HTTP server's /api/v1/metrics."""
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/api/v1/metrics", timeout=2) as response:
            outputs = json.loads(response.read()).get("output", {})
    except (OSError, ValueError):
        return 0
    return sum(int(output.get("proc_records", 0)) for output in outputs.values())


def fluent_bit_subjects(binary: str, parsers: Path) -> list[Subject]:
    def argv(log: Path, output: str, flush: str, *tail_extra: str) -> list[str]:
        outputs = ["-o", "stdout", "-p", "format=json_lines"]
        if output != "stdout":
            host, port = output.removeprefix("http://").rsplit(":", 1)
            outputs = ["-o", "opentelemetry", "-p", f"host={host}", "-p", f"port={port}"]
        return [
            binary, "-q", "-R", str(parsers), "-i", "tail", "-p", f"path={log}", "-p", "parser=apache2",
            *tail_extra, *outputs, "-f", flush,
        ]  # fmt: skip

    from_head = ("-p", "read_from_head=on", "-p", "file_cache_advise=off")

    def otlp_argv(log: Path, work: Path, rotel: RotelCollector, protocol: str, port: int) -> list[str]:
        return [*argv(log, rotel.http_endpoint, "0.1", *from_head), "-H", "-P", str(port)]

    subjects = []
    for flush in ("1", "0.05"):
        subjects.append(
            Subject(
                f"fluent-bit -f {flush}",
                lambda log, work, output, flush=flush: argv(log, output, flush),
                lambda log, work: argv(log, "stdout", "0.1", *from_head),
                otlp_over_grpc=False,
                otlp_from_head=otlp_argv,
                delivered=fluent_bit_delivered,
                otlp_protocols=("http",),
            )
        )
    return subjects


def start(subject: Subject, argv: list[str], work: Path, stdout: int | Path) -> subprocess.Popen[bytes]:
    stderr = open(work / "stderr.log", "ab")  # noqa: SIM115 - owned by the child
    out = stdout if isinstance(stdout, int) else open(stdout, "wb")  # noqa: SIM115
    try:
        return subprocess.Popen(argv, stdout=out, stderr=stderr, cwd=subject.cwd)
    finally:
        stderr.close()
        if not isinstance(out, int):
            out.close()


def stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


# -- the measurements -----------------------------------------------------------------------------------


@dataclass
class Steady:
    cpu_percent: float
    peak_rss_mib: float
    written: int
    delivered: int


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def steady(subject: Subject, rate: int, args: argparse.Namespace, work: Path, templates: list) -> Steady:
    run = Path(tempfile.mkdtemp(dir=work, prefix="rate-"))
    log = run / "access.log"
    log.touch()
    out = run / "stdout.jsonl"
    child = start(subject, subject.command(log, run, "stdout"), run, subprocess.PIPE)
    # stdout is a pipe drained by `cat` into a file: what a container runtime's log shim does
    with out.open("wb") as sink:
        drain = subprocess.Popen(["cat"], stdin=child.stdout, stdout=sink)
    assert child.stdout is not None
    child.stdout.close()
    try:
        with Writer(log, rate, args.warmup + args.seconds, templates):
            time.sleep(args.warmup)
            cpu_before, wall_before = cpu_seconds(child.pid), time.monotonic()
            time.sleep(args.seconds)
            cpu = cpu_seconds(child.pid) - cpu_before
            wall = time.monotonic() - wall_before
            peak = peak_rss_mib(child.pid)
        written = count_lines(log)
        deadline = time.monotonic() + 10
        while (delivered := count_lines(out)) < written and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop(child)
        drain.wait(30)
    return Steady(100.0 * cpu / wall, peak, written, delivered)


@dataclass
class Idle:
    cpu_percent: float
    wakeups_per_s: float
    rss_mib: float


def idle(subject: Subject, args: argparse.Namespace, work: Path, templates: list) -> Idle:
    run = Path(tempfile.mkdtemp(dir=work, prefix="idle-"))
    log = run / "access.log"
    log.touch()
    child = start(subject, subject.command(log, run, "stdout"), run, run / "stdout.jsonl")
    try:
        with log.open("ab") as handle:  # one record, so that the start-up includes a first read
            before, after = templates[0]
            handle.write(before + b"0" + after)
        time.sleep(args.warmup)
        cpu_before, runs_before, wall_before = cpu_seconds(child.pid), run_count(child.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        wall = time.monotonic() - wall_before
        result = Idle(
            100.0 * (cpu_seconds(child.pid) - cpu_before) / wall,
            (run_count(child.pid) - runs_before) / wall,
            rss_mib(child.pid),
        )
    finally:
        stop(child)
    return result


_WRITE_TIME = re.compile(rb"[?&]t=(\d+)")


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    cpu_percent: float
    received: int
    written: int


def latency(subject: Subject, args: argparse.Namespace, work: Path, templates: list) -> Latency:
    run = Path(tempfile.mkdtemp(dir=work, prefix="latency-"))
    log = run / "access.log"
    log.touch()
    child = start(subject, subject.command(log, run, "stdout"), run, subprocess.PIPE)
    assert child.stdout is not None
    delays: list[float] = []
    measuring = threading.Event()

    def read(fd: int) -> None:
        pending = b""
        while chunk := os.read(fd, 1 << 20):
            now = time.monotonic_ns()
            pending += chunk
            *complete, pending = pending.split(b"\n")
            if measuring.is_set():
                for line in complete:
                    if match := _WRITE_TIME.search(line):
                        delays.append((now - int(match.group(1))) / 1e6)

    reader = threading.Thread(target=read, args=(child.stdout.fileno(),), daemon=True)
    reader.start()
    try:
        with Writer(log, LATENCY_RATE, args.warmup + args.seconds, templates):
            time.sleep(args.warmup)  # start-up is not latency
            measuring.set()
            written_before = count_lines(log)
            cpu_before, wall_before = cpu_seconds(child.pid), time.monotonic()
            time.sleep(args.seconds)
            cpu = cpu_seconds(child.pid) - cpu_before
            wall = time.monotonic() - wall_before
        written = count_lines(log) - written_before
        deadline = time.monotonic() + 5  # Fluent Bit at -f 1 holds up to a second
        while len(delays) < written and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop(child)
        reader.join(5)
    ordered = sorted(delays)
    if not ordered:
        return Latency(float("nan"), float("nan"), 100.0 * cpu / wall, 0, written)
    return Latency(
        statistics.median(ordered),
        ordered[max(0, int(len(ordered) * 0.99) - 1)],
        100.0 * cpu / wall,
        len(ordered),
        written,
    )


@dataclass
class Outage:
    rss_before_mib: float
    rss_end_mib: float
    peak_rss_mib: float


def outage(subject: Subject, args: argparse.Namespace, work: Path, templates: list) -> Outage:
    from tests.support.otlp_receiver import RotelCollector

    run = Path(tempfile.mkdtemp(dir=work, prefix="outage-"))
    log = run / "access.log"
    log.touch()
    with RotelCollector(run / "rotel", forward_to=None) as rotel:
        endpoint = rotel.grpc_endpoint if subject.otlp_over_grpc else rotel.http_endpoint
        child = start(subject, subject.command(log, run, endpoint), run, run / "stdout.log")
        try:
            with Writer(log, OUTAGE_RATE, args.warmup + args.outage_seconds, templates):
                time.sleep(args.warmup)
                before = rss_mib(child.pid)
                rotel.stop()
                time.sleep(args.outage_seconds)
                result = Outage(before, rss_mib(child.pid), peak_rss_mib(child.pid))
        finally:
            stop(child)
    return result


@dataclass
class Throughput:
    lines_per_s: float
    cpu_s: float
    peak_rss_mib: float


def throughput(subject: Subject, path: Path, lines: int, work: Path) -> Throughput:
    run = Path(tempfile.mkdtemp(dir=work, prefix="throughput-"))
    started = time.monotonic()
    child = start(subject, subject.from_head(path, run), run, subprocess.PIPE)
    assert child.stdout is not None
    seen = 0
    try:
        while seen < lines:
            chunk = os.read(child.stdout.fileno(), 1 << 20)
            if not chunk:
                raise RuntimeError(f"{subject.name} exited after {seen} lines (see {run}/stderr.log)")
            seen += chunk.count(b"\n")
        wall = time.monotonic() - started
        result = Throughput(lines / wall, cpu_seconds(child.pid), peak_rss_mib(child.pid))
    finally:
        stop(child)
    return result


def poll_interval_s(done: int, total: int, elapsed_s: float) -> float:
    """When to ask a subject's metrics again: a quarter of the time left at the rate so far, between
    20 ms and 0.5 s. Asking costs the subject CPU (our /metrics took ~3 ms a scrape: every 20 ms that
    was ~15 % of a core), so it asks rarely until the end is near, then every 20 ms."""
    if done <= 0:
        return 0.1
    left_s = (total - done) / (done / elapsed_s)
    return min(max(left_s / 4, 0.02), 0.5)


def otlp_throughput(
    subject: Subject, protocol: str, path: Path, lines: int, work: Path, rotel: RotelCollector
) -> Throughput:
    """`path` from its beginning into `rotel`; the clock stops when the subject's own metrics count
    every line delivered (see the module docstring)."""
    from tests.support.otlp_receiver import free_port

    run = Path(tempfile.mkdtemp(dir=work, prefix=f"otlp-{protocol}-"))
    port = free_port()
    started = time.monotonic()
    child = start(subject, subject.otlp_from_head(path, run, rotel, protocol, port), run, run / "stdout.log")
    try:
        while (delivered := subject.delivered(port)) < lines:
            if child.poll() is not None:
                raise RuntimeError(
                    f"{subject.name} exited before delivering every line (see {run}/stderr.log)"
                )
            if time.monotonic() - started > 600:
                raise TimeoutError(f"{subject.name}: not every line delivered after 600 s (see {run})")
            time.sleep(poll_interval_s(delivered, lines, time.monotonic() - started))
        wall = time.monotonic() - started
        result = Throughput(lines / wall, cpu_seconds(child.pid), peak_rss_mib(child.pid))
    finally:
        stop(child)
    return result


def image_size_mib() -> str:
    if shutil.which("docker") is None:
        return "n/a (no docker)"
    done = subprocess.run(
        ["docker", "image", "inspect", IMAGE, "--format", "{{.Size}}"], capture_output=True, text=True
    )
    if done.returncode != 0:
        return f"n/a ({IMAGE} not built)"
    return f"{int(done.stdout.strip()) / 2**20:.0f} MiB"


# -- the table ------------------------------------------------------------------------------------------


def summary(values: Sequence[float], fmt: str) -> str:
    """Median, and the spread over the repeats in brackets."""
    if not values:
        return "-"
    text = fmt.format(statistics.median(values))
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}–{fmt.format(max(values))})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="10,100,1000,10000", help="lines/s, comma separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of start-up before measuring")
    parser.add_argument("--repeat", type=int, default=2, help="runs per subject and row, alternated")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--outage-seconds", type=float, default=30.0)
    parser.add_argument("--throughput-lines", type=int, default=300_000)
    parser.add_argument("--skip", default="", help=f"rows to leave out, comma separated: {','.join(ROWS)}")
    parser.add_argument("--fluent-bit", default=shutil.which("fluent-bit"), help="the binary [PATH]")
    parser.add_argument(
        "--compare-tree", type=Path, help="another logsidecar checkout, as one more column (A/B a change)"
    )
    parser.add_argument("--fluent-bit-parsers", type=Path, help="its parsers.conf [next to the binary]")
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",") if rate]
    skip = {row for row in args.skip.split(",") if row}

    subjects = [logsidecar_subject()]
    if args.compare_tree:
        subjects.append(logsidecar_subject(args.compare_tree.resolve(), f"logsidecar {args.compare_tree}"))
    if args.fluent_bit:
        parsers = args.fluent_bit_parsers or (
            Path(args.fluent_bit).resolve().parents[1] / "etc" / "fluent-bit" / "parsers.conf"
        )
        subjects += fluent_bit_subjects(args.fluent_bit, parsers)
    else:
        print("fluent-bit is not on PATH: its columns are skipped (see --fluent-bit)", file=sys.stderr)
    names = [subject.name for subject in subjects]
    templates = line_templates()
    work = Path(tempfile.mkdtemp(prefix="logsidecar-footprint-"))
    rows: list[tuple[str, dict[str, str]]] = []
    load_before = os.getloadavg()[0]

    def alternate(measure: Callable[[Subject], object]) -> dict[str, list]:
        results: dict[str, list] = {name: [] for name in names}
        for _ in range(args.repeat):
            for subject in subjects:
                results[subject.name].append(measure(subject))
        return results

    try:
        if "idle" not in skip:
            print(f"idle for {args.idle_seconds:g} s ...", file=sys.stderr)
            got = alternate(lambda s: idle(s, args, work, templates))
            rows.append((f"idle: CPU % over {args.idle_seconds:g} s",
                         {n: summary([r.cpu_percent for r in got[n]], "{:.2f}") for n in names}))  # fmt: skip
            rows.append(("idle: wake-ups/s (all threads)",
                         {n: summary([r.wakeups_per_s for r in got[n]], "{:.1f}") for n in names}))  # fmt: skip
            rows.append(("idle: RSS MiB after start-up",
                         {n: summary([r.rss_mib for r in got[n]], "{:.1f}") for n in names}))  # fmt: skip
        if "rates" not in skip:
            for rate in rates:
                print(f"{rate:,} lines/s for {args.seconds:g} s ...", file=sys.stderr)
                got = alternate(lambda s, rate=rate: steady(s, rate, args, work, templates))
                rows.append((f"{rate:,} lines/s: CPU % of a core",
                             {n: summary([r.cpu_percent for r in got[n]], "{:.1f}") for n in names}))  # fmt: skip
                rows.append((f"{rate:,} lines/s: peak RSS MiB",
                             {n: summary([r.peak_rss_mib for r in got[n]], "{:.1f}") for n in names}))  # fmt: skip
                rows.append((f"{rate:,} lines/s: kept up (lines out/written)",
                             {n: " ".join(f"{r.delivered}/{r.written}" for r in got[n]) for n in names}))  # fmt: skip
        if "latency" not in skip:
            print(f"latency at {LATENCY_RATE:,} lines/s ...", file=sys.stderr)
            got = alternate(lambda s: latency(s, args, work, templates))
            rows.append((f"{LATENCY_RATE:,} lines/s: latency p50 ms",
                         {n: summary([r.p50_ms for r in got[n]], "{:.1f}") for n in names}))  # fmt: skip
            rows.append((f"{LATENCY_RATE:,} lines/s: latency p99 ms",
                         {n: summary([r.p99_ms for r in got[n]], "{:.1f}") for n in names}))  # fmt: skip
            rows.append((f"{LATENCY_RATE:,} lines/s: CPU % with a pipe reader",
                         {n: summary([r.cpu_percent for r in got[n]], "{:.1f}") for n in names}))  # fmt: skip
        if "outage" not in skip:
            print(f"OTLP outage of {args.outage_seconds:g} s at {OUTAGE_RATE:,} lines/s ...", file=sys.stderr)
            got = alternate(lambda s: outage(s, args, work, templates))
            rows.append(("OTLP, 1,000 lines/s: RSS MiB before the outage",
                         {n: summary([r.rss_before_mib for r in got[n]], "{:.1f}") for n in names}))  # fmt: skip
            rows.append((f"OTLP: RSS MiB at the end of a {args.outage_seconds:g} s outage",
                         {n: summary([r.rss_end_mib for r in got[n]], "{:.1f}") for n in names}))  # fmt: skip
            rows.append(("OTLP outage: peak RSS MiB",
                         {n: summary([r.peak_rss_mib for r in got[n]], "{:.1f}") for n in names}))  # fmt: skip
        path = work / "throughput.log"
        by_flush: dict[str, Subject] = {}
        for subject in subjects:  # the flush interval is fixed (0.1 s) for Fluent Bit here
            by_flush.setdefault(subject.name.split(" -f")[0], subject)
        cells = {name: name.split(" -f")[0] for name in names}
        if {"throughput", "otlp-throughput"} - skip and args.throughput_lines:
            with path.open("wb") as handle:
                for line in generate_lines("combined", args.throughput_lines, 7):
                    handle.write(line + b"\n")
        if "throughput" not in skip and args.throughput_lines:
            print(f"throughput over {args.throughput_lines:,} lines ...", file=sys.stderr)
            got = {}
            for _ in range(args.repeat):
                for key, subject in by_flush.items():
                    got.setdefault(key, []).append(throughput(subject, path, args.throughput_lines, work))
            rows.append(("tail → stdout JSON (pipe): lines/s",
                         {n: summary([r.lines_per_s for r in got[cells[n]]], "{:,.0f}") for n in names}))  # fmt: skip
            rows.append(("tail → stdout JSON (pipe): CPU s",
                         {n: summary([r.cpu_s for r in got[cells[n]]], "{:.2f}") for n in names}))  # fmt: skip
            rows.append(("tail → stdout JSON (pipe): peak RSS MiB",
                         {n: summary([r.peak_rss_mib for r in got[cells[n]]], "{:.1f}") for n in names}))  # fmt: skip
        if "otlp-throughput" not in skip and args.throughput_lines:
            print(f"throughput into rotel over {args.throughput_lines:,} lines ...", file=sys.stderr)
            from tests.support.otlp_receiver import RotelCollector

            into: dict[tuple[str, str], list[Throughput]] = {}
            with RotelCollector(work / "rotel-throughput", forward_to=None) as rotel:
                for _ in range(args.repeat):
                    for key, subject in by_flush.items():
                        for protocol in subject.otlp_protocols:
                            into.setdefault((key, protocol), []).append(
                                otlp_throughput(subject, protocol, path, args.throughput_lines, work, rotel)
                            )
            for protocol, label in (("grpc", "OTLP/gRPC"), ("http", "OTLP/HTTP")):
                got_by = {n: into.get((cells[n], protocol), []) for n in names}
                rows.append((f"tail → {label} into rotel: lines/s",
                             {n: summary([r.lines_per_s for r in got_by[n]], "{:,.0f}") for n in names}))  # fmt: skip
                rows.append((f"tail → {label} into rotel: CPU s",
                             {n: summary([r.cpu_s for r in got_by[n]], "{:.2f}") for n in names}))  # fmt: skip
                rows.append((f"tail → {label} into rotel: peak RSS MiB",
                             {n: summary([r.peak_rss_mib for r in got_by[n]], "{:.1f}") for n in names}))  # fmt: skip
        if "image" not in skip:
            cells = {n: "n/a (no image built here)" for n in names}
            cells["logsidecar"] = image_size_mib()
            rows.append(("image size", cells))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    header = ["figure", *names]
    table = [header, *([label, *(cells.get(n, "-") for n in names)] for label, cells in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print()
    print(f"# {os.cpu_count()} cores, load average (1 min) {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; median of {args.repeat} alternated runs (min–max)")  # fmt: skip
    if args.fluent_bit:
        print(f"# fluent-bit: {args.fluent_bit}")
    for index, row in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"\n(run took {time.monotonic() - started:.0f} s)")
