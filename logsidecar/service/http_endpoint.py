"""The HTTP endpoint of our own telemetry: an asyncio HTTP/1.1 server (stdlib only, one request per
connection) that runs in the pipeline's event loop, so the live gauges are read on the loop thread
with no locking:
  GET /metrics  Prometheus text format (OpenMetrics when the scraper asks for it)
  GET /livez    the event loop answers: 200 (a stuck loop answers nothing)
  GET /readyz   started and following at least one file (never backend state): 200 or 503
  GET /healthz  for alerting, delivery and lag included: 200 or 503
Each probe answers with a JSON body saying why (see `logsidecar.health`; docs/kubernetes.md says
which probe belongs where).
It is off unless --http-addr is given; `DEFAULT_HTTP_ADDR` (loopback) is the suggested bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Callable

from logsidecar import events
from logsidecar.events import Event
from logsidecar.health import HealthMonitor, Verdict
from logsidecar.service.metrics_registry import DEFAULT_HTTP_ADDR, Metrics
from logsidecar.settings.values import parse_http_addr

__all__ = ["DEFAULT_HTTP_ADDR", "TelemetryServer"]

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
    """Serves /metrics, /livez, /readyz and /healthz. Use `async with` or start()/stop().

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
        if path in _PROBES:
            return (*_verdict_response(_PROBES[path](self.health)), method)
        if path == "/":
            return 200, "text/plain; charset=utf-8", b"logsidecar: /metrics /livez /readyz /healthz\n", method
        return 404, "text/plain; charset=utf-8", b"not found; try /metrics /livez /readyz /healthz\n", method


_PROBES: dict[str, Callable[[HealthMonitor], Verdict]] = {
    "/livez": HealthMonitor.alive,
    "/readyz": HealthMonitor.readiness,
    "/healthz": HealthMonitor.health,
}


def _verdict_response(verdict: Verdict) -> tuple[int, str, bytes]:
    body = json.dumps(verdict.to_json(), indent=None, sort_keys=False).encode() + b"\n"
    return (200 if verdict.ok else 503), "application/json", body
