"""Issue 13's `tail` reproducer: hostile lines in one file must not stall another file or /healthz.

    python benchmarks/tail_hostile_lines.py                       # this tree
    python benchmarks/tail_hostile_lines.py --tree /other/checkout --lines 30 --line-bytes 16384

A real `logsidecar tail` (fresh process, `--tree` on the path) follows two files with the reported
format. Once it is up, `--lines` hostile lines (spaces only: the format's lenient regex used to try
every split of them) are appended to one file, then one ordinary line to the other. Printed: how long
until that line's record came out on stdout, and the slowest /healthz answer while the hostile lines
were parsed (polled every 50 ms).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMAT = 'logformat:%{X-Forwarded-For}i %{X-Real-IP}i %l %u %t "%r" %>s %b'
MARKER = b"marker-from-the-other-file"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--lines", type=int, default=30)
    parser.add_argument("--line-bytes", type=int, default=16384)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    tree = args.tree.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        hostile, other = Path(scratch) / "hostile.log", Path(scratch) / "other.log"
        hostile.write_bytes(b"")
        other.write_bytes(b"")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "logsidecar", "tail", "--http-addr", f"127.0.0.1:{port}",
                   "--state-dir", "none", "--format", FORMAT, "--stdout-format", "json", str(hostile), str(other)]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(tree)},
            cwd=tree,
        )
        seen = threading.Event()

        def read_stdout() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                if MARKER in line:
                    seen.set()

        threading.Thread(target=read_stdout, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{port}/healthz"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(url, timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            time.sleep(1.5)  # both files followed
            with hostile.open("ab") as out:
                out.write((b" " * args.line_bytes + b"\n") * args.lines)
            started = time.monotonic()
            with other.open("ab") as out:
                out.write(MARKER + b"\n")
            slowest = 0.0
            while not seen.is_set() and time.monotonic() - started < args.timeout:
                asked = time.monotonic()
                try:
                    urllib.request.urlopen(url, timeout=args.timeout).close()
                except OSError:
                    pass
                slowest = max(slowest, time.monotonic() - asked)
                time.sleep(0.05)
            waited = time.monotonic() - started
            result = f"{waited:.2f} s" if seen.is_set() else f">{args.timeout:.0f} s"
            print(f"{args.lines} lines of {args.line_bytes} spaces: the other file's line after {result}, "
                  f"slowest /healthz {slowest * 1000:.0f} ms")  # fmt: skip
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
