"""The access-metrics sink: the `Sink` that feeds every batch to an `AccessAggregate` and exports the
totals over OTLP in the background, so the pipeline needs no change for `--derive-metrics`.

It receives already-resolved OTLP settings for the metrics signal (endpoint, headers, TLS,
compression, resource); resolving flags and environment, and the errors a user sees, belong to the
caller (cli).

Invariants:
- `send` never fails and never blocks on the network: metrics never hold back the logs'
  acknowledgements. Recording is synchronous on the event loop; exports run on their own thread.
- Counts are cumulative from the sink's creation (the start time of every point). Lines replayed
  after a restart are counted again (the logs' at-least-once), and metrics are recorded at
  processing time, not at the line's time.
- `close()` stops the timer, exports once more and shuts the exporter down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from logsidecar.metrics.aggregate import (
    DEFAULT_MAX_ROUTES,
    DEFAULT_MAX_SERVER_ADDRESSES,
    DEFAULT_ROUTE_DEPTH,
    AccessAggregate,
    ValueCap,
)
from logsidecar.metrics.export import PeriodicExport, build_exporter, metrics_data
from logsidecar.record import LogRecord
from logsidecar.sinks.base import Sink
from logsidecar.sinks.otlp_settings import OtlpSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricsData

DEFAULT_EXPORT_INTERVAL_S = 10.0


@dataclass(frozen=True, slots=True)
class AccessMetricsStats:
    records_counted: int
    durations_recorded: int
    exports: int
    failed_exports: int


class AccessMetricsSink(Sink):
    """`settings` is the resolved OTLP configuration of the metrics signal (its endpoint is the
    metrics endpoint). `exporter` replaces the OTLP exporter built from `settings` (any
    opentelemetry-sdk `MetricExporter`); with neither, nothing is exported and `collect()` is the
    only way out. `resource` defaults to the settings' resource."""

    name = "access_metrics"

    def __init__(
        self,
        settings: OtlpSettings | None = None,
        *,
        route_depth: int = DEFAULT_ROUTE_DEPTH,
        export_interval_s: float = DEFAULT_EXPORT_INTERVAL_S,
        max_routes: int = DEFAULT_MAX_ROUTES,
        max_server_addresses: int = DEFAULT_MAX_SERVER_ADDRESSES,
        exporter: MetricExporter | None = None,
        resource: Mapping[str, Any] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if export_interval_s <= 0:
            raise ValueError("export_interval_s must be positive")
        if resource is None:
            resource = settings.resource if settings is not None else {}
        self.aggregate = AccessAggregate(
            route_depth=route_depth,
            max_routes=max_routes,
            max_server_addresses=max_server_addresses,
            resource=resource,
        )
        self.settings = settings
        self.export_interval_s = export_interval_s
        self.export_timeout_s = settings.timeout_s if settings is not None else 10.0
        self._clock_ns = clock_ns
        self._start_time_ns = clock_ns()
        if exporter is None and settings is not None:
            exporter = build_exporter(settings)
        self._exporter = exporter
        self._export = (
            PeriodicExport(
                exporter,
                self._collect_with_batches,
                interval_s=export_interval_s,
                timeout_s=self.export_timeout_s,
                sink=self.name,
                endpoint=settings.endpoint if settings is not None else "",
            )
            if exporter is not None
            else None
        )
        self._closed = False

    @property
    def route_depth(self) -> int:
        return self.aggregate.route_depth

    @property
    def routes(self) -> ValueCap:
        return self.aggregate.routes

    @property
    def server_addresses(self) -> ValueCap:
        return self.aggregate.server_addresses

    @property
    def stats(self) -> AccessMetricsStats:
        export = self._export
        return AccessMetricsStats(
            records_counted=self.aggregate.records_counted,
            durations_recorded=self.aggregate.durations_recorded,
            exports=export.exports if export is not None else 0,
            failed_exports=export.failed_exports if export is not None else 0,
        )

    # -- Sink -------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._export is not None:
            self._export.start()

    async def send(self, records: Sequence[LogRecord]) -> None:
        if self._export is not None and not self._export.started and not self._closed:
            self._export.start()
        self.aggregate.record(records)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._export is not None:
            await asyncio.to_thread(self._export.stop)

    # -- recording and collecting -----------------------------------------------------------------

    def record(self, records: Sequence[LogRecord]) -> None:
        """Add a batch to the totals (what `send` does, synchronously)."""
        self.aggregate.record(records)

    def collect(self) -> MetricsData | None:
        """The cumulative totals as an opentelemetry-sdk `MetricsData` (None before any record)."""
        return self._collect_with_batches()[1]

    def export_now(self) -> bool:
        """Collect and export once (blocking); True when exported or nothing to export."""
        return self._export.export_now() if self._export is not None else True

    def _collect_with_batches(self) -> tuple[int, MetricsData | None]:
        now = self._clock_ns()
        totals = self.aggregate.snapshot()
        if totals is None:
            return 0, None
        return totals.batches, metrics_data(totals, self._start_time_ns, now)
