#!/usr/bin/env python3
"""The fleet demo (compose/fleet.yml): two Apache+sidecar pairs send into a gateway collector that is
stopped and restarted under traffic; what reached the backend is counted and what Prometheus saw of
the sidecars during the outage is read from its HTTP API.

Usage: python3 scripts/fleet-demo.py [--rate 20] [--before 10] [--outage 20] [--after 10]
                                     [--signal KILL|TERM] [--no-build] [--keep] [--project NAME]
Wrap it in `flock /tmp/logsidecar-docker.lock ...` where image tags are shared between checkouts.

1. builds the images (scripts/build-images.sh, plus `prometheus`) unless --no-build, brings the stack
   up under its own project name with free loopback ports, waits until Prometheus scrapes both sidecars;
2. sends --rate requests/s to each Apache, each with a unique `id=` (so lines are counted exactly);
   after --before seconds the gateway gets --signal (KILL: `docker kill`, no chance to flush; TERM:
   `docker stop`, rotel forwards what it holds first), stays down --outage seconds, is started again,
   and the traffic goes on for --after seconds;
3. waits until both sidecars have nothing behind (logsidecar_bytes_behind 0: every line read and
   acknowledged by the gateway) and the backend's count stops moving, then compares the ids sent with
   the ids the backend received: lost (sent, never received) and duplicates (received more than once);
4. prints what Prometheus recorded from the kill to the recovery (peak bytes behind, retries, how long
   the sink was failing, the oldest record's age, whether the sidecars stayed up, the alerts it raised)
   and, last, one JSON line with every number (tests/e2e/test_fleet.py reads it).

Standard library only. Exit status: 0 when nothing was lost, 1 when something was, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "compose" / "fleet.yml"
SIDECARS = ("a", "b")


def log(message: str) -> None:
    print(f"fleet-demo: {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SystemExit("fleet-demo: neither `docker compose` nor `docker-compose` is installed")


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (OSError, ValueError, KeyError, IndexError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Fleet:
    def __init__(self, project: str) -> None:
        self.project = project
        self.ports = {
            name: free_port()
            for name in ("APACHE_A_PORT", "APACHE_B_PORT", "WITNESS_PORT", "PROMETHEUS_PORT")
        }
        self.env = {**os.environ, **{k: str(v) for k, v in self.ports.items()}}
        self.compose_base = [*compose_command(), "-f", str(COMPOSE_FILE), "-p", project]

    def compose(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [*self.compose_base, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    def apache_url(self, sidecar: str) -> str:
        return f"http://127.0.0.1:{self.ports[f'APACHE_{sidecar.upper()}_PORT']}"

    def prometheus(self, query: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": query}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"http://127.0.0.1:{self.ports['PROMETHEUS_PORT']}/api/v1/query?" + urllib.parse.urlencode(
            params
        )
        answer = json.loads(http_get(url))
        if answer.get("status") != "success":
            raise RuntimeError(f"prometheus: {answer}")
        return list(answer["data"]["result"])

    def by_instance(self, query: str, at: float | None = None) -> dict[str, float]:
        return {
            r["metric"].get("instance", r["metric"].get("alertname", "")).split(":")[0]: float(r["value"][1])
            for r in self.prometheus(query, at)
        }

    def received_ids(self) -> Counter[str]:
        raw = http_get(f"http://127.0.0.1:{self.ports['WITNESS_PORT']}/records", timeout=30).decode()
        found: Counter[str] = Counter()
        for line in raw.splitlines():
            if not line.strip():
                continue
            query = str(json.loads(line).get("attributes", {}).get("url.query", ""))
            for part in query.split("&"):
                if part.startswith("id=fleet-"):
                    found[part[3:]] += 1
        return found


class Traffic(threading.Thread):
    """GET <apache>/fleet?id=fleet-<sidecar>-<n> at `rate` per second; remembers the ids Apache
    answered (each answered request is one access-log line)."""

    def __init__(self, fleet: Fleet, sidecar: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.url = fleet.apache_url(sidecar)
        self.sidecar = sidecar
        self.interval = 1.0 / rate
        self.sent: list[str] = []
        self.failed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self.stopping.is_set():
            request_id = f"fleet-{self.sidecar}-{n}"
            n += 1
            try:
                http_get(f"{self.url}/fleet/?id={request_id}", timeout=5)
                self.sent.append(request_id)
            except urllib.error.HTTPError:
                self.sent.append(request_id)  # 404 and the like are logged too
            except OSError:
                self.failed += 1
            next_at += self.interval
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


def run(args: argparse.Namespace) -> dict[str, Any]:
    fleet = Fleet(args.project)
    own_image = None
    if not args.no_build:
        log("building images (scripts/build-images.sh, + prometheus)")
        subprocess.run(["bash", str(ROOT / "scripts/build-images.sh")], check=True)
        subprocess.run(["bash", str(ROOT / "scripts/build-images.sh"), "prometheus"], check=True)
        # The :local tag is shared by every checkout on this engine: run the sidecar image just built.
        own_image = f"logsidecar/logsidecar:{args.project}"
        subprocess.run(["docker", "tag", "logsidecar/logsidecar:local", own_image], check=True)
        fleet.env["LOGSIDECAR_IMAGE"] = own_image
    try:
        log(f"up: project {fleet.project}, ports {fleet.ports}")
        fleet.compose("up", "-d", "--no-build")
        for sidecar in SIDECARS:
            wait_until(lambda s=sidecar: http_get(fleet.apache_url(s) + "/"), 60, f"apache-{sidecar}")
        wait_until(
            lambda: sum(fleet.by_instance('up{job="logsidecar"}').values()) == len(SIDECARS),
            90,
            "Prometheus scraping both sidecars",
        )
        return exercise(fleet, args)
    finally:
        if args.keep:
            log(
                f"kept running: {' '.join(fleet.compose_base)} down -v   (Prometheus on 127.0.0.1:{fleet.ports['PROMETHEUS_PORT']})"
            )
        else:
            fleet.compose("down", "-v", "--remove-orphans", "-t", "10")
            if own_image:
                subprocess.run(["docker", "rmi", own_image], capture_output=True)


def exercise(fleet: Fleet, args: argparse.Namespace) -> dict[str, Any]:
    traffic = [Traffic(fleet, sidecar, args.rate) for sidecar in SIDECARS]
    for thread in traffic:
        thread.start()
    time.sleep(args.before)
    gateway = fleet.container("gateway")
    outage_began = time.time()
    if args.signal == "KILL":
        log("gateway: docker kill (SIGKILL, under traffic)")
        subprocess.run(["docker", "kill", gateway], check=True, capture_output=True)
    else:
        log("gateway: docker stop (SIGTERM, under traffic)")
        subprocess.run(["docker", "stop", "-t", "10", gateway], check=True, capture_output=True)
    time.sleep(args.outage)
    subprocess.run(["docker", "start", gateway], check=True, capture_output=True)
    outage_ended = time.time()
    log(f"gateway: started again after {outage_ended - outage_began:.1f}s")
    time.sleep(args.after)
    for thread in traffic:
        thread.stop()
    sent = [request_id for thread in traffic for request_id in thread.sent]
    log(
        f"traffic stopped: {len(sent)} requests answered ({sum(t.failed for t in traffic)} failed, not logged)"
    )

    # Everything read and acknowledged by the gateway, then the backend's count settles.
    wait_until(
        lambda: (lambda v: len(v) == len(SIDECARS) and not any(v.values()))(
            fleet.by_instance('sum by (instance) (logsidecar_bytes_behind{job="logsidecar"})')
        ),
        120,
        "both sidecars with nothing behind",
    )
    recovered = time.time()
    settled: list[int] = []

    def backend_settled() -> bool:
        settled.append(sum(fleet.received_ids().values()))
        return len(settled) >= 4 and settled[-1] == settled[-4] > 0  # unchanged for 3 s

    wait_until(backend_settled, 60, "the backend's count to settle", interval=1.0)
    received = fleet.received_ids()
    wanted = Counter(sent)
    lost = sorted(set(wanted) - set(received))
    duplicates = {i: c - 1 for i, c in received.items() if c > 1}
    unexpected = sorted(set(received) - set(wanted))

    window = f"{int(recovered - outage_began) + 4}s"
    at = recovered + 2
    saw = {
        "peak_bytes_behind": fleet.by_instance(
            f'max_over_time(sum by (instance) (logsidecar_bytes_behind{{job="logsidecar"}})[{window}:2s])', at
        ),
        "retries": fleet.by_instance(
            f'sum by (instance) (increase(logsidecar_delivery_retries_total{{job="logsidecar"}}[{window}]))',
            at,
        ),
        "sink_failing_max_s": fleet.by_instance(
            f'max by (instance) (max_over_time(logsidecar_sink_failing_seconds{{job="logsidecar"}}[{window}]))',
            at,
        ),
        "oldest_undelivered_max_s": fleet.by_instance(
            f'max_over_time(logsidecar_oldest_undelivered_age_seconds{{job="logsidecar"}}[{window}])', at
        ),
        "up_min": fleet.by_instance(f'min_over_time(up{{job="logsidecar"}}[{window}])', at),
        "alerts": sorted(
            {
                r["metric"]["alertname"] + "/" + r["metric"].get("alertstate", "")
                for r in fleet.prometheus(f"ALERTS[{window}]", at)
            }
        ),
    }
    timeline = []
    for step in range(int(outage_began) - 2, int(recovered) + 3, 2):
        behind = fleet.by_instance('sum by (instance) (logsidecar_bytes_behind{job="logsidecar"})', step)
        failing = fleet.by_instance(
            'max by (instance) (logsidecar_sink_failing_seconds{job="logsidecar"})', step
        )
        timeline.append({"t": round(step - outage_began), "bytes_behind": behind, "sink_failing_s": failing})
    return {
        "signal": args.signal,
        "outage_s": round(outage_ended - outage_began, 1),
        "sent": len(sent),
        "sent_per_sidecar": {t.sidecar: len(t.sent) for t in traffic},
        "received": sum(received.values()),
        "received_distinct": len(received),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "duplicates": sum(duplicates.values()),
        "duplicate_ids": sorted(duplicates)[:20],
        "unexpected": len(unexpected),
        "prometheus": saw,
        "timeline": timeline,
    }


def report(result: dict[str, Any]) -> None:
    print(f"gateway {result['signal']} for {result['outage_s']}s under traffic:")
    print(
        f"  sent {result['sent']} {result['sent_per_sidecar']}, received {result['received']} "
        f"({result['received_distinct']} distinct), lost {result['lost']}, duplicates {result['duplicates']}"
    )
    saw = result["prometheus"]
    print("  Prometheus, from the stop to the recovery:")
    for key in ("peak_bytes_behind", "retries", "sink_failing_max_s", "oldest_undelivered_max_s", "up_min"):
        print(f"    {key}: {saw[key]}")
    print(f"    alerts: {saw['alerts'] or 'none'}")
    print("  t(s)  bytes_behind / sink_failing_s per sidecar (Prometheus, every 2 s)")
    for point in result["timeline"]:
        print(f"  {point['t']:>4}  {point['bytes_behind']}  {point['sink_failing_s']}")
    print(json.dumps(result, sort_keys=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s to each Apache")
    parser.add_argument("--before", type=float, default=10.0, help="seconds of traffic before the stop")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the gateway stays down")
    parser.add_argument("--after", type=float, default=10.0, help="seconds of traffic after the restart")
    parser.add_argument("--signal", choices=("KILL", "TERM"), default="TERM")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    parser.add_argument("--project", default=f"lsfleet{os.getpid()}")
    args = parser.parse_args()
    try:
        result = run(args)
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as error:
        log(f"failed: {error}")
        return 2
    report(result)
    return 1 if result["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
