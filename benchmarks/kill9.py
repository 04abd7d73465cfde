"""kill -9 under load, many times: what a restart replays against what was in flight; and the cost.

    python benchmarks/kill9.py [--kills 20] [--rate 3000] [--tree PATH ...]
                               [--compare-with /work/main] [--rounds 3] [--skip-kills] [--skip-cost]

1. kills (for each --tree, default this one): a writer appends numbered lines at --rate lines/s;
   `logsidecar tail --output otlp` (OTLP/HTTP, `--otlp-batch-timeout 0`) sends them to a witness
   that can hold requests (tests/support/otlp_receiver.py). At a random moment the witness
   starts holding; once every concurrent sender (4) waits on a held request, the sidecar gets
   kill -9. In flight at that moment, exactly: per file, every record it had sent from the first
   unanswered one on (an answered batch behind an unanswered one is not acknowledged yet). Then a
   new instance starts on the same --state-dir; after the last kill a final one delivers the rest.
   Printed per kill: in flight, replayed (records a later instance delivered again), and whether
   replayed <= in flight (and is a subset of it); then lost lines over the whole run (must be 0).
2. cost (with --compare-with OLD_TREE, repeatable): benchmarks/tail_end_to_end.py of each tree,
   alternating (the order rotated and reversed each round) for --rounds rounds on this machine, with --lines lines for the
   throughput part and 10 s at 1,000 and 10,000 lines/s: throughput, CPU seconds, and CPU % and
   latency at 1,000 lines/s, per run and as medians.

No assertions: numbers only (the tests assert the bound: tests/integration/command/test_tail_command_crash.py).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.otlp_receiver import HttpWitness, wait_for  # noqa: E402
from tests.support.tail_command import WriterProcess, append_sentinel, body_seq  # noqa: E402

CONCURRENT_SENDS = 4  # OtlpSettings.max_concurrent_sends (the old tree has the same)


def start_tail(
    tree: Path, log: Path, state: Path, witness: HttpWitness, stderr: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "logsidecar", "tail", "--format", "raw", "--state-dir", str(state),
        "--output", "otlp", "--otlp-protocol", "http/protobuf", "--otlp-endpoint", witness.url,
        "--otlp-batch-timeout", "0", "--log-format", "json", str(log),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with stderr.open("ab") as err:
        return subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=err)


def _file_and_offset(uid: str) -> tuple[str, int]:
    return uid[:16], int(uid[16:], 16)


def kill_while_held(child: subprocess.Popen[bytes], witness: HttpWitness, epoch: int) -> set[str]:
    witness.hold()
    wait_for(lambda: len([e for e in witness.held() if e.epoch == epoch]) >= CONCURRENT_SENDS, 60, 0.005)
    child.kill()
    child.wait(10)
    first_unanswered: dict[str, int] = {}
    for export in [e for e in witness.held() if e.epoch == epoch]:
        for uid in export.uids:
            key, offset = _file_and_offset(uid)
            first_unanswered[key] = min(offset, first_unanswered.get(key, offset))
    in_flight = set()
    for export in [e for e in witness.exports if e.epoch == epoch]:
        for uid in export.uids:
            key, offset = _file_and_offset(uid)
            if key in first_unanswered and offset >= first_unanswered[key]:
                in_flight.add(uid)
    witness.release()
    return in_flight


def kills(tree: Path, count: int, rate: int, seed: int) -> None:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="logsidecar-kill9-"))
    log, state = work / "access.log", work / "state"
    writer = WriterProcess(log, lines_per_s=rate, total=10**9).start()
    in_flight: list[set[str]] = []
    with HttpWitness() as witness:
        try:
            for epoch in range(count):
                witness.epoch = epoch
                child = start_tail(tree, log, state, witness, work / f"tail-{epoch}.stderr")
                wait_for(lambda: any(e.epoch == epoch for e in witness.exports), 60)  # noqa: B023
                time.sleep(rng.uniform(0.2, 1.5))
                in_flight.append(kill_while_held(child, witness, epoch))
            written = writer.stop()
        finally:
            if writer.running():
                writer.stop()
        append_sentinel(log, written)
        witness.epoch = count
        final = start_tail(tree, log, state, witness, work / "tail-final.stderr")
        expected = set(range(written + 1))
        try:
            wait_for(lambda: expected <= {body_seq(b) for b in witness.bodies()}, 120, 0.5)
        except TimeoutError:
            pass  # reported below as lost
        final.send_signal(signal.SIGTERM)
        final.wait(60)
    epochs_of: dict[str, list[int]] = defaultdict(list)
    for export in witness.exports:
        for uid in export.uids:
            epochs_of[uid].append(export.epoch)
    lost = len(expected - {body_seq(b) for b in witness.bodies()})
    print(f"\nkill -9 x{count} under {rate:,} lines/s, tree {tree} ({written:,} lines written)")
    print(f"{'kill':>4}  {'in flight':>9}  {'replayed':>8}  replayed <= in flight (subset)")
    violations = 0
    for epoch, flying in enumerate(in_flight):
        replayed = {uid for uid, epochs in epochs_of.items() if epoch in epochs and max(epochs) > epoch}
        ok = replayed <= flying
        violations += not ok
        print(f"{epoch + 1:>4}  {len(flying):>9}  {len(replayed):>8}  {'yes' if ok else 'NO'}")
    print(f"rows with replayed > in flight: {violations} of {count}; lines lost: {lost}")


_ROWS = {
    "lines/s": re.compile(r"tail → json: lines/s \(from first record\)\s+([\d,]+)"),
    "CPU s": re.compile(r"tail → json: CPU s \(user\+sys\)\s+([\d.]+)"),
    "CPU % @1k/s": re.compile(r"CPU @ 1,000 lines/s\s+([\d.]+) %"),
    "p50 ms @1k/s": re.compile(r"latency @ 1,000 lines/s: p50 / p99 / max\s+([\d.]+) /"),
    "CPU % @10k/s": re.compile(r"CPU @ 10,000 lines/s\s+([\d.]+) %"),
}


def cost_run(tree: Path, lines: int, data: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / "tail_end_to_end.py"), "--file", str(data), "--skip-idle",
         "--format", "combined", "--latency-seconds", "10"],
        capture_output=True, text=True, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True,
    )  # fmt: skip
    values = {}
    for name, pattern in _ROWS.items():
        match = pattern.search(out.stdout)
        values[name] = float(match.group(1).replace(",", "")) if match else float("nan")
    return values


def cost(olds: list[Path], new: Path, rounds: int, lines: int) -> None:
    from benchmarks.generate_logs import write_log

    work = Path(tempfile.mkdtemp(prefix="logsidecar-kill9-cost-"))
    data = work / "access.log"
    write_log(data, "combined", lines)
    trees = [(f"old{i + 1}" if len(olds) > 1 else "old", tree) for i, tree in enumerate(olds)] + [
        ("new", new)
    ]
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
    names = ", ".join(f"{label}={tree}" for label, tree in trees)
    print(f"\ncost: benchmarks/tail_end_to_end.py, {lines:,} lines, {names}, alternating")
    print(f"{'run':>3}  {'tree':<4}  " + "  ".join(f"{name:>12}" for name in _ROWS))
    run = 0
    for round_ in range(rounds):
        # every tree in every position: rotated each round, and reversed every other round
        order = trees[round_ % len(trees) :] + trees[: round_ % len(trees)]
        for label, tree in order if round_ % 2 == 0 else order[::-1]:
            run += 1
            values = cost_run(tree, lines, data)
            results[label].append(values)
            print(f"{run:>3}  {label:<4}  " + "  ".join(f"{values[name]:>12,.1f}" for name in _ROWS))
    for label, _ in trees:
        medians = {name: statistics.median(r[name] for r in results[label]) for name in _ROWS}
        print(f"med  {label:<4}  " + "  ".join(f"{medians[name]:>12,.1f}" for name in _ROWS))
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rate", type=int, default=3000, help="lines/s written during the kills")
    parser.add_argument("--tree", type=Path, action="append", help="source tree to kill (repeatable)")
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument(
        "--compare-with",
        type=Path,
        action="append",
        help="an old source tree for the cost comparison (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--skip-kills", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    if not args.skip_kills:
        for tree in args.tree or [REPO]:
            kills(tree.resolve(), args.kills, args.rate, args.seed)
    if not args.skip_cost and args.compare_with is not None:
        cost([tree.resolve() for tree in args.compare_with], REPO, args.rounds, args.lines)


if __name__ == "__main__":
    main()
