"""Issue 13's catastrophic-backtracking reproducers: seconds to parse one hostile line; prints a table.

    python benchmarks/regex_worst_case.py                      # this tree
    python benchmarks/regex_worst_case.py --tree /other/checkout --timeout 120

Each case parses one line with a compiled format (the access-log `logformat:` compiler or the
ErrorLogFormat compiler), in a fresh process with `--tree` first on the path, so a case that
never ends is cut at `--timeout` and reported as `>TIMEOUT`. A line that ends in `\\n` is one no
field can take (every field stays on one line): the regex has to give up, after trying what it
tries. The presets at 100 KB are the reference for a linear scan.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
XFF = '%{X-Forwarded-For}i %{X-Real-IP}i %l %u %t "%r" %>s %b'
CASES: list[tuple[str, str, str, str]] = [
    # (name, compiler, format, line as a Python expression)
    ("xff 16 KB spaces", "access", XFF, "' ' * 16384"),
    ("xff 64 KB '- '", "access", XFF, "'- ' * 32768"),
    ("%{%x %X}t 64 KB (error)", "error", "%{%x %X}t", "' ' * 65536 + '\\n'"),
    ("%{%x %X}t 64 KB (access)", "access", "%{%x %X}t", "' ' * 65536 + '\\n'"),
    ("4x %{%Q}t 400 sp (error)", "error", "%{%Q}t %{%Q}t %{%Q}t %{%Q}t", "' ' * 400 + '\\n'"),
    ("4x %{%Q}t 400 sp (access)", "access", "%{%Q}t %{%Q}t %{%Q}t %{%Q}t", "' ' * 400 + '\\n'"),
    ("8x %f 100 sp", "access", " ".join(["%f"] * 8), "' ' * 100 + '\\n'"),
    ("8x %{X}i (error) 100 sp", "error", " ".join(["%{X}i"] * 8), "' ' * 100 + '\\n'"),
    ("combined 100 KB spaces", "access", "combined", "' ' * 102400"),
    ("combined 100 KB quotes", "access", "combined", "'\" ' * 51200"),
    ("common 100 KB near-match", "access", "common", "'1.2.3.4 - - ' * 8533 + '\\n'"),
    # One line at the default --max-line-bytes (1 MiB): what it holds the event loop for (parsing
    # runs on it, pipeline.py), at the worst per-byte cost the linear-time test measured.
    ("1 MiB combined spaces", "access", "combined", "' ' * 1048576"),
    ("1 MiB combined backslashes", "access", "combined", "'\"' + '\\\\' * 1048574 + '\"'"),
    ("1 MiB xff spaces", "access", XFF, "' ' * 1048576"),
    ("1 MiB %{X}n backslashes", "access", "%!200,404{X-A}n", "'\\\\' * 1048576"),
    ("1 MiB error built-in", "builtin", "", "'[Wed Oct 11 14:32:52 2000] [error] ' + 'x ' * 524270"),
    ("1 MiB ErrorLogFormat 4x %e", "error", "%e %e %e %e", "'\\\\' * 1048576"),
]

CHILD = """
import sys, time
compiler, fmt, expr = sys.argv[1:4]
line = eval(expr).encode()
if compiler == "builtin":
    from logsidecar.parse.errorlog import ErrorLogParser
    parser = ErrorLogParser()
elif compiler == "error":
    from logsidecar.parse.errorlog_compiled import compile_errorlogformat
    parser = compile_errorlogformat(fmt)
else:
    from logsidecar.parse.access import compile_logformat
    parser = compile_logformat(fmt)
started = time.perf_counter()
parser.parse([line])
print(time.perf_counter() - started)
"""


def run_case(tree: Path, compiler: str, fmt: str, expr: str, timeout: float) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, compiler, fmt, expr],
            capture_output=True, text=True, env=env, cwd=tree, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f">{timeout:.0f} s"
    if done.returncode != 0:
        return "error: " + done.stderr.strip().splitlines()[-1][:80]
    return f"{float(done.stdout) * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout to measure (default: this one)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a case is cut")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args()
    for name, compiler, fmt, expr in CASES:
        if args.only and args.only not in name:
            continue
        print(f"{name:32} {run_case(args.tree.resolve(), compiler, fmt, expr, args.timeout)}", flush=True)


if __name__ == "__main__":
    main()
