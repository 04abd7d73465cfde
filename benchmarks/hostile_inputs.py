"""Reproducers of issue 13's resource findings, on real `logsidecar` processes; prints numbers.

    python benchmarks/hostile_inputs.py                 # this tree
    python benchmarks/hostile_inputs.py --tree /other/checkout --skip flood

- alias-bomb: `check-config` on a 9x9 YAML alias bomb under a 1 GiB address-space limit: seconds,
  peak RSS, exit status, and whether a traceback was printed.
- parse-line: `parse --format raw` of a 50 MB file without any newline (with --max-line-bytes 64KiB
  when the tree has the option): seconds and peak RSS.
- flood: `tail --http-addr` under RLIMIT_NOFILE 40 while 3,000 idle connections are opened: how long
  /healthz takes to answer, and how many tracebacks stderr got in `--flood-seconds`.

Peak RSS is the child's `ru_maxrss`, each measurement in a fresh wrapper process.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}  # with cwd=tree: `-m` looks in the cwd first


def measured(command: list[str], tree: Path, limit_as: int | None = None) -> tuple[float, float, int, str]:
    """(seconds, peak RSS MiB, exit status, stderr) of `command` run in a fresh wrapper process."""
    wrapper = (
        "import resource, subprocess, sys\n"
        f"limit = {limit_as!r}\n"
        "def cap():\n"
        "    if limit: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=cap)\n"
        "sys.stderr.buffer.write(done.stderr)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *command],
        capture_output=True,
        text=True,
        env=child_env(tree),
        cwd=tree,
    )
    elapsed = time.perf_counter() - started
    code, rss_kib = result.stdout.split()
    return elapsed, int(rss_kib) / 1024, int(code), result.stderr


def alias_bomb(tree: Path, scratch: Path) -> None:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * 9) + "]"]
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 9)]
    bomb = scratch / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\ninputs: [{paths: [*a8]}]\n")
    command = [sys.executable, "-m", "logsidecar", "check-config", "--no-env", str(bomb)]
    seconds, rss, code, stderr = measured(command, tree, limit_as=1024**3)
    print(
        f"alias-bomb: {seconds:.2f} s, peak RSS {rss:.0f} MiB, exit {code}, "
        f"traceback: {'yes' if 'Traceback' in stderr else 'no'}; {stderr.strip().splitlines()[-1][:120]}"
    )


def parse_line(tree: Path, scratch: Path) -> None:
    log = scratch / "no-newline.log"
    with log.open("wb") as out:
        for _ in range(50):
            out.write(b"x" * 1_000_000)
    help_text = subprocess.run(
        [sys.executable, "-m", "logsidecar", "parse", "--help"],
        cwd=tree,
        capture_output=True,
        text=True,
        env=child_env(tree),
    ).stdout
    limit = ["--max-line-bytes", "64KiB"] if "--max-line-bytes" in help_text else []
    command = [sys.executable, "-m", "logsidecar", "parse", "--format", "raw", *limit, str(log)]
    seconds, rss, code, _ = measured(command, tree)
    print(f"parse-line: 50 MB without newline {' '.join(limit) or '(no --max-line-bytes)'}: "
          f"{seconds:.2f} s, peak RSS {rss:.0f} MiB, exit {code}")  # fmt: skip


def flood(tree: Path, scratch: Path, seconds: float) -> None:
    log = scratch / "access.log"
    log.write_text("hello\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stderr = scratch / "flood-stderr"

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    command = [sys.executable, "-m", "logsidecar", "tail", "--http-addr", f"127.0.0.1:{port}"]
    command += ["--state-dir", "none", "--format", "raw", "--log-format", "json", str(log)]
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=low_fd_limit,
            env=child_env(tree),
            cwd=tree,
        )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    sockets = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(3000):
            idle = socket.socket()
            idle.setblocking(False)
            try:
                idle.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            sockets.append(idle)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=60) as response:
                answer = f"/healthz {response.status} in {time.monotonic() - started:.2f} s"
        except OSError as exc:
            answer = f"/healthz failed after {time.monotonic() - started:.2f} s ({exc})"
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
        lasted = time.monotonic() - started
    finally:
        for idle in sockets:
            idle.close()
        process.terminate()
        process.wait(timeout=30)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    tracebacks = stderr.read_bytes().count(b"Traceback")
    print(
        f"flood: 3000 idle connections, RLIMIT_NOFILE 40: {answer}; {tracebacks} tracebacks in {lasted:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", type=Path, default=ROOT, help="source tree to run (default: this one)")
    parser.add_argument("--skip", action="append", default=[], choices=["alias-bomb", "parse-line", "flood"])
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logsidecar-hostile-") as directory:
        scratch = Path(directory)
        if "alias-bomb" not in args.skip:
            alias_bomb(args.tree, scratch)
        if "parse-line" not in args.skip:
            parse_line(args.tree, scratch)
        if "flood" not in args.skip:
            flood(args.tree, scratch, args.flood_seconds)


if __name__ == "__main__":
    main()
