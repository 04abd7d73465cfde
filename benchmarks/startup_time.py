"""Time from start to ready: `logsidecar tail --http-addr ...` started, until /readyz answers 200.

    python benchmarks/startup_time.py [--repeat 10] [--compare-tree /work/main]

Runs `python -m logsidecar tail` (this interpreter: use a clean venv for figures a user sees) on
a small file with the HTTP endpoint on a free loopback port, polls /readyz every 5 ms from the
moment the process is started, and stops it with SIGTERM once ready. With --compare-tree, the other
checkout is run as well, alternated (A B A B ...: the machine is shared). Prints the median, min and
max seconds to ready per tree, and the RSS once ready. Numbers only, no assertions.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINE = b'192.0.2.7 - - [05/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 12 "-" "probe/1"\n'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def one_start(tree: Path, workdir: Path) -> tuple[float, int]:
    """Seconds from Popen to /readyz 200, and the RSS (KiB) then."""
    log = workdir / "access.log"
    log.write_bytes(LINE)
    port = free_port()
    command = [
        sys.executable, "-m", "logsidecar", "tail", "--format", "combined",
        "--state-dir", str(workdir / "state"), "--http-addr", f"127.0.0.1:{port}", str(log),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.monotonic()
    child = subprocess.Popen(
        command, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}/readyz"
        while not ready(url):
            if child.poll() is not None:
                raise SystemExit(f"{tree}: the command exited ({child.returncode}) before it was ready")
            if time.monotonic() - start > 30:
                raise SystemExit(f"{tree}: not ready after 30 s")
            time.sleep(0.005)
        elapsed = time.monotonic() - start
        return elapsed, rss_kib(child.pid)
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--compare-tree", type=Path, help="another logsidecar checkout, alternated")
    args = parser.parse_args()
    trees = [REPO] + ([args.compare_tree.resolve()] if args.compare_tree else [])
    times: dict[Path, list[float]] = {tree: [] for tree in trees}
    rss: dict[Path, list[int]] = {tree: [] for tree in trees}
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        for round_ in range(args.repeat):
            for tree in trees:
                workdir = Path(tmp) / f"{round_}-{trees.index(tree)}"
                workdir.mkdir()
                elapsed, kib = one_start(tree, workdir)
                times[tree].append(elapsed)
                rss[tree].append(kib)
    print(f"{'tree':40} {'ready s (median)':>16} {'min':>6} {'max':>6} {'RSS MiB at ready':>17}")
    for tree in trees:
        t = times[tree]
        print(
            f"{str(tree):40} {statistics.median(t):16.3f} {min(t):6.3f} {max(t):6.3f} "
            f"{statistics.median(rss[tree]) / 1024:17.1f}"
        )


if __name__ == "__main__":
    main()
