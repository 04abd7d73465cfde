"""Issue 18, item 4: would per-line work in C across the batch beat today's fast path? Prints µs/line.

    python benchmarks/batch_template.py [--lines 200000] [--batch 4096] [--repeat 3]

The lever: one `re.sub` over the batch's joined lines with a per-format JSON template for the fields
that need no conversion (client, user, referer, user agent ...), and Python only for what a
template cannot express (time, `-`, escapes, the request line). Timed over the same batches of a
realistic combined log (benchmarks/generate_logs.py), CPU time, best of --repeat:

- today: the direct JSON-lines writer `tail` runs per batch (batch regex rows, generated per-line
  Python, stamps included);
- findall: the batch regex alone (the part already in C today);
- sub: one `re.sub` with the template over the chunk (the C part of the lever);
- rest: the least per-line Python the lever leaves (three cache lookups, a join), regex included;
- lever floor: sub and rest, their outputs merged per line. It still lacks what `today` does
  (stamps, escapes, the slow path), so it is a lower bound of the lever's cost.

The lever is worth building only if its floor is clearly below `today`. On this machine it is not
(floor 5.3 µs/line against 3.4-4.1 today): `Match.expand` in `re.sub` costs more per line than the
generated Python it would replace, so the fast path keeps its per-line Python.
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.generate_logs import write_log  # noqa: E402
from benchmarks.parse_throughput import direct_encoders, load_batches  # noqa: E402
from logsidecar.parse import build_parser  # noqa: E402

# Combined lines without escapes (the common case; escaped lines take the slow path either way).
LINE = re.compile(
    rb'^(\S+) (\S+) (\S+) \[([^\]]+)\] "([^"\\]*)" (\d{3}) (\S+) "([^"\\]*)" "([^"\\]*)"$', re.MULTILINE
)
TEMPLATE = (
    rb'{"client.address":"\1","user.name":"\3","http.request.header.referer":"\8",'
    rb'"user_agent.original":"\9","log.file.path":"/var/log/apache2/access.log"'
)


def sub(batch: list[bytes]) -> bytes:
    return LINE.sub(TEMPLATE, b"\n".join(batch))


def findall(batch: list[bytes]) -> list[tuple[bytes, ...]]:
    return LINE.findall(b"\n".join(batch))


def rest_of(caches: tuple[dict, dict, dict]) -> Callable[[list[bytes]], list[bytes]]:
    times, requests, statuses = caches

    def rest(batch: list[bytes]) -> list[bytes]:
        out = []
        for row in LINE.findall(b"\n".join(batch)):
            moment = times.get(row[3])
            if moment is None:
                moment = times[row[3]] = b'"time":"' + row[3] + b'"'
            request = requests.get(row[4])
            if request is None:
                request = requests[row[4]] = b'"request":"' + row[4] + b'"'
            status = statuses.get(row[5])
            if status is None:
                status = statuses[row[5]] = b'"status":' + row[5]
            out.append(b",".join((moment, request, status)))
        return out

    return rest


def lever_floor(rest: Callable[[list[bytes]], list[bytes]]) -> Callable[[list[bytes]], bytes]:
    def floor(batch: list[bytes]) -> bytes:
        templated = sub(batch).split(b"\n")
        # Lines with escapes match no template (the slow path's): zip pairs the rest, as a floor.
        pairs = zip(templated, rest(batch), strict=False)
        return b"\n".join([head + b"," + tail + b"}" for head, tail in pairs])

    return floor


def per_line_us(work: Callable[[list[bytes]], object], batches: list[list[bytes]], repeat: int) -> float:
    work(batches[0])  # warm caches and generated code
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.process_time()
        for batch in batches:
            work(batch)
        best = min(best, time.process_time() - started)
    return best / sum(len(batch) for batch in batches) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batch-template-") as tmp:
        batches = load_batches(write_log(Path(tmp) / "combined.log", "combined", args.lines), args.batch)
    combined = build_parser("combined")
    combined.parse(batches[0])
    rest = rest_of(({}, {}, {}))
    subjects: list[tuple[str, Callable[[list[bytes]], object]]] = [
        ("today (direct JSON-lines writer)", direct_encoders(combined, batches)["JSON lines"]),
        ("findall (batch regex alone)", findall),
        ("sub (re.sub template over the chunk)", sub),
        ("rest (least per-line Python left)", rest),
        ("lever floor (sub + rest, merged)", lever_floor(rest)),
    ]
    print(f"# {args.lines:,} combined lines, batches of {args.batch}, best of {args.repeat}, CPU time")
    for name, work in subjects:
        print(f"{name:40s} {per_line_us(work, batches, args.repeat):6.2f} µs/line")


if __name__ == "__main__":
    main()
