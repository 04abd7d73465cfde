"""Every speed figure of the performance issue, measured in ONE run and printed as ONE table.

    python benchmarks/run_all.py [--lines N] [--idle-seconds S] [--latency-seconds S] [--otlp-lines N]

Rows (targets from the issue in brackets; each row says whether it is met):
- baselines on the combined file: `cat FILE > /dev/null`, `wc -l FILE`, and a naive Python loop
  (per-line `re.match` + `json.dumps`, benchmarks/parse_throughput.naive_parse);
- parse only, lines/s per CPU second, per format (common, combined, vhost_combined, error) on
  generated realistic files (benchmarks/generate_logs.py), one core, batches of 4096 [combined ≥ 300k]:
  into LogRecord objects, and (access formats) straight into stamped JSON lines and OTLP log records,
  which is what `tail` does per line (fastpath/);
- `logsidecar tail` → stdout JSON (a real subprocess, benchmarks/tail_end_to_end.throughput):
  lines/s, CPU seconds, peak RSS [≥ 200k lines/s, ≤ 64 MiB];
- tail → OTLP/gRPC into rotel's blackhole exporter (benchmarks/otlp_throughput.measure_throughput)
  [≥ 100k lines/s];
- latency p50/p99 at 1,000 and 10,000 lines/s with inotify, and the CPU % at those rates
  [p99 ≤ 50 ms, CPU ≤ 2 % at 1,000 lines/s] (benchmarks/tail_end_to_end.latency);
- idle CPU % [≈ 0] (benchmarks/tail_end_to_end.idle_cpu_percent).

The machine is shared (2 cores): the table prints the load average, and CPU seconds next to wall
time, because lines per CPU second is what other load disturbs least. Numbers only, no assertions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import otlp_throughput, tail_end_to_end  # noqa: E402
from benchmarks.generate_logs import write_log  # noqa: E402
from benchmarks.parse_throughput import direct_encoders, load_batches, measure, naive_parse  # noqa: E402
from logsidecar.parse import build_parser  # noqa: E402

PARSE_FORMATS = ("common", "combined", "vhost_combined", "error")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines of each generated file")
    parser.add_argument("--otlp-lines", type=int, help="lines for the OTLP run (default: --lines)")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1, help="parse-only runs per format (best kept)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="logsidecar-run-all-"))
    rows: list[tuple[str, str, str]] = []  # (figure, value, target verdict)
    try:
        print(f"generating {args.lines:,} lines per format in {work} ...", file=sys.stderr)
        files = {fmt: write_log(work / f"{fmt}.log", fmt, args.lines) for fmt in PARSE_FORMATS}
        combined = files["combined"]
        size_mib = combined.stat().st_size / 2**20
        rows.append(("machine", f"{os.cpu_count()} cores, load average (1 min) {os.getloadavg()[0]:.2f}", ""))
        rows.append(("combined file", f"{args.lines:,} lines, {size_mib:.1f} MiB "
                     f"({combined.stat().st_size / args.lines:.0f} bytes/line)", ""))  # fmt: skip

        # -- baselines --
        cat_s = tail_end_to_end.timed(["cat", str(combined)], stdout=subprocess.DEVNULL)
        wc_s = tail_end_to_end.timed(["wc", "-l", str(combined)], stdout=subprocess.DEVNULL)
        rows.append(
            ("baseline: cat FILE > /dev/null", f"{args.lines / cat_s:,.0f} lines/s ({cat_s:.3f} s)", "")
        )
        rows.append(("baseline: wc -l FILE", f"{args.lines / wc_s:,.0f} lines/s ({wc_s:.3f} s)", ""))

        # -- parse only --
        print("parse only ...", file=sys.stderr)
        for fmt in PARSE_FORMATS:
            batches = load_batches(files[fmt], 4096)
            count = sum(map(len, batches))
            p = build_parser(fmt)
            wall, cpu = measure(p.parse, batches, args.repeat)
            target = _met(count / cpu >= 300_000) + " (≥ 300,000)" if fmt == "combined" else ""
            rows.append(
                (f"parse only: {fmt}", f"{count / cpu:,.0f} lines/CPU-s (wall {count / wall:,.0f}/s)", target)
            )
            if fmt != "error":  # what tail does per line: parse straight into the output encoding
                for name, encode in direct_encoders(p, batches).items():
                    encode(batches[0])
                    wall, cpu = measure(encode, batches, args.repeat)
                    target = ""
                    if fmt == "combined" and name == "JSON lines":
                        target = _met(count / cpu >= 300_000) + " (≥ 300,000; parse + encode)"
                    rows.append((f"parse → {name}: {fmt}",
                                 f"{count / cpu:,.0f} lines/CPU-s (wall {count / wall:,.0f}/s)", target))  # fmt: skip
            del batches
            if fmt == "combined":
                wall, cpu = measure(naive_parse, load_batches(combined, 4096), 1)
                rows.append(("baseline: naive re.match + json.dumps loop",
                             f"{count / cpu:,.0f} lines/CPU-s (wall {count / wall:,.0f}/s)", ""))  # fmt: skip

        # -- tail → stdout JSON --
        print("tail → stdout JSON ...", file=sys.stderr)
        result = tail_end_to_end.throughput(combined, args.lines, "combined", work)
        rate = result.lines / result.seconds_total
        rows.append(
            (
                "tail → stdout JSON: lines/s (from process start)",
                f"{rate:,.0f}",
                _met(rate >= 200_000) + " (≥ 200,000)",
            )
        )
        rows.append(
            (
                "tail → stdout JSON: lines/s (from first record)",
                f"{result.lines / result.seconds_from_first:,.0f}",
                "",
            )
        )
        rows.append(("tail → stdout JSON: CPU s (user+sys)",
                     f"{result.cpu_s:.2f} ({result.lines / result.cpu_s:,.0f} lines/CPU-s)", ""))  # fmt: skip
        rows.append(
            (
                "tail → stdout JSON: peak RSS",
                f"{result.peak_rss_mib:.1f} MiB",
                _met(result.peak_rss_mib <= 64) + " (≤ 64 MiB)",
            )
        )

        # -- tail → OTLP/gRPC → rotel blackhole --
        print("tail → OTLP/gRPC → rotel ...", file=sys.stderr)
        otlp_lines = args.otlp_lines or args.lines
        otlp_file = combined
        if otlp_lines != args.lines:
            otlp_file = write_log(work / "otlp.log", "combined", otlp_lines)
        with otlp_throughput.RotelCollector(work / "rotel-blackhole", forward_to=None) as rotel:
            grpc = ["--output", "otlp", "--otlp-endpoint", rotel.grpc_endpoint]
            otlp = otlp_throughput.measure_throughput("OTLP/gRPC → rotel", otlp_file, otlp_lines, grpc, work)
        rows.append(("tail → OTLP/gRPC → rotel: lines/s (until checkpointed)", f"{otlp.lines_per_s:,.0f} "
                     f"(steady {otlp.steady_lines_per_s:,.0f}, CPU {otlp.cpu_s:.2f} s)",
                     _met(otlp.lines_per_s >= 100_000) + " (≥ 100,000)"))  # fmt: skip

        # -- latency and CPU at a steady rate --
        for lines_per_s in (1_000, 10_000):
            print(f"latency at {lines_per_s:,} lines/s ...", file=sys.stderr)
            lat = tail_end_to_end.latency(lines_per_s, args.latency_seconds, "combined", work)
            p99_target = _met(lat.p99_ms <= 50) + " (p99 ≤ 50 ms)" if lines_per_s == 1_000 else ""
            rows.append((f"latency @ {lines_per_s:,} lines/s: p50 / p99 / max",
                         f"{lat.p50_ms:.1f} / {lat.p99_ms:.1f} / {lat.max_ms:.1f} ms ({lat.samples:,} records)",
                         p99_target))  # fmt: skip
            cpu_target = _met(lat.cpu_percent <= 2) + " (≤ 2 %)" if lines_per_s == 1_000 else ""
            rows.append((f"CPU @ {lines_per_s:,} lines/s", f"{lat.cpu_percent:.1f} % of a core", cpu_target))

        # -- idle --
        print(f"idle for {args.idle_seconds:g} s ...", file=sys.stderr)
        idle = tail_end_to_end.idle_cpu_percent(args.idle_seconds, "combined", work)
        rows.append(
            (
                f"idle CPU over {args.idle_seconds:g} s",
                f"{idle:.2f} % of a core",
                _met(idle <= 0.5) + " (≈ 0)",
            )
        )
        rows.append(("machine after the run", f"load average (1 min) {os.getloadavg()[0]:.2f}", ""))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    print()
    print(f"{'figure':<{width}}  {'value':<{value_width}}  target")
    print(f"{'-' * width}  {'-' * value_width}  ------")
    for name, value, verdict in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {verdict}")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"\n(run took {time.monotonic() - started:.0f} s)")
