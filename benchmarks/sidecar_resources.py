"""CPU and memory of the logsidecar container at a steady line rate: the figures behind the requests
and limits in deploy/kubernetes/. Printed as a table; no assertions.

    python benchmarks/sidecar_resources.py [--rates 100 1000] [--seconds 60] [--warmup 10] [--output otlp]

For each rate: the image logsidecar/logsidecar:local runs as in the Pod (read-only root, the log
volume read-only, checkpoints on their own volume, HTTP endpoint on, JSON lines to stdout, which the
container runtime discards here: `--log-driver none`, as the kubelet's log files are not the
container's cost). This process appends combined-format lines (benchmarks/generate_logs.py) to
access.log in the log volume at the given rate, paced every 10 ms. After the warm-up, the container's
main process is read from the host's /proc: CPU = utime+stime ticks over the window (all threads),
RSS sampled every second (mean and max), VmHWM at the end (the peak since start, start-up included).
Delivered = logsidecar_records_delivered_total from /metrics, to show it kept up. `--output otlp`
sends OTLP/gRPC to the witness of tests/integration/otlp_receiver.py in this process instead (the
container then shares the host's network, to reach it on loopback).
Requires Docker and the image (bash scripts/build-images.sh logsidecar); run under the docker lock.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.generate_logs import generate_lines  # noqa: E402
from tests.support.otlp_receiver import GrpcWitness, free_port  # noqa: E402

IMAGE = "logsidecar/logsidecar:local"
TICKS = os.sysconf("SC_CLK_TCK")


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def cpu_seconds(pid: int) -> float:
    # /proc/PID/stat fields 14 and 15 (utime, stime) count every thread of the process.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kib(pid: int, key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match[1]) if match else 0


def delivered(addr: str) -> int:
    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
    return int(
        sum(
            float(m[1])
            for m in re.finditer(r"^logsidecar_records_delivered_total\{[^}]*\} (\S+)", text, re.M)
        )
    )


def run_rate(rate: int, seconds: float, warmup: float, witness: GrpcWitness | None) -> dict[str, float]:
    tag = f"logsidecar-bench-resources-{os.getpid()}-{rate}"
    docker("volume", "create", f"{tag}-logs")
    docker("volume", "create", f"{tag}-state")
    try:
        logs = Path(docker("volume", "inspect", "-f", "{{.Mountpoint}}", f"{tag}-logs"))
        access = logs / "access.log"
        access.write_bytes(b"")
        if witness is None:
            network = ["-e", "LOGSIDECAR_HTTP_ADDR=0.0.0.0:9464"]
        else:
            http_port = free_port()
            network = ["--network", "host", "-e", f"LOGSIDECAR_HTTP_ADDR=127.0.0.1:{http_port}",
                       "-e", "LOGSIDECAR_OUTPUT=otlp", "-e", f"OTEL_EXPORTER_OTLP_ENDPOINT={witness.endpoint}"]  # fmt: skip
        docker(
            "run", "-d", "--init", "--name", tag, "--read-only", "--log-driver", "none",
            "-v", f"{tag}-logs:/var/log/apache2:ro", "-v", f"{tag}-state:/var/lib/logsidecar",
            *network, IMAGE,
        )  # fmt: skip
        # --init: PID 1 is docker-init; logsidecar is its child.
        init_pid = int(docker("inspect", "-f", "{{.State.Pid}}", tag))
        pid = int(Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()[0])
        if witness is None:
            ip = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", tag)
            addr = f"{ip}:9464"
        else:
            addr = f"127.0.0.1:{http_port}"
        lines = generate_lines("combined", 10**9, seed=rate)
        written = 0
        rss: list[int] = []
        start = time.monotonic()
        window_start = start + warmup
        cpu0 = delivered0 = None
        next_sample = window_start
        with access.open("ab", buffering=0) as out:
            while (now := time.monotonic()) < window_start + seconds:
                due = int((now - start) * rate) - written
                if due > 0:
                    out.write(b"".join(next(lines) + b"\n" for _ in range(due)))
                    written += due
                if now >= window_start and cpu0 is None:
                    cpu0, delivered0, written0 = cpu_seconds(pid), delivered(addr), written
                if now >= next_sample:
                    rss.append(status_kib(pid, "VmRSS"))
                    next_sample += 1.0
                time.sleep(0.01)
        cpu1, hwm = cpu_seconds(pid), status_kib(pid, "VmHWM")
        time.sleep(2)  # let the last lines through before counting
        got = delivered(addr) - (delivered0 or 0)
        return {
            "rate": rate,
            "cpu_millicores": 1000 * (cpu1 - (cpu0 or 0)) / seconds,
            "rss_mean_mib": sum(rss) / len(rss) / 1024,
            "rss_max_mib": max(rss) / 1024,
            "hwm_mib": hwm / 1024,
            "written": written - written0,
            "delivered": got,
        }
    finally:
        subprocess.run(["docker", "rm", "-f", tag], capture_output=True)
        subprocess.run(["docker", "volume", "rm", f"{tag}-logs", f"{tag}-state"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--output", choices=["stdout", "otlp"], default="stdout")
    args = parser.parse_args()
    witness = GrpcWitness().start() if args.output == "otlp" else None
    print(
        f"image {IMAGE}, window {args.seconds:.0f}s after {args.warmup:.0f}s warm-up, load {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'lines/s':>8} {'CPU mcores':>10} {'RSS mean':>9} {'RSS max':>8} {'VmHWM':>7} {'written':>8} {'delivered':>9}"
    )
    for rate in args.rates:
        r = run_rate(rate, args.seconds, args.warmup, witness)
        print(
            f"{r['rate']:>8} {r['cpu_millicores']:>10.0f} {r['rss_mean_mib']:>7.1f}Mi {r['rss_max_mib']:>6.1f}Mi"
            f" {r['hwm_mib']:>5.1f}Mi {r['written']:>8} {r['delivered']:>9}"
        )


if __name__ == "__main__":
    main()
