"""Access-metrics aggregation cost: microseconds per record for `AccessMetricsSink.record`, the part
that runs on the pipeline's event loop for every batch (`--derive-metrics`).

    python benchmarks/access_metrics.py                  # 200,000 records
    python benchmarks/access_metrics.py --records 50000  # quicker

Realistic combined lines (benchmarks/generate_logs.py) with a %D duration appended are parsed
with the real parser and split into batches of `--batch` records before the clock starts: only
`record(batch)` is timed, then one `collect()` (what each export interval costs). CPU time
(process_time) is printed beside wall time: on a shared machine it is the steadier one. Each
figure is the best of `--repeat` runs, each on a fresh sink (cumulative state starts empty).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_logs import generate_lines  # noqa: E402

from logsidecar.metrics.sink import AccessMetricsSink  # noqa: E402
from logsidecar.parse import build_parser  # noqa: E402

LOGFORMAT = 'logformat:%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    rng = random.Random(7)
    lines = [line + b" %d" % rng.randint(200, 3_000_000) for line in generate_lines("combined", args.records)]
    access = build_parser(LOGFORMAT)
    records = [
        r
        for start in range(0, len(lines), args.batch)
        for r in access.parse(lines[start : start + args.batch])
    ]
    batches = [records[start : start + args.batch] for start in range(0, len(records), args.batch)]

    best_wall = best_cpu = best_collect = float("inf")
    for _ in range(args.repeat):
        sink = AccessMetricsSink()
        wall, cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            sink.record(batch)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        started = time.perf_counter()
        sink.collect()
        best_collect = min(best_collect, time.perf_counter() - started)
    assert sink.stats.records_counted == len(records)
    per_record = 1e6 / len(records)
    print(f"load average {os.getloadavg()[0]:.2f}; {len(records)} records in batches of {args.batch}")
    print(f"record(): {best_wall * per_record:.2f} us/record wall, {best_cpu * per_record:.2f} us/record cpu")
    print(f"collect(): {best_collect * 1e3:.2f} ms for {len(sink.routes.admitted)} routes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
