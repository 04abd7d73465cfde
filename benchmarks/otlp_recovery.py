"""Recovery after a collector outage: how long after the collector returns is every in-flight batch
delivered? Prints one line per run and a summary.

    python benchmarks/otlp_recovery.py                 # 3 runs, 20 s outage, the default backoff
    python benchmarks/otlp_recovery.py --runs 5 --outage-s 10 --protocol http/protobuf

One `OtlpSink` with the default settings (initial backoff 0.5 s, cap 30 s) has `--in-flight` sends
running at once (the pipeline's lane workers, default max_concurrent_sends 4) into a real witness
receiver (tests/support/otlp_receiver.py). The receiver is stopped for `--outage-s`, so every send backs
off towards the cap, each at its own phase; then it is started again on the same port. Reported:
receiver back -> first batch delivered, -> last batch delivered, and first -> last.

Numbers depend on the machine and on chance (the jittered backoff); the script asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from logsidecar.record import LogRecord  # noqa: E402
from logsidecar.sinks.otlp import OtlpSink  # noqa: E402
from logsidecar.sinks.otlp_settings import OtlpProtocol, OtlpSettings  # noqa: E402
from tests.support.otlp_receiver import GrpcWitness, HttpWitness, port_accepts  # noqa: E402


async def one_run(
    protocol: OtlpProtocol, in_flight: int, outage_s: float, records: int
) -> tuple[float, float]:
    receiver: GrpcWitness | HttpWitness
    if protocol is OtlpProtocol.GRPC:
        receiver = GrpcWitness()
        endpoint = receiver.endpoint
    else:
        receiver = HttpWitness()
        endpoint = receiver.url
    receiver.start()
    sink = OtlpSink(OtlpSettings(endpoint=endpoint, protocol=protocol))
    delivered: list[float] = []

    async def send(n: int) -> None:
        await sink.send([LogRecord(body=f"b{n} {i}") for i in range(records)])
        delivered.append(time.monotonic())

    try:
        await sink.start()
        await sink.send([LogRecord(body="warm-up")])
        await asyncio.to_thread(receiver.stop)
        tasks = [asyncio.create_task(send(n)) for n in range(in_flight)]
        await asyncio.sleep(outage_s)
        await asyncio.to_thread(receiver.start)
        returned = time.monotonic()
        while not port_accepts(receiver.port):
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        await sink.close()
    finally:
        receiver.stop()
    return min(delivered) - returned, max(delivered) - returned


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--outage-s", type=float, default=20.0)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--records", type=int, default=500, help="records per in-flight batch")
    parser.add_argument(
        "--protocol", choices=[p.value for p in OtlpProtocol], default=OtlpProtocol.GRPC.value
    )
    args = parser.parse_args()
    protocol = OtlpProtocol(args.protocol)
    lasts: list[float] = []
    spreads: list[float] = []
    for run in range(1, args.runs + 1):
        first, last = asyncio.run(one_run(protocol, args.in_flight, args.outage_s, args.records))
        lasts.append(last)
        spreads.append(last - first)
        print(
            f"run {run}: receiver back -> first batch {first:6.3f} s, -> last batch {last:6.3f} s, "
            f"first -> last {last - first:6.3f} s",
            flush=True,
        )
    print(
        f"{protocol.value}, {args.in_flight} in flight, {args.outage_s:g} s outage, {args.runs} runs: "
        f"back -> last median {statistics.median(lasts):.3f} s (max {max(lasts):.3f}); "
        f"first -> last median {statistics.median(spreads):.3f} s (max {max(spreads):.3f})"
    )


if __name__ == "__main__":
    main()
