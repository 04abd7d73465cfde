"""What the file-opening policy costs per path, in microseconds: discovery checks every matched path
each cycle (`FilePolicy.inspect`, against a bare `os.stat`), and every new file is opened once
(`FilePolicy.open_file`, against a bare `os.open` + `os.fstat`).

    python benchmarks/open_policy.py [--files 10000] [--depth 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

from logsidecar.tail.open_policy import FilePolicy, FollowSymlinks


def per_call_us(paths: list[str], call: Callable[[str], object], rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for path in paths:
            call(path)
        best = min(best, time.perf_counter() - started)
    return best / len(paths) * 1e6


def bare_open(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    os.fstat(fd)
    os.close(fd)


def policy_open(policy: FilePolicy) -> Callable[[str], None]:
    def run(path: str) -> None:
        os.close(policy.open_file(path).fd)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--depth", type=int, default=1, help="directories between the base and the files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as base:
        directory = os.path.join(base, *(f"d{i}" for i in range(args.depth - 1))) if args.depth > 1 else base
        os.makedirs(directory, exist_ok=True)
        paths = []
        for i in range(args.files):
            path = os.path.join(directory, f"access-{i}.log")
            with open(path, "wb") as handle:
                handle.write(b"x\n")
            paths.append(path)
        print(f"{args.files} files, {args.depth} level(s) below the base")
        print(f"  discovery  os.stat              {per_call_us(paths, os.stat):7.2f} us/path")
        for mode in FollowSymlinks:
            policy = FilePolicy(mode, [base])
            print(
                f"  discovery  inspect ({mode.value:<8})   {per_call_us(paths, policy.inspect):7.2f} us/path"
            )
        print(f"  open       os.open + fstat      {per_call_us(paths, bare_open):7.2f} us/path")
        policy = FilePolicy(FollowSymlinks.WITHIN, [base])
        print(f"  open       open_file (within)   {per_call_us(paths, policy_open(policy)):7.2f} us/path")


if __name__ == "__main__":
    main()
