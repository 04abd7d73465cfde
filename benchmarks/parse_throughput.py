"""Parse-only throughput: lines per second per format on one core, against a naive baseline.

    python benchmarks/parse_throughput.py                 # 1,000,000 lines per format
    python benchmarks/parse_throughput.py --lines 200000  # quicker
    # the fast path only (what `tail` does per line), A/B against another checkout, alternated:
    PYTHONPATH=/other/tree python benchmarks/parse_throughput.py --formats combined --lines 200000 \
        --batch 1100 --repeat 7 --direct-only

For each format (common, combined, vhost_combined, and `error` when logsidecar.parse.errorlog
exists) a realistic log is generated into a temp dir (benchmarks/generate_logs.py), read into
memory and split into batches of `--batch` lines (the tailer's default batch size) before the
clock starts: only `parser.parse(batch)` is timed. For access logs two more rows time what `tail`
does per line (and, for combined, `auto` on a new file and `auto` on lines no format matches): parse straight to stamped JSON lines, and to OTLP log records (`direct_encoders`). The naive baseline is what a straightforward
implementation does: per line `re.match` with a named-group combined regex, a dict of its
groups, `json.dumps`. It runs on the same combined file in the same process. A second row
"combined + encode_json_lines" shows parse plus our stdout encoding, for a like-for-like
comparison with the baseline (which also encodes).

Both wall-clock and CPU (process_time) rates are printed: on a shared machine the CPU rate is
the steadier one. The load average is printed so numbers from a busy machine can be read as such.
Each measurement is the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_logs import write_log  # noqa: E402

from logsidecar.fastpath import JSON_LINES, OTLP_RECORDS, writer_for  # noqa: E402
from logsidecar.parse import build_parser  # noqa: E402
from logsidecar.record import encode_json_lines  # noqa: E402
from logsidecar.stamp import BatchStamp, uid_prefix  # noqa: E402

NAIVE_COMBINED = re.compile(
    r'(?P<host>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" '
    r'(?P<status>\d{3}) (?P<size>\S+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"'
)


def naive_parse(lines: Sequence[bytes]) -> list[str]:
    """The baseline: per-line regex, dict of groups, json.dumps (no types, no escaping)."""
    out = []
    for line in lines:
        text = line.decode("utf-8", "replace")
        match = NAIVE_COMBINED.match(text)
        record = match.groupdict() if match else {"message": text}
        out.append(json.dumps(record))
    return out


def measure(
    work: Callable[[list[bytes]], object], batches: list[list[bytes]], repeat: int
) -> tuple[float, float]:
    """Best (wall seconds, cpu seconds) over `repeat` runs of `work` over every batch."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            work(batch)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def direct_encoders(parser: Any, batches: list[list[bytes]]) -> dict[str, Callable[[list[bytes]], object]]:
    """What `tail` does per batch of an access log, as one-argument callables for `measure`: parse
    straight to stamped JSON lines, and to OTLP log records (no LogRecord objects; fastpath/).
    Stamps (offsets, path, resource) are made before the clock starts."""
    stamps: dict[int, BatchStamp] = {}
    offset = 0
    for batch in batches:
        ends = []
        for line in batch:
            offset += len(line) + 1
            ends.append(offset)
        stamps[id(batch)] = BatchStamp(
            "bench", "/var/log/apache2/access.log", uid_prefix("bench"), ends, (), {"service.name": "apache"}
        )
    json_lines, otlp_records = writer_for(parser, JSON_LINES), writer_for(parser, OTLP_RECORDS)
    assert json_lines is not None and otlp_records is not None
    return {
        "JSON lines": lambda batch: json_lines(batch, stamps[id(batch)]),
        "OTLP records": lambda batch: otlp_records(batch, stamps[id(batch)]),
    }


def load_batches(path: Path, batch_lines: int) -> list[list[bytes]]:
    lines = path.read_bytes().split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return [lines[i : i + batch_lines] for i in range(0, len(lines), batch_lines)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines per generated file")
    parser.add_argument("--batch", type=int, default=4096, help="lines per parse() call")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    parser.add_argument("--formats", default="common,combined,vhost_combined,error")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--direct-only", action="store_true", help="only the fast-path rows (JSON lines, OTLP records)"
    )
    args = parser.parse_args(argv)

    formats = [f for f in args.formats.split(",") if f]
    if "error" in formats and importlib.util.find_spec("logsidecar.parse.errorlog") is None:
        formats.remove("error")
    rows: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="logsidecar-bench-") as tmp:
        for fmt in formats:
            path = write_log(Path(tmp) / f"{fmt}.log", fmt, args.lines)
            batches = load_batches(path, args.batch)
            count = sum(len(b) for b in batches)
            parser_ = build_parser(fmt)
            parser_.parse(batches[0])  # warm caches and the generated builder
            if not args.direct_only:
                wall, cpu = measure(parser_.parse, batches, args.repeat)
                rows.append((f"{fmt} (logsidecar)", count, wall, cpu))
            if writer_for(parser_, JSON_LINES) is not None:
                for name, encode in direct_encoders(parser_, batches).items():
                    encode(batches[0])
                    wall, cpu = measure(encode, batches, args.repeat)
                    rows.append((f"{fmt} → {name} (direct)", count, wall, cpu))
            if fmt == "combined" and not args.direct_only:

                def parse_and_encode(batch: list[bytes], p=parser_) -> bytes:
                    return encode_json_lines(p.parse(batch))

                wall, cpu = measure(parse_and_encode, batches, args.repeat)
                rows.append(("combined + encode_json_lines", count, wall, cpu))
                if not args.no_baseline:
                    wall, cpu = measure(naive_parse, batches, args.repeat)
                    rows.append(("combined naive re.match+json", count, wall, cpu))
                # `auto` as `tail` runs it: a fresh parser per file, detecting on the first batch;
                # then the same lines with two fields appended that no known format has.
                unknown = [[line + b" 0.5 x" for line in batch] for batch in batches[:4]]
                for name, sample in (("combined via auto", batches), ("auto, no format matches", unknown)):
                    auto: dict[str, Any] = {}

                    def detect(
                        batch: list[bytes],
                        first: list[bytes] = sample[0],
                        auto: dict = auto,
                        log: Path = path,
                    ) -> None:
                        if batch is first:
                            auto["parser"] = build_parser("auto", path=str(log))
                        auto["parser"].parse(batch)

                    wall, cpu = measure(detect, sample, args.repeat)
                    rows.append((name, sum(len(b) for b in sample), wall, cpu))
            del batches

    load = os.getloadavg()
    print(f"python {sys.version.split()[0]}, batch {args.batch} lines, best of {args.repeat}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(
        f"{'format':32s} {'lines':>10s} {'lines/s (wall)':>15s} {'lines/s (cpu)':>15s} {'us/line (cpu)':>14s}"
    )
    for name, count, wall, cpu in rows:
        print(
            f"{name:32s} {count:>10,d} {count / wall:>15,.0f} {count / cpu:>15,.0f} {cpu / count * 1e6:>14.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
