"""Retrying one OTLP export until the collector accepts it, rejects it for good, the retry time runs out,
or the sink is closed: `ExportRetry`, one per `OtlpSink`, holding the failure streak of its sends.

- Retryable failures are retried with exponential backoff and jitter, for as long as it takes (or
  until `max_retry_time_s`, or `close()`). Retryable, per the OTLP specification: gRPC UNAVAILABLE,
  DEADLINE_EXCEEDED, ABORTED, CANCELLED, OUT_OF_RANGE, DATA_LOSS, and RESOURCE_EXHAUSTED when the server
  sent RetryInfo; HTTP 429, 502, 503, 504; connection errors, timeouts and TLS handshake failures (a
  collector restarting with new certificates is a transient state; the reason in the event says TLS).
  A server-supplied delay (gRPC RetryInfo, HTTP Retry-After) is honoured. Each failed attempt emits
  SINK_RETRY (selflog rate-limits repeats of the same reason); the first success after failures emits
  SINK_RECOVERED. A success also ends the backoff of every other send of this sink waiting out its
  own delay (they retry within RECOVERY_JITTER_S): after a collector restart the in-flight batches
  go out one round-trip after the first one, not each after its own backoff of up to max_backoff_s.
  So does the transport seeing the collector again while sends back off (`Transport.watch_reconnect`:
  gRPC round_robin reconnects in the background), so the first one does not wait out its backoff
  either. A server-supplied delay is never cut short, and a collector that answers again but fails
  the retries puts them back into their backoff, which keeps growing (the attempt count goes on).
  Statuses the specification calls non-retryable but that say nothing against the data (HTTP 500,
  gRPC INTERNAL, UNKNOWN, RESOURCE_EXHAUSTED without RetryInfo ...) are retried too: only a batch
  rejected as malformed may be dropped.
- Configuration errors: authentication and permission (HTTP 401/403, gRPC UNAUTHENTICATED/
  PERMISSION_DENIED), no logs service at the endpoint (HTTP 404/405/415, gRPC UNIMPLEMENTED/NOT_FOUND),
  header values the transport cannot carry. They never drop data, whatever `max_retry_time_s`: the
  batch is retried with the capped backoff until the configuration is fixed (or `close()`), one
  SINK_MISCONFIGURED event says what to fix (per streak and reason), and every attempt's SINK_RETRY
  carries `misconfigured: true`, which makes the process unhealthy at once (`health.py`).
- `close()` makes pending and future attempts raise `SinkClosed` promptly: "not delivered", which the
  pipeline must NOT acknowledge (unlike BatchRejected), so the lines are replayed after a restart.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from logsidecar import events
from logsidecar.events import Event, SinkRecovered, SinkRetry
from logsidecar.sinks.otlp_settings import OtlpSettings
from logsidecar.sinks.otlp_transport import Accepted, Misconfigured, Rejected, Retryable, Transport

# After a success, the sends waiting out their backoff retry within this (spread a little, so they do
# not all hit the collector at the same instant; small next to the round-trip they save).
RECOVERY_JITTER_S = 0.05


class SinkClosed(Exception):
    """`close()` was called while the batch was still undelivered; it must not be acknowledged."""


class ExportStats(Protocol):
    """The sink's counters that retrying adds to."""

    requests_sent: int
    retries: int


class ExportRetry:
    """The retry loop of one sink's exports, and the failure streak its concurrent sends share."""

    def __init__(
        self,
        settings: OtlpSettings,
        stats: ExportStats,
        *,
        endpoint_shown: str,
        sink_name: str,
        transport: Transport | None = None,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.transport = transport  # the sink's, set by its start() when it builds one
        self._endpoint_shown = endpoint_shown
        self._sink_name = sink_name
        self._closed = asyncio.Event()  # binds to a loop on first wait (Python >= 3.10)
        self._is_closed = False
        self._failing_since: float | None = None  # monotonic time of the first failure of a streak
        self._misconfigured: str | None = None  # the configuration error reported in this streak
        self._successes = 0  # accepted exports so far: a failure that raced a success retries at once
        self._delivering_again = asyncio.Event()  # set (then replaced) by a success: ends others' backoff
        self._backing_off = 0  # sends waiting out their own backoff
        self._stop_watching: Callable[[], None] | None = None  # the transport's reconnect watch, meanwhile

    @property
    def successes(self) -> int:
        """Accepted exports so far: taken before a first attempt made outside `export` (see there)."""
        return self._successes

    def close(self) -> None:
        """Pending and future attempts raise SinkClosed; backoffs end now."""
        self._is_closed = True
        self._closed.set()
        if self._stop_watching is not None:
            self._stop_watching()
            self._stop_watching = None

    def raise_if_closed(self) -> None:
        if self._is_closed:
            raise SinkClosed("OTLP sink closed before the batch was delivered")

    async def export(
        self, payload: bytes, record_count: int, first: tuple[Any, int, float] | None = None
    ) -> Accepted | Rejected:
        """Attempt until accepted, rejected for good, out of retry time, or closed. A configuration
        error is retried however long it takes: the retry limit never turns it into lost data.
        `first`: the outcome of a first attempt already made, `successes` before it and its start."""
        assert self.transport is not None
        transport = self.transport
        attempt = 0
        started = time.monotonic() if first is None else first[2]
        while True:
            if first is not None:
                (outcome, successes_before, _), first = first, None
            else:
                self.raise_if_closed()
                self.stats.requests_sent += 1
                successes_before = self._successes
                outcome = await asyncio.to_thread(transport.export, payload, self.settings.timeout_s)
            if not isinstance(outcome, Accepted) and self._is_closed:
                raise SinkClosed("OTLP sink closed before the batch was delivered")
            if isinstance(outcome, Accepted):
                self._wake_backing_off()
            if isinstance(outcome, Accepted | Rejected):
                if isinstance(outcome, Accepted) and self._failing_since is not None:
                    events.emit(
                        SinkRecovered(
                            sink=self._sink_name,
                            endpoint=self._endpoint_shown,
                            outage_s=round(time.monotonic() - self._failing_since, 3),
                        )
                    )
                    self._failing_since = None
                    self._misconfigured = None
                return outcome
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            attempt += 1
            self.stats.retries += 1
            misconfigured = isinstance(outcome, Misconfigured)
            server_delay_s = outcome.delay_s if isinstance(outcome, Retryable) else None
            delay = self.backoff_s(attempt, server_delay_s)
            # Our own backoff (not the server's) ends when another send gets through: already, if
            # one did while this attempt was on the wire; else, while it waits (`_back_off`).
            wakeable = server_delay_s is None
            if wakeable and self._successes != successes_before:
                delay = min(delay, random.uniform(0.0, RECOVERY_JITTER_S))
            elapsed = time.monotonic() - started
            limit = self.settings.max_retry_time_s
            if isinstance(outcome, Misconfigured):
                self._report_misconfigured(outcome)
            elif limit is not None and elapsed + delay > limit:
                return Rejected(
                    f"gave up after {elapsed:.1f}s of retries (--otlp-max-retry-time): {outcome.reason}",
                    outcome.detail,
                )
            else:
                self._misconfigured = None
            events.emit(
                SinkRetry(
                    sink=self._sink_name,
                    reason=outcome.reason,
                    detail=outcome.detail,
                    attempt=attempt,
                    retry_in_s=round(delay, 3),
                    records=record_count,
                    endpoint=self._endpoint_shown,
                    misconfigured=misconfigured,
                )
            )
            if wakeable:
                await self._back_off(delay)
            else:
                await self._sleep_unless_closed(delay)

    def backoff_s(self, attempt: int, server_delay_s: float | None) -> float:
        """The delay before retry `attempt` (from 1), or the server's, capped."""
        if server_delay_s is not None:
            # The server knows best, but never wait longer than our own cap (a bogus hint must not stall us).
            return min(max(server_delay_s, 0.0), max(self.settings.max_backoff_s, 60.0))
        ceiling = min(self.settings.max_backoff_s, self.settings.initial_backoff_s * 2 ** (attempt - 1))
        # +/-20% jitter, as the SDK exporters do, so many sidecars do not retry in lockstep.
        return ceiling * random.uniform(0.8, 1.2)

    # -- internals --

    def _wake_backing_off(self) -> None:
        """An export was accepted: the collector answers again. End the backoff of the other sends."""
        self._successes += 1
        self._end_backoff()

    def _end_backoff(self) -> None:
        if self._backing_off:
            self._delivering_again.set()
            self._delivering_again = asyncio.Event()

    async def _back_off(self, delay_s: float) -> None:
        """Sleep `delay_s`, or until another send of this sink is accepted (then a jitter more)."""
        delivering_again = self._delivering_again
        self._backing_off += 1
        if self._stop_watching is None and self.transport is not None:
            loop = asyncio.get_running_loop()
            self._stop_watching = self.transport.watch_reconnect(lambda: _call_soon(loop, self._end_backoff))
        try:
            woken = asyncio.ensure_future(delivering_again.wait())
            closed = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait((woken, closed), timeout=delay_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                closed.cancel()
        finally:
            self._backing_off -= 1
            if not self._backing_off and self._stop_watching is not None:
                self._stop_watching()
                self._stop_watching = None
        self.raise_if_closed()
        if delivering_again.is_set():
            await self._sleep_unless_closed(random.uniform(0.0, min(RECOVERY_JITTER_S, delay_s)))

    def _report_misconfigured(self, outcome: Misconfigured) -> None:
        """One event per configuration error and streak (concurrent sends share it)."""
        if self._misconfigured == outcome.reason:
            return
        self._misconfigured = outcome.reason
        events.emit(
            Event.SINK_MISCONFIGURED,
            sink=self._sink_name,
            endpoint=self._endpoint_shown,
            reason=outcome.reason,
            detail=outcome.detail,
            fix=outcome.fix,
            consequence="nothing is dropped: the lines stay unacknowledged and are retried (backoff up "
            f"to {self.settings.max_backoff_s:g}s); reading pauses once the in-flight budget is full",
        )

    async def _sleep_unless_closed(self, delay_s: float) -> None:
        try:
            await asyncio.wait_for(self._closed.wait(), timeout=delay_s)
        except TimeoutError:
            return
        raise SinkClosed("OTLP sink closed before the batch was delivered")


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """`callback` on `loop`, from another thread (the transport's); nothing once the loop is closed."""
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:
        pass
