"""/metrics with thousands of followed files: its size and render time, and the latency of an append
while it is scraped back to back.

A real `python -m logsidecar tail --http-addr ...` child follows FILES files (one line each). Then a
writer appends a numbered line every 20 ms to one of them and the time until it is on the child's
stdout is taken: first with nobody scraping, then while a thread scrapes /metrics without pause.

    python3 benchmarks/metrics_at_scale.py --files 10000
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

LINE = b'127.0.0.1 - - [05/Dec/2026:12:00:00 +0000] "GET /%s HTTP/1.1" 200 12\n'


def scrape(port: int) -> tuple[int, float]:
    start = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as answer:
        size = len(answer.read())
    return size, time.perf_counter() - start


class Arrivals(threading.Thread):
    """Reads the child's stdout: counts lines and notes when each `lat-<n>` marker arrives."""

    def __init__(self, stream: object) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines = 0
        self.seen: dict[int, float] = {}

    def run(self) -> None:
        for line in self.stream:  # type: ignore[attr-defined]
            self.lines += 1
            at = line.find(b"/lat-")
            if at >= 0:
                self.seen[int(line[at + 5 : line.index(b" ", at)])] = time.monotonic()


def latencies(path: Path, arrivals: Arrivals, first: int, count: int) -> list[float]:
    written: dict[int, float] = {}
    with path.open("ab", buffering=0) as f:
        for n in range(first, first + count):
            written[n] = time.monotonic()
            f.write(LINE % f"lat-{n}".encode())
            time.sleep(0.02)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(n in arrivals.seen for n in written):
        time.sleep(0.05)
    return [arrivals.seen.get(n, float("inf")) - t for n, t in written.items()]


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--appends", type=int, default=150)
    args, extra = ap.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp, "logs")
        logs.mkdir()
        for i in range(args.files):
            (logs / f"f-{i:06d}.log").write_bytes(LINE % b"seed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        child = subprocess.Popen(
            [sys.executable, "-m", "logsidecar", "tail", "--state-dir", "none", "--http-addr",
             f"127.0.0.1:{port}", "-f", "common", "--stdout-format", "json", *extra, str(logs / "*.log")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        arrivals = Arrivals(child.stdout)
        arrivals.start()
        try:
            start = time.monotonic()
            while arrivals.lines < args.files:
                time.sleep(0.1)
                if time.monotonic() - start > 600:
                    raise SystemExit(f"only {arrivals.lines} of {args.files} files read in 600 s")
            print(f"files followed                 {args.files} (read in {time.monotonic() - start:.1f} s)")
            scrapes = [scrape(port) for _ in range(5)]
            print(f"/metrics size                  {scrapes[-1][0]} bytes")
            print(
                f"/metrics time                  median {statistics.median(t for _, t in scrapes) * 1000:.1f} ms"
            )
            hot = logs / "f-000000.log"
            print(f"append latency, no scrape      {summary(latencies(hot, arrivals, 0, args.appends))}")
            stop = threading.Event()
            scraped: list[float] = []

            def scrape_forever() -> None:
                while not stop.is_set():
                    scraped.append(scrape(port)[1])

            scraper = threading.Thread(target=scrape_forever, daemon=True)
            scraper.start()
            during = latencies(hot, arrivals, args.appends, args.appends)
            stop.set()
            scraper.join()
            print(
                f"append latency, scraping       {summary(during)} "
                f"({len(scraped)} scrapes, median {statistics.median(scraped) * 1000:.1f} ms)"
            )
        finally:
            child.terminate()
            child.wait(timeout=60)


if __name__ == "__main__":
    main()
