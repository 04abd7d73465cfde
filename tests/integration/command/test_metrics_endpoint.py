"""TelemetryServer over real HTTP on a loopback port: /metrics, /healthz, /readyz, and the
`logsidecar health` command probing it."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from logsidecar import events
from logsidecar.cli.health import command as health_command
from logsidecar.events import Event
from logsidecar.health import HealthMonitor, HealthPolicy
from logsidecar.service.http_endpoint import TelemetryServer
from logsidecar.service.metrics_registry import LiveSources, Metrics


class FakeClock:
    """Test double for time.monotonic, so an outage of 60 s takes no time."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Running:
    """A TelemetryServer running in its own event loop on a background thread."""

    def __init__(self, server: TelemetryServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class Stack:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.clock = FakeClock()
        self.files: list[dict[str, Any]] = []
        self.live = LiveSources(
            file_stats=lambda: {"files": list(self.files)}, input_patterns=lambda: ["/logs/*.log"]
        )
        self.health = HealthMonitor(
            policy=HealthPolicy(unhealthy_after_s=60.0),
            clock=self.clock,
            bytes_behind=self.live.total_bytes_behind,
            files_followed=self.live.files_watched,
        )
        self.metrics = Metrics(live=self.live, health=self.health)
        self.server = TelemetryServer((host, 0), self.metrics, self.health)


@pytest.fixture
def stack() -> Iterator[Stack]:
    stack = Stack()
    unsubscribe = [stack.metrics.subscribe(), stack.health.subscribe()]
    with Running(stack.server):
        yield stack
    for undo in unsubscribe:
        undo()


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_metrics_endpoint_serves_counters_and_live_gauges(stack: Stack) -> None:
    stack.files.append(
        {
            "path": "/logs/access.log",
            "file_key": "k",
            "size": 5000,
            "committed_offset": 1000,
            "state": "active",
        }
    )
    stack.metrics.observe_batch("/logs/access.log", "combined", lines=40, bytes=4000, parsed=39, unparsed=1)
    stack.metrics.observe_delivery("otlp", records=40, latency_s=0.012)
    events.emit(Event.FILE_ROTATED, path="/logs/access.log", file_key="k")
    events.emit(Event.FILE_ERROR, path="/logs/secret.log", error="Permission denied", kind="EACCES")

    status, headers, body = get(stack.server.url + "/metrics")
    text = body.decode()
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = set(text.splitlines())
    assert {
        'logsidecar_lines_read_total{input="/logs/*.log"} 40.0',
        'logsidecar_bytes_read_total{input="/logs/*.log"} 4000.0',
        'logsidecar_records_parsed_total{format="combined"} 39.0',
        'logsidecar_records_unparsed_total{format="combined"} 1.0',
        'logsidecar_records_delivered_total{sink="otlp"} 40.0',
        'logsidecar_export_latency_seconds_count{sink="otlp"} 1.0',
        "logsidecar_rotations_total 1.0",
        'logsidecar_file_errors_total{kind="EACCES"} 1.0',
        "logsidecar_files_watched 1.0",
        'logsidecar_bytes_behind{input="/logs/*.log"} 4000.0',
    } <= lines


def test_livez_readyz_and_healthz_explain_their_status_in_json(stack: Stack) -> None:
    status, headers, body = get(stack.server.url + "/readyz")
    assert (status, json.loads(body)["summary"]) == (503, "not ready: starting")
    assert headers["Content-Type"] == "application/json"
    status, _, body = get(stack.server.url + "/livez")
    assert (status, json.loads(body)["summary"]) == (200, "alive: event loop answered; starting")

    events.emit(Event.STARTED, sinks=["otlp"])
    stack.files.append({"path": "/logs/access.log", "size": 10, "committed_offset": 10, "state": "active"})
    status, _, body = get(stack.server.url + "/readyz")
    assert (status, json.loads(body)["summary"]) == (200, "ready: following 1 file")

    status, _, body = get(stack.server.url + "/healthz")
    assert status == 200
    assert json.loads(body) == {
        "status": "ok",
        "summary": "healthy: following 1 file, 0 bytes behind",
        "reasons": [],
        "files_followed": 1,
        "bytes_behind": 0,
        "waiting": {},
        "conditions": {},
        "sinks": {},
    }

    events.emit(Event.SINK_RETRY, sink="otlp", reason="connection refused", attempt=1)
    stack.clock.now += 61
    status, _, body = get(stack.server.url + "/healthz")
    assert status == 503
    assert json.loads(body)["reasons"] == ["sink 'otlp' failing for 61s (last error: connection refused)"]
    # The backend's state is /healthz's only: readiness gates the Pod, liveness restarts the process.
    assert get(stack.server.url + "/readyz")[0] == 200
    assert get(stack.server.url + "/livez")[0] == 200

    events.emit(Event.SINK_RECOVERED, sink="otlp", outage_s=61.0)
    assert get(stack.server.url + "/healthz")[0] == 200


def test_unknown_paths_methods_and_garbage_get_clean_errors(stack: Stack) -> None:
    assert get(stack.server.url + "/nope")[0] == 404
    assert get(stack.server.url + "/metrics", method="POST")[0] == 405
    status, headers, body = get(stack.server.url + "/healthz", method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) > 0
    with socket.create_connection(("127.0.0.1", stack.server.port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400 Bad Request")
    assert get(stack.server.url + "/metrics")[0] == 200  # still serving


def test_health_command_exit_codes_follow_the_endpoint(stack: Stack) -> None:
    runner = CliRunner()
    events.emit(Event.STARTED)
    stack.files.append({"path": "/logs/a", "size": 0, "committed_offset": 0, "state": "active"})
    result = runner.invoke(health_command, ["--url", stack.server.url])
    assert (result.exit_code, result.output) == (0, "healthy: following 1 file, 0 bytes behind\n")

    result = runner.invoke(health_command, ["--url", stack.server.url, "--ready"])
    assert (result.exit_code, result.output) == (0, "ready: following 1 file\n")
    result = runner.invoke(health_command, ["--url", stack.server.url, "--probe", "readyz"])
    assert (result.exit_code, result.output) == (0, "ready: following 1 file\n")

    stack.health.note_failure("otlp", "503 Service Unavailable")
    stack.clock.now += 90
    result = runner.invoke(health_command, ["--url", stack.server.url])
    assert (result.exit_code, result.output) == (
        1,
        "unhealthy: sink 'otlp' failing for 90s (last error: 503 Service Unavailable)\n",
    )
    result = runner.invoke(health_command, ["--url", stack.server.url, "--probe", "healthz"])
    assert result.exit_code == 1
    for probe, expected in (
        ("readyz", "ready: following 1 file"),
        ("livez", "alive: event loop answered; running"),
    ):
        result = runner.invoke(health_command, ["--url", stack.server.url, "--probe", probe])
        assert (result.exit_code, result.output) == (0, expected + "\n")
    result = runner.invoke(health_command, ["--url", stack.server.url, "--ready", "--probe", "livez"])
    assert result.exit_code == 2 and "--ready means --probe readyz" in result.output


def test_health_command_reports_an_unreachable_endpoint_in_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        result = CliRunner().invoke(health_command, ["--url", f"http://127.0.0.1:{port}", "--timeout", "2s"])
    assert result.exit_code == 1
    assert result.output == f"unhealthy: cannot reach http://127.0.0.1:{port}/healthz: Connection refused\n"


def test_server_binds_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 is not configured here")
    stack = Stack(host="::1")
    with Running(stack.server):
        assert stack.server.url.startswith("http://[::1]:")
        assert get(stack.server.url + "/metrics")[0] == 200


def test_string_address_is_parsed_and_port_zero_picks_a_free_port() -> None:
    stack = Stack()
    server = TelemetryServer("127.0.0.1:0", stack.metrics, stack.health)
    with Running(server):
        assert server.port != 0
        assert get(server.url + "/")[0] == 200


def test_bytes_behind_follows_a_real_tailer_until_acknowledged(tmp_path: Any) -> None:
    """A real Tailer wired to the telemetry the way `logsidecar tail` wires it: its stats() feed the
    live gauges (LiveSources) and the health monitor, served by a real TelemetryServer."""
    from logsidecar.tail.options import ReadBatch, TailOptions, WatchMode
    from logsidecar.tail.tailer import Tailer

    log = tmp_path / "access.log"
    content = b"line one\nline two\nline three\n"
    log.write_bytes(content)
    tailer = Tailer(TailOptions(include=(str(log),), watch=WatchMode.POLL, poll_interval_s=0.05))
    live = LiveSources(file_stats=tailer.stats, input_patterns=lambda: tailer.matcher.include)
    health = HealthMonitor(bytes_behind=live.total_bytes_behind, files_followed=live.files_watched)
    metrics = Metrics(live=live, health=health)
    batches: list[ReadBatch] = []

    async def emit(batch: ReadBatch) -> None:
        batches.append(batch)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def scrape(path: str) -> str:
            return (await loop.run_in_executor(None, get, server.url + path))[2].decode()

        async def wait_until(condition: Any, what: str) -> None:
            deadline = loop.time() + 10
            while not condition():
                assert loop.time() < deadline, f"timed out waiting for {what}"
                await asyncio.sleep(0.02)

        server = TelemetryServer(("127.0.0.1", 0), metrics, health)
        async with server:
            health.mark_started()
            run = asyncio.create_task(tailer.run(emit))
            await wait_until(lambda: sum(len(b.lines) for b in batches) == 3, "three lines read")
            text = await scrape("/metrics")
            assert f'logsidecar_bytes_behind{{input="{log}"}} {float(len(content))}' in text
            assert "logsidecar_files_watched 1.0" in text
            assert json.loads(await scrape("/readyz"))["summary"] == "ready: following 1 file"

            tailer.acknowledge(batches[-1].file_key, batches[-1].end_offset)
            await wait_until(lambda: live.total_bytes_behind() == 0, "acknowledged offset to be committed")
            text = await scrape("/metrics")
            assert f'logsidecar_bytes_behind{{input="{log}"}} 0.0' in text
            await tailer.stop()
            await asyncio.wait_for(run, 10)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("addr", "url"),
    [
        (None, "http://127.0.0.1:9464"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("[::]:9000", "http://[::1]:9000"),
        ("[::1]:9001", "http://[::1]:9001"),
        (":9002", "http://127.0.0.1:9002"),
        ("10.0.0.5:9003", "http://10.0.0.5:9003"),
    ],
)
def test_health_command_finds_the_endpoint_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, addr: str | None, url: str
) -> None:
    from logsidecar.cli.health import default_url

    if addr is None:
        monkeypatch.delenv("LOGSIDECAR_HTTP_ADDR", raising=False)
    else:
        monkeypatch.setenv("LOGSIDECAR_HTTP_ADDR", addr)
    assert default_url() == url
