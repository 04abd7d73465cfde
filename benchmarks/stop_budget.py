"""Does a stop fit in --drain-timeout when the collector cannot take the backlog? Printed as a table.

    python benchmarks/stop_budget.py [--drain-timeout 10] [--lines 20000]

For each collector that cannot deliver (a port nobody listens on: "refused"; a socket that accepts
connections and never answers: "silent") and each OTLP protocol: `logsidecar tail` (a real
subprocess) follows a log of `--lines` lines, gets SIGTERM after 3 s, and we time SIGTERM -> exit.
Printed: that time, the budget, the exit status and the level of the last log line. The whole stop
(reading, delivery, commit, closing the outputs, exit) is meant to fit in the budget.

No assertions: numbers only. The machine's load matters (2 shared cores): the table prints it.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.otlp_receiver import wait_for  # noqa: E402
from tests.support.tail_command import TailProcess  # noqa: E402


def run_once(drain_timeout: float, protocol: str, collector: str, lines: int) -> tuple[float, int, str]:
    with tempfile.TemporaryDirectory(prefix="stop-budget-") as tmp:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        port = server.getsockname()[1]
        if collector == "refused":
            server.close()
        endpoint = f"http://127.0.0.1:{port}" + ("/v1/logs" if protocol == "http/protobuf" else "")
        log = Path(tmp) / "access.log"
        log.write_text("".join(f"line {n} " + "x" * 60 + "\n" for n in range(lines)))
        tail = TailProcess(
            ["--format", "raw", "--output", "otlp", "--otlp-protocol", protocol, "--otlp-endpoint", endpoint,
             "--drain-timeout", f"{drain_timeout:g}s", str(log)],
            Path(tmp) / "state", Path(tmp) / "stderr",
        ).start()  # fmt: skip
        try:
            wait_for(lambda: tail.events("file_added"), timeout=30, what="following")
            time.sleep(3)
            code, took = tail.terminate(timeout=drain_timeout * 3)
        finally:
            server.close()
        last = tail.events()[-1] if tail.events() else {}
        return took, code, str(last.get("level", "?"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drain-timeout", type=float, default=10.0)
    parser.add_argument("--lines", type=int, default=20000)
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'collector':<10} {'protocol':<14} {'SIGTERM->exit':>14} {'budget':>8} {'exit':>5}  last line")
    for collector in ("refused", "silent"):
        for protocol in ("grpc", "http/protobuf"):
            took, code, level = run_once(args.drain_timeout, protocol, collector, args.lines)
            print(
                f"{collector:<10} {protocol:<14} {took:>13.2f}s {args.drain_timeout:>7g}s {code:>5}  {level}"
            )


if __name__ == "__main__":
    main()
