"""The telemetry lifecycle: our own logs, and metrics, health and the HTTP endpoint, across reloads.

- `SelfLog`: our own logs on stderr as configured; installing again (a reload) replaces the logger,
  so there is never two on the event bus.
- `LiveRun`: the pipeline and tailer of the current run, what the live gauges read at scrape time.
- `Telemetry`: metrics, health and the HTTP server. They outlive reloads (counters keep counting);
  the supervisor replaces them only when `--http-addr` or `--unhealthy-after` change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from logsidecar import events, selflog
from logsidecar.events import Level, Started
from logsidecar.health import HealthMonitor, HealthPolicy
from logsidecar.pipeline import Pipeline
from logsidecar.settings.resolved import ResolvedRun


class LogConfig(Protocol):
    """Where our own logs' style and level come from: the `Settings` (while `tail` resolves) or the
    `ResolvedRun` (while it runs)."""

    @property
    def log_format(self) -> str: ...

    @property
    def log_level(self) -> str: ...


class SelfLog:
    """Our own logs, subscribed to the event bus once at a time."""

    def __init__(self) -> None:
        self._unsubscribe: Callable[[], None] | None = None

    def install(self, config: LogConfig) -> None:
        self.uninstall()
        logger = selflog.SelfLogger(style=selflog.LogStyle(config.log_format), level=Level(config.log_level))
        self._unsubscribe = events.subscribe(logger)

    def uninstall(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


class LiveRun:
    """The pipeline and tailer of the current run: what the live gauges read at scrape time."""

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self.tailer: Any = None  # a Tailer, or a StdinSource (`tail -`)

    def file_stats(self) -> Any:
        return self.tailer.stats() if self.tailer is not None else ()

    def waiting_patterns(self) -> dict[str, str]:
        return self.tailer.waiting_patterns() if self.tailer is not None else {}

    def input_patterns(self) -> tuple[str, ...]:
        return tuple(self.tailer.input_patterns()) if self.tailer is not None else ()

    def queue_depth(self) -> int:
        return self.pipeline.queue_depth() if self.pipeline is not None else 0

    def oldest_undelivered_age_s(self) -> float | None:
        return self.pipeline.oldest_undelivered_age_s() if self.pipeline is not None else None


def telemetry_key(run: ResolvedRun) -> tuple[Any, ...]:
    """What, when it changes at a reload, needs a new `Telemetry`."""
    return (run.http_addr, run.unhealthy_after)


class Telemetry:
    """Metrics, health and the HTTP server (only built with `http_addr` set)."""

    def __init__(self, run: ResolvedRun, running: LiveRun) -> None:
        # Imported here: prometheus-client costs ~3 MiB of RSS, for nothing without --http-addr.
        from logsidecar.service.http_endpoint import TelemetryServer
        from logsidecar.service.metrics_registry import LiveSources, Metrics

        self.key = telemetry_key(run)
        live = LiveSources(
            file_stats=running.file_stats,
            oldest_undelivered_age_s=running.oldest_undelivered_age_s,
            queue_depth=running.queue_depth,
            input_patterns=running.input_patterns,
        )
        self.health = HealthMonitor(
            policy=HealthPolicy(unhealthy_after_s=run.unhealthy_after),
            bytes_behind=live.total_bytes_behind,
            files_followed=live.files_watched,
            waiting=running.waiting_patterns,
        )
        self.metrics = Metrics(live=live, health=self.health)
        self._unsubscribe: list[Callable[[], None]] = []
        assert run.http_addr is not None
        self.server = TelemetryServer(run.http_addr, self.metrics, self.health)

    async def start(self) -> None:
        try:
            await self.server.start()
        except OSError as exc:
            raise RuntimeError(f"cannot serve /metrics on {self.server.url}: {exc.strerror or exc}") from None
        events.emit(Started(component="telemetry", url=self.server.url))
        # Subscribed after our own STARTED: health waits for the pipeline's.
        self._unsubscribe = [self.metrics.subscribe(), self.health.subscribe()]

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        await self.server.stop()
