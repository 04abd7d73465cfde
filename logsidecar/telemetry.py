"""Self-metrics (Prometheus) and the HTTP endpoint that serves them with /healthz and /readyz.

`Metrics` owns a private `CollectorRegistry` (never the global one, so tests and embedders can have
several). It is fed three ways:
- the event bus (`Metrics.subscribe()`): rotations, truncations, truncated lines, NUL runs,
  inotify queue overflows, refused files (by reason), checkpoint writes, sink retries and rejections
  are counted from `logsidecar.events`;
- explicit observations from the pipeline: `observe_batch(...)` per parsed batch and
  `observe_delivery(...)` per successful `Sink.send`;
- live gauges read at scrape time from `LiveSources` callables (files watched, rotated files held,
  bytes behind per file = size - committed offset, age of the oldest undelivered record, queue depth).
  Scrape-time reading means no gauge can go stale and the core does no bookkeeping for them.

`TelemetryServer` is an asyncio HTTP/1.1 server (stdlib only, one request per connection) that runs in
the pipeline's event loop, so the live callables are read on the loop thread with no locking:
  GET /metrics  Prometheus text format (OpenMetrics when the scraper asks for it)
  GET /healthz  liveness: 200 or 503, JSON body saying why (see `logsidecar.health`)
  GET /readyz   readiness: 200 or 503, JSON body saying why
It is off unless --http-addr is given; `DEFAULT_HTTP_ADDR` (loopback) is the suggested bind.

Wiring (the lead's side):
    live = LiveSources(file_stats=tailer.stats, oldest_undelivered_age_s=..., queue_depth=...)
    health = HealthMonitor(policy=HealthPolicy(unhealthy_after_s=settings.unhealthy_after_s),
                           bytes_behind=live.total_bytes_behind, files_followed=live.files_watched)
    metrics = Metrics(live=live, health=health)
    unsubscribe = [metrics.subscribe(), health.subscribe()]
    async with TelemetryServer(settings.http_addr, metrics, health):  # only if http_addr is set
        ...   # metrics.observe_batch(...), metrics.observe_delivery(...) from the pipeline
Retries: counted from the SINK_RETRY event. `observe_retry(sink)` does the same for code that does not
emit the event; use one or the other for a given sink, never both.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from logsidecar import __version__, events
from logsidecar.events import Event
from logsidecar.health import HealthMonitor, Verdict

DEFAULT_HTTP_ADDR = "127.0.0.1:9464"

# `*_created` series double the scrape size and no dashboard of ours uses them (process-wide switch).
disable_created_metrics()

# Tailer states of a file that was rotated away or deleted and is held open until drained.
HELD_STATES = frozenset({"rotated", "draining", "deleted", "lost"})
# Export latency buckets: sub-millisecond stdout writes up to minute-long OTLP retries.
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _no_files() -> Iterable[Any]:
    return ()


def _no_age() -> float | None:
    return None


def _no_queue() -> int:
    return 0


def _field(item: Any, name: str, default: Any = None) -> Any:
    """Tailer stats may be dataclasses or dicts; read either."""
    if isinstance(item, Mapping):
        return item.get(name, default)
    return getattr(item, name, default)


def _file_items(stats: Any) -> list[Any]:
    """Accept a list of per-file items, a {"files": [...]} mapping, or a {file_key: item} mapping."""
    if isinstance(stats, Mapping):
        files = stats.get("files")
        if files is not None:
            return _file_items(files)
        return [v for v in stats.values() if isinstance(v, Mapping) or hasattr(v, "committed_offset")]
    return list(stats)


@dataclass(slots=True)
class LiveSources:
    """Callables read at scrape time. `file_stats` is `Tailer.stats` as is ({"files": [...]}) or any
    iterable of per-file dicts/objects with at least `path`, `size`, `committed_offset` and `state`
    ("active"; "rotated" counts as held). `oldest_undelivered_age_s` returns None when nothing waits."""

    file_stats: Callable[[], Iterable[Any]] = _no_files
    oldest_undelivered_age_s: Callable[[], float | None] = _no_age
    queue_depth: Callable[[], int] = _no_queue

    def _stats(self) -> list[Any]:
        return _file_items(self.file_stats())

    def files_watched(self) -> int:
        return sum(1 for s in self._stats() if str(_field(s, "state", "")) not in HELD_STATES)

    def rotated_files_held(self) -> int:
        return sum(1 for s in self._stats() if str(_field(s, "state", "")) in HELD_STATES)

    def bytes_behind(self) -> dict[str, int]:
        """Per path: size - committed offset, summed over the files known under that path."""
        behind: dict[str, int] = {}
        for s in self._stats():
            size, committed = _field(s, "size", 0) or 0, _field(s, "committed_offset", 0) or 0
            path = str(_field(s, "path", ""))
            behind[path] = behind.get(path, 0) + max(0, int(size) - int(committed))
        return behind

    def total_bytes_behind(self) -> int:
        return sum(self.bytes_behind().values())


class Metrics:
    def __init__(self, live: LiveSources | None = None, health: HealthMonitor | None = None) -> None:
        self.live = live or LiveSources()
        self.health = health
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.lines_read = Counter(
            "logsidecar_lines_read_total", "Lines read from files.", ["path"], registry=r
        )
        self.bytes_read = Counter(
            "logsidecar_bytes_read_total", "Bytes of lines read from files.", ["path"], registry=r
        )
        self.records_parsed = Counter(
            "logsidecar_records_parsed_total", "Lines parsed into typed records.", ["format"], registry=r
        )
        self.records_unparsed = Counter(
            "logsidecar_records_unparsed_total",
            "Lines that did not match their format, forwarded raw and flagged.",
            ["format"],
            registry=r,
        )
        self.records_delivered = Counter(
            "logsidecar_records_delivered_total", "Records a sink accepted.", ["sink"], registry=r
        )
        self.delivery_retries = Counter(
            "logsidecar_delivery_retries_total",
            "Retried deliveries (backend down, timeout, throttled).",
            ["sink"],
            registry=r,
        )
        self.records_rejected = Counter(
            "logsidecar_records_rejected_total",
            "Records a sink's backend refused for good.",
            ["sink"],
            registry=r,
        )
        self.lines_truncated = Counter(
            "logsidecar_lines_truncated_total", "Lines cut at --max-line-bytes.", registry=r
        )
        self.nul_runs_skipped = Counter(
            "logsidecar_nul_runs_skipped_total",
            "Runs of NUL bytes skipped (preallocated or sparse files).",
            registry=r,
        )
        self.rotations = Counter("logsidecar_rotations_total", "File rotations detected.", registry=r)
        self.truncations = Counter("logsidecar_truncations_total", "File truncations detected.", registry=r)
        self.bytes_known_lost = Counter(
            "logsidecar_bytes_known_lost_total",
            "Bytes written and overwritten before they could be read (copytruncate with no copy found).",
            registry=r,
        )
        self.inotify_overflows = Counter(
            "logsidecar_inotify_overflows_total",
            "Kernel inotify queue overflows (events lost; every followed path was rescanned).",
            registry=r,
        )
        self.io_stalls = Counter(
            "logsidecar_io_stalls_total",
            "Filesystem calls on a network mount that did not return within the stall threshold.",
            ["operation"],
            registry=r,
        )
        self.http_accept_failures = Counter(
            "logsidecar_http_accept_failures_total",
            "Connections to the HTTP endpoint that could not be accepted (out of file descriptors).",
            registry=r,
        )
        self.http_connections_dropped = Counter(
            "logsidecar_http_connections_dropped_total",
            "HTTP connections closed without an answer: idle past the timeout, or over the cap.",
            ["reason"],
            registry=r,
        )
        self.files_refused = Counter(
            "logsidecar_files_refused_total",
            "Paths the file-opening policy refused (symlink out of the base directory, FIFO/device/"
            "directory, our own stdout/stderr, swapped while opening), once per path and reason.",
            ["reason"],
            registry=r,
        )
        self.checkpoint_writes = Counter(
            "logsidecar_checkpoint_writes_total", "Checkpoints written to the state directory.", registry=r
        )
        self.export_latency = Histogram(
            "logsidecar_export_latency_seconds",
            "Time from handing a batch to a sink to its acceptance, retries included.",
            ["sink"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        r.register(_LiveCollector(self))
        self._per_path: dict[str, tuple[Any, Any]] = {}
        self._per_format: dict[str, tuple[Any, Any]] = {}
        # CPU, memory and open file descriptors: a sidecar's budget (held rotated files cost fds).
        ProcessCollector(namespace="logsidecar", registry=r)

    # -- event bus -----------------------------------------------------------------------------
    def subscribe(self) -> Callable[[], None]:
        """Count events from logsidecar.events; returns the unsubscribe function."""
        return events.subscribe(self.handle_event)

    def handle_event(self, event: Event, fields: dict[str, Any]) -> None:
        if event is Event.FILE_ROTATED:
            self.rotations.inc()
        elif event is Event.FILE_TRUNCATED:
            self.truncations.inc()
            self.bytes_known_lost.inc(_count(fields, "bytes_known_lost", default=0))
        elif event is Event.LINE_TRUNCATED:
            self.lines_truncated.inc(_count(fields, "lines", default=1))
        elif event is Event.NUL_RUN_SKIPPED:
            self.nul_runs_skipped.inc(_count(fields, "runs", default=1))
        elif event is Event.INOTIFY_OVERFLOW:
            self.inotify_overflows.inc(_count(fields, "overflows", default=1))
        elif event is Event.FILE_REFUSED:
            self.files_refused.labels(reason=str(fields.get("reason", "unknown"))).inc()
        elif event is Event.CHECKPOINT_WRITTEN:
            self.checkpoint_writes.inc()
        elif event is Event.FILE_STALLED:
            self.io_stalls.labels(operation=str(fields.get("operation", "stat"))).inc()
        elif event is Event.SINK_RETRY:
            self.delivery_retries.labels(sink=str(fields.get("sink", "sink"))).inc()
        elif event in (Event.SINK_REJECTED, Event.SINK_PARTIAL_SUCCESS) and "rejected" in fields:
            # Only events carrying `rejected` are counted: the OTLP sink also emits SINK_REJECTED
            # (without it) for a batch the pipeline then reports again with `rejected=`.
            self.records_rejected.labels(sink=str(fields.get("sink", "sink"))).inc(
                _count(fields, "rejected", default=0)
            )

    # -- explicit observations -----------------------------------------------------------------
    def observe_batch(self, path: str, fmt: str, lines: int, bytes: int, parsed: int, unparsed: int) -> None:  # noqa: A002
        """One parsed batch from `path`: `bytes` are the line bytes read, `parsed + unparsed == lines`."""
        # Labelled children are cached: `.labels()` costs more than the increments themselves.
        per_path = self._per_path.get(path)
        if per_path is None:
            per_path = self._per_path[path] = (
                self.lines_read.labels(path=path),
                self.bytes_read.labels(path=path),
            )
        per_format = self._per_format.get(fmt)
        if per_format is None:
            per_format = self._per_format[fmt] = (
                self.records_parsed.labels(format=fmt),
                self.records_unparsed.labels(format=fmt),
            )
        per_path[0].inc(lines)
        per_path[1].inc(bytes)
        if parsed:
            per_format[0].inc(parsed)
        if unparsed:
            per_format[1].inc(unparsed)

    def observe_delivery(self, sink: str, records: int, latency_s: float) -> None:
        """A successful `Sink.send` of `records` records that took `latency_s` seconds (retries included)."""
        self.records_delivered.labels(sink=sink).inc(records)
        self.export_latency.labels(sink=sink).observe(latency_s)
        if self.health is not None:
            self.health.note_delivery(sink, records)

    def observe_retry(self, sink: str, error: str | None = None) -> None:
        """A delivery attempt failed and will be retried (same as emitting SINK_RETRY; see docstring)."""
        self.delivery_retries.labels(sink=sink).inc()
        if self.health is not None:
            self.health.note_failure(sink, error)

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape body and its content type, negotiated from the Accept header."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def _count(fields: Mapping[str, Any], key: str, *, default: int) -> int:
    value = fields.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


class _LiveCollector(Collector):
    """Gauges computed at scrape time from LiveSources (and the health monitor)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []  # unchecked collector: its series depend on the files present

    def collect(self) -> Iterator[Metric]:
        live = self._metrics.live
        yield _gauge(
            "logsidecar_build_info",
            "Build information.",
            {(("version", __version__),): 1},
            labels=["version"],
        )
        stats = _safely(lambda: _file_items(live.file_stats()), [])
        frozen = LiveSources(file_stats=lambda: stats)  # read the tailer once per scrape
        yield _gauge(
            "logsidecar_files_watched", "Files followed at their path.", {(): frozen.files_watched()}
        )
        yield _gauge(
            "logsidecar_rotated_files_held",
            "Rotated or deleted files kept open until read to their end.",
            {(): frozen.rotated_files_held()},
        )
        yield _gauge(
            "logsidecar_bytes_behind",
            "Bytes written to a file but not yet delivered (size - committed offset).",
            {(("path", p),): v for p, v in sorted(frozen.bytes_behind().items())},
            labels=["path"],
        )
        age = _safely(live.oldest_undelivered_age_s, None)
        yield _gauge(
            "logsidecar_oldest_undelivered_age_seconds",
            "Age of the oldest record read but not yet delivered (0 when none).",
            {(): float(age or 0.0)},
        )
        yield _gauge(
            "logsidecar_queue_depth", "Batches waiting for a sink.", {(): _safely(live.queue_depth, 0)}
        )
        if self._metrics.health is not None:
            failing = self._metrics.health.failing_for()
            yield _gauge(
                "logsidecar_sink_failing_seconds",
                "How long each failing sink has been failing (absent when it is healthy).",
                {(("sink", s),): v for s, v in sorted(failing.items())},
                labels=["sink"],
            )


def _gauge(
    name: str,
    documentation: str,
    values: Mapping[tuple[tuple[str, str], ...] | tuple[()], float],
    labels: list[str] | None = None,
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels or [])
    for label_pairs, value in values.items():
        family.add_metric([v for _, v in label_pairs], value)
    return family


def _safely(read: Callable[[], Any], default: Any) -> Any:
    try:
        return read()
    except Exception:  # noqa: BLE001 - a scrape must never fail because one probe did
        return default


# ---------------------------------------------------------------------------------------------
# HTTP server
# ---------------------------------------------------------------------------------------------

_MAX_REQUEST_HEAD = 16 * 1024
# A probe or a scrape sends its request at once; a connection that has not sent a whole request head
# within this (or does not take its response) is dropped. Also the longest a connection holds a slot.
IDLE_TIMEOUT_S = 5.0
# Connections served at once. Each costs a file descriptor that the tailer may need for log files, so
# a flood of idle connections must not take them all: above the cap, the oldest connection still
# waiting for its request is dropped to make room (a real probe sends its request at once).
MAX_CONNECTIONS = 64
MIN_CONNECTIONS = 4  # the cap never goes below this when descriptors run out
LISTEN_BACKLOG = 128
# Retry delay after an accept that failed for lack of descriptors with no connection to drop.
ACCEPT_RETRY_S = 0.1
# Accept failures are reported at most this often, with how many there were since the last report.
ACCEPT_ERROR_REPORT_S = 30.0
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_CLIENT_GAVE_UP = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR})
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class TelemetryServer:
    """Serves /metrics, /healthz and /readyz. Use `async with` or start()/stop().

    `addr` is "host:port", "[v6]:port", ":port" (loopback) or a (host, port) tuple; port 0 picks a free
    port, then read `.port`.

    Bounded whatever clients do: at most `max_connections` at once (the oldest one still waiting for
    its request is dropped for a new one), each for at most `idle_timeout_s` per step (request head,
    response). Our own accept loop: asyncio's logs a traceback for every accept that fails with
    EMFILE; here such a failure drops an idle connection (or waits `ACCEPT_RETRY_S`), lowers the cap to
    the connections that fitted, and is counted in a `http_accept_failed` event at most every
    `ACCEPT_ERROR_REPORT_S`.
    """

    def __init__(
        self,
        addr: str | tuple[str, int],
        metrics: Metrics,
        health: HealthMonitor,
        *,
        sample_interval_s: float = 5.0,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        if isinstance(addr, str):
            from logsidecar.config import parse_http_addr

            addr = parse_http_addr(addr)
        self.host, self.port = addr
        self.metrics = metrics
        self.health = health
        self.sample_interval_s = sample_interval_s
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self._listeners: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._waiting: dict[asyncio.Task[None], None] = {}  # no request head yet; oldest first
        self._accept_failures = 0  # since the last report
        self._accept_reported_at: float | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        port = self.port
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                listener = socket.socket(family, kind, proto)
                self._listeners.append(listener)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port:  # every address on the port the first one got (port 0)
                    address = (address[0], port, *address[2:])
                listener.bind(address)
                listener.listen(LISTEN_BACKLOG)
                listener.setblocking(False)
                port = listener.getsockname()[1]
        except OSError:
            self._close_listeners()
            raise
        self.port = port
        for listener in self._listeners:
            self._tasks.append(asyncio.create_task(self._accept_forever(listener), name="telemetry-accept"))
        # Health judges lag over a window: sample even when nobody probes.
        self._tasks.append(asyncio.create_task(self._sample_forever(), name="telemetry-sampler"))

    async def stop(self) -> None:
        for task in [*self._tasks, *self._connections]:
            task.cancel()
        for task in [*self._tasks, *self._connections]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._close_listeners()

    def _close_listeners(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()

    async def __aenter__(self) -> TelemetryServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sample_interval_s)
            self.health.sample()

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in _CLIENT_GAVE_UP:
                    continue  # that connection is gone; the next one may be fine
                if exc.errno not in _OUT_OF_RESOURCES:
                    await asyncio.sleep(ACCEPT_RETRY_S)  # unexpected: never spin on it
                    continue
                self._note_accept_failure(exc)
                # Out of descriptors: never again hold more connections than fitted.
                self.max_connections = max(
                    MIN_CONNECTIONS, min(self.max_connections, len(self._connections) - 1)
                )
                if not await self._drop_waiting_connection():
                    await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            # Over the cap: make room (and wait until the dropped one's descriptor is closed, so
            # that the next accept does not run out of them).
            if len(self._connections) >= self.max_connections and not await self._drop_waiting_connection():
                connection.close()  # every slot is busy answering: refuse, the client retries
                self.metrics.http_connections_dropped.labels(reason="over_limit").inc()
                continue
            task = asyncio.create_task(self._serve(connection), name="telemetry-connection")
            self._connections.add(task)
            self._waiting[task] = None
            task.add_done_callback(self._forget)
            # Let it read the request the client has probably sent already, before the next accept
            # (sock_accept does not yield while connections are queued) can make it the oldest.
            await asyncio.sleep(0)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._connections.discard(task)
        self._waiting.pop(task, None)

    def _drop_oldest_waiting(self) -> asyncio.Task[None] | None:
        if not self._waiting:
            return None
        task = next(iter(self._waiting))
        del self._waiting[task]
        task.cancel()
        self.metrics.http_connections_dropped.labels(reason="over_limit").inc()
        return task

    async def _drop_waiting_connection(self) -> bool:
        """Drop the oldest connection waiting for its request and wait until its descriptor is closed."""
        task = self._drop_oldest_waiting()
        if task is None:
            return False
        await asyncio.wait([task])
        await asyncio.sleep(0)  # the transport closes its socket on the next loop iteration
        return True

    def _note_accept_failure(self, exc: OSError) -> None:
        self._accept_failures += 1
        self.metrics.http_accept_failures.inc()
        now = time.monotonic()
        if self._accept_reported_at is not None and now - self._accept_reported_at < ACCEPT_ERROR_REPORT_S:
            return
        events.emit(
            Event.HTTP_ACCEPT_FAILED,
            reason=os.strerror(exc.errno) if exc.errno else str(exc),
            failures=self._accept_failures,
            connections=len(self._connections),
            max_connections=self.max_connections,
        )
        self._accept_failures = 0
        self._accept_reported_at = now

    async def _serve(self, connection: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=connection)
        except OSError:
            connection.close()
            return
        try:
            await self._handle(reader, writer)
        except (OSError, TimeoutError):
            pass  # the client went away or would not take its response: nothing to tell anyone
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_timeout_s)
            current = asyncio.current_task()
            if current is not None:
                self._waiting.pop(current, None)  # it asked: no longer the first to be dropped
            if len(head) > _MAX_REQUEST_HEAD:
                raise ValueError("request head too large")
            try:
                status, content_type, body, method = self._respond(head)
            except (ValueError, ConnectionError):
                raise
            except Exception:  # noqa: BLE001 - a failing probe answers 500; no traceback per request
                status, content_type, body, method = (
                    500,
                    "text/plain; charset=utf-8",
                    b"internal error\n",
                    "GET",
                )
        except TimeoutError:
            self.metrics.http_connections_dropped.labels(reason="idle_timeout").inc()
            return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            status, content_type, body, method = 400, "text/plain; charset=utf-8", b"bad request\n", "GET"
        writer.write(
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode("latin-1")
        )
        if method != "HEAD":
            writer.write(body)
        await asyncio.wait_for(writer.drain(), self.idle_timeout_s)

    def _respond(self, head: bytes) -> tuple[int, str, bytes, str]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise ValueError("malformed request line")
        method, target, _ = parts
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"method not allowed\n", method
        if path == "/metrics":
            body, content_type = self.metrics.exposition(headers.get("accept"))
            return 200, content_type, body, method
        if path == "/healthz":
            return (*_verdict_response(self.health.liveness()), method)
        if path == "/readyz":
            return (*_verdict_response(self.health.readiness()), method)
        if path == "/":
            return 200, "text/plain; charset=utf-8", b"logsidecar: /metrics /healthz /readyz\n", method
        return 404, "text/plain; charset=utf-8", b"not found; try /metrics /healthz /readyz\n", method


def _verdict_response(verdict: Verdict) -> tuple[int, str, bytes]:
    body = json.dumps(verdict.to_json(), indent=None, sort_keys=False).encode() + b"\n"
    return (200 if verdict.ok else 503), "application/json", body
