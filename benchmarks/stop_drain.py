"""How much a stop drains: a backlog of unread lines, then SIGTERM to `logsidecar tail`; printed as a table.

    python benchmarks/stop_drain.py [--lines 20000 100000 400000] [--drain-timeout 8s] [--output otlp]

For each backlog size: `logsidecar tail` (a real subprocess) follows an empty combined-format log; it
is frozen (SIGSTOP), the backlog is appended (benchmarks/generate_logs.py), then it gets SIGTERM and
SIGCONT, so every line is unread when it handles the signal. Printed: the time from SIGTERM to exit,
the lines the receiver got, whether the stop says it drained everything, and the lines its last log
line names as left. `--output otlp` sends to the OTLP/gRPC witness of tests/support/otlp_receiver.py
(in this process); `stdout` counts the JSON lines on the child's stdout.

No assertions: numbers only. The machine's load matters (2 shared cores): the table prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.generate_logs import generate_lines  # noqa: E402
from tests.support.otlp_receiver import GrpcWitness  # noqa: E402


def run_once(lines: int, drain_timeout: str, output: str, witness: GrpcWitness | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="stop-drain-") as tmp:
        log = Path(tmp) / "access.log"
        log.write_bytes(b"")
        args = [sys.executable, "-m", "logsidecar", "tail", "--format", "combined", "--log-format", "json"]
        args += ["--state-dir", str(Path(tmp) / "state"), "--drain-timeout", drain_timeout]
        if output == "otlp":
            assert witness is not None
            args += ["--output", "otlp", "--otlp-endpoint", witness.endpoint]
        else:
            args += ["--output", "stdout", "--stdout-format", "json"]
        args.append(str(log))
        stderr_path = Path(tmp) / "stderr"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with stderr_path.open("wb") as stderr:
            child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, env=env, cwd=REPO)
        counted = [0]

        def count_stdout() -> None:
            assert child.stdout is not None
            for _ in child.stdout:
                counted[0] += 1

        reader = threading.Thread(target=count_stdout, daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while b'"file_added"' not in stderr_path.read_bytes():
            if time.monotonic() > deadline:
                raise RuntimeError(stderr_path.read_text()[-2000:])
            time.sleep(0.05)
        before = witness.record_count if witness is not None else 0
        os.kill(child.pid, signal.SIGSTOP)
        with log.open("ab") as handle:
            handle.writelines(line + b"\n" for line in generate_lines("combined", lines))
        size = log.stat().st_size
        started = time.monotonic()
        os.kill(child.pid, signal.SIGTERM)
        os.kill(child.pid, signal.SIGCONT)
        code = child.wait(120)
        took = time.monotonic() - started
        reader.join(10)
        received = (witness.record_count - before) if witness is not None else counted[0]
        last = json.loads(stderr_path.read_bytes().splitlines()[-1])
        return {
            "lines": lines,
            "MiB": size / 2**20,
            "exit": code,
            "took_s": took,
            "received": received,
            "drained": last.get("drained"),
            "left": last.get("lines_left", 0),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[20_000, 100_000, 400_000])
    parser.add_argument("--drain-timeout", default="8s")
    parser.add_argument("--output", choices=["otlp", "stdout"], default="otlp")
    options = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; output {options.output}")
    print(f"--drain-timeout {options.drain_timeout}")
    print(
        f"{'backlog lines':>13} {'MiB':>6} {'exit':>4} {'stop took':>9} {'received':>9} {'drained':>7} {'left':>7}"
    )
    witness = GrpcWitness().start() if options.output == "otlp" else None
    try:
        for lines in options.lines:
            row = run_once(lines, options.drain_timeout, options.output, witness)
            print(
                f"{row['lines']:>13} {row['MiB']:>6.1f} {row['exit']:>4} {row['took_s']:>8.2f}s "
                f"{row['received']:>9} {row['drained']!s:>7} {row['left']!s:>7}"
            )
    finally:
        if witness is not None:
            witness.stop()


if __name__ == "__main__":
    main()
