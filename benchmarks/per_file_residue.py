"""What the sidecar keeps per file it ever saw: RSS and /metrics after N created-then-deleted files.

A real `python -m logsidecar tail --http-addr ...` child follows `DIR/*.log` while a writer creates
each file, writes 3 lines to it and deletes it (distinct names: every file a new path). Prints the
child's RSS (VmRSS) before and after, the growth per file, and the /metrics size, scrape time and the
number of per-path series still exposed once the files are released.

    python3 benchmarks/per_file_residue.py --files 9000
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def scrape(port: int) -> tuple[bytes, float]:
    start = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as answer:
        body = answer.read()
    return body, time.perf_counter() - start


def wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            scrape(port)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the tail child never served /metrics")


def path_series(body: bytes, marker: str) -> int:
    return sum(1 for line in body.splitlines() if marker.encode() in line and not line.startswith(b"#"))


def run(files: int, rounds: int, rate: float, settle_s: float, extra: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp, "logs")
        logs.mkdir()
        port = free_port()
        selflog = Path(tmp, "selflog.jsonl")
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "logsidecar",
                "tail",
                "--state-dir",
                str(Path(tmp, "state")),
                "--http-addr",
                f"127.0.0.1:{port}",
                "-f",
                "common",
                *extra,
                str(logs / "*.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=selflog.open("wb"),
        )
        try:
            wait_ready(port)
            # Warm up with the same workload so one-off imports and caches are not counted per file.
            churn(logs, "warm", 200, rate)
            time.sleep(settle_s)
            rss = [rss_kb(child.pid)]
            start = time.monotonic()
            for round_ in range(rounds):
                churn(logs, f"r{round_}", files, rate)
                time.sleep(settle_s)  # deleted files are released once drained and idle (5 s)
                rss.append(rss_kb(child.pid))
            elapsed = time.monotonic() - start
            body, took = scrape(port)
            log = selflog.read_text()
            return {
                "files_per_round": files,
                "rounds": rounds,
                "files_followed": log.count('"event":"file_added"'),
                "files_released": log.count('"event":"file_drained"'),
                "elapsed_s": elapsed,
                "rss_mb": " -> ".join(f"{kb / 1024:.1f}" for kb in rss),
                "growth_per_file_kb": (rss[-1] - rss[0]) / (files * rounds),
                "last_round_growth_kb": rss[-1] - rss[-2],
                "metrics_bytes": len(body),
                "metrics_s": took,
                "series_for_released_paths": path_series(body, str(logs)),
            }
        finally:
            child.terminate()
            child.wait(timeout=30)


def churn(logs: Path, prefix: str, files: int, rate: float) -> None:
    """Create, write 3 lines to, and delete `files` files, about `rate` per second."""
    line = b'127.0.0.1 - - [05/Dec/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 12\n'
    start = time.monotonic()
    for i in range(files):
        path = logs / f"{prefix}-{i:06d}.log"
        path.write_bytes(line * 3)
        due = start + (i + 1) / rate
        time.sleep(max(0.0, due - time.monotonic()))
        path.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=9000)
    ap.add_argument("--rounds", type=int, default=3, help="churn rounds (steady state: the last adds ~0)")
    ap.add_argument("--rate", type=float, default=600.0, help="files per second")
    ap.add_argument("--settle", type=float, default=8.0, help="seconds to wait for releases")
    args, extra = ap.parse_known_args()
    for name, value in run(args.files, args.rounds, args.rate, args.settle, extra).items():
        print(f"{name:28s} {value:.3f}" if isinstance(value, float) else f"{name:28s} {value}")


if __name__ == "__main__":
    main()
