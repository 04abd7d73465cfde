"""OTLP/gRPC toward a gateway of two real collectors behind one DNS name, as a fleet sends to the Pods
of a headless Service: `logsidecar tail` with `--otlp-endpoint dns://<dns server>/gateway.test:<port>`.

The name is real DNS: dnsmasq (Debian's dnsmasq-base) on a loopback port answers two A records,
127.0.0.2 and 127.0.0.3, and grpc's resolver is pointed at it by the target's authority (gRPC naming:
`dns://[dns-server]/host:port`), so no /etc/hosts is touched. On each address a rotel collector
listens on the same port and forwards to a witness of its own, which counts what went through it.

With round_robin (the default) both collectors carry records; with pick_first one carries all. Either
way every line arrives exactly once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.otlp_receiver import GrpcWitness, RotelCollector, free_port, wait_for

GATEWAY_ADDRESSES = ("127.0.0.2", "127.0.0.3")
GATEWAY_NAME = "gateway.test"
LINES = 3000
BATCH = 50  # LINES / BATCH = 60 export requests to spread


@pytest.fixture
def dns_server(tmp_path: Path) -> Iterator[int]:
    """dnsmasq on 127.0.0.1:<port>, answering GATEWAY_NAME with both addresses and nothing else."""
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not Path(dnsmasq).exists():
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq-base; scripts/setup.sh does)")
    port = free_port()
    records = [f"--host-record={GATEWAY_NAME},{address}" for address in GATEWAY_ADDRESSES]
    log = open(tmp_path / "dnsmasq.log", "wb")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        [
            dnsmasq, "--keep-in-foreground", f"--port={port}", "--listen-address=127.0.0.1",
            "--bind-interfaces", "--no-resolv", "--no-hosts", "--log-facility=-", "--pid-file=", *records,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    try:
        wait_for(
            lambda: b"started" in (tmp_path / "dnsmasq.log").read_bytes() or process.poll() is not None, 10
        )
        if process.poll() is not None:
            pytest.fail(f"dnsmasq exited: {(tmp_path / 'dnsmasq.log').read_text(errors='replace')}")
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[int, list[GrpcWitness]]]:
    """Two rotel collectors on the same port at the two addresses, each forwarding to its own witness."""
    port = free_port()
    witnesses = [GrpcWitness().start() for _ in GATEWAY_ADDRESSES]
    collectors = []
    try:
        for address, witness in zip(GATEWAY_ADDRESSES, witnesses, strict=True):
            collector = RotelCollector(
                tmp_path / f"rotel-{address}", forward_to=witness.endpoint, host=address, grpc_port=port
            )
            collectors.append(collector.start())
        yield port, witnesses
    finally:
        for collector in collectors:
            collector.stop()
        for witness in witnesses:
            witness.stop()


def write_lines(path: Path) -> list[str]:
    lines = [
        f'192.0.2.{n % 250} - - [05/Dec/2026:13:{n // 60 % 60:02d}:{n % 60:02d} +0000] "GET /fleet/{n} HTTP/1.1" '
        f'200 {n} "-" "gateway-test/1.0"'
        for n in range(LINES)
    ]
    path.write_text("".join(line + "\n" for line in lines))
    return lines


def run_tail(tmp_path: Path, endpoint: str, *extra: str) -> subprocess.Popen[bytes]:
    log = tmp_path / "access.log"
    command = [
        sys.executable, "-m", "logsidecar", "tail", "--format", "combined", "--output", "otlp",
        "--otlp-endpoint", endpoint, "--otlp-insecure", "--otlp-batch-size", str(BATCH),
        "--state-dir", str(tmp_path / "state"), "--log-format", "json", *extra, str(log),
    ]  # fmt: skip
    stderr = open(tmp_path / "tail.stderr", "wb")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    stderr.close()
    return process


def deliver(tmp_path: Path, endpoint: str, witnesses: list[GrpcWitness], *extra: str) -> list[int]:
    """Tail LINES lines to the gateway; every line must arrive once. Records received by each witness."""
    lines = write_lines(tmp_path / "access.log")
    process = run_tail(tmp_path, endpoint, *extra)
    try:
        wait_for(lambda: sum(w.record_count for w in witnesses) >= LINES, 60, interval=0.1, what="every line")
    finally:
        process.terminate()
        exit_code = process.wait(30)
    received = Counter(body for witness in witnesses for body in witness.bodies())
    per_collector = [witness.record_count for witness in witnesses]
    print(f"\n{' '.join(extra) or 'default'}: records per collector {per_collector}, exit {exit_code}")
    assert received == Counter(lines), (tmp_path / "tail.stderr").read_text(errors="replace")[-3000:]
    assert exit_code == 0
    return per_collector


def test_round_robin_over_a_dns_name_sends_to_every_gateway_collector(
    tmp_path: Path, dns_server: int, gateway: tuple[int, list[GrpcWitness]]
) -> None:
    port, witnesses = gateway
    per_collector = deliver(tmp_path, f"dns://127.0.0.1:{dns_server}/{GATEWAY_NAME}:{port}", witnesses)
    assert all(count > 0 for count in per_collector)


def test_pick_first_over_the_same_name_sends_to_one_collector_only(
    tmp_path: Path, dns_server: int, gateway: tuple[int, list[GrpcWitness]]
) -> None:
    port, witnesses = gateway
    endpoint = f"dns://127.0.0.1:{dns_server}/{GATEWAY_NAME}:{port}"
    per_collector = deliver(tmp_path, endpoint, witnesses, "--otlp-load-balancing", "pick_first")
    assert sorted(per_collector) == [0, LINES]


def test_round_robin_over_an_ipv4_address_list(
    tmp_path: Path, gateway: tuple[int, list[GrpcWitness]]
) -> None:
    port, witnesses = gateway
    endpoint = "ipv4:" + ",".join(f"{address}:{port}" for address in GATEWAY_ADDRESSES)
    per_collector = deliver(tmp_path, endpoint, witnesses)
    assert all(count > 0 for count in per_collector)
