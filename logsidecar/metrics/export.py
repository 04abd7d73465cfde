"""Getting the access metrics out: the totals as the OpenTelemetry SDK's `MetricsData`, the SDK's
OTLP metric exporter for resolved OTLP settings, and the thread that exports every interval.

The export side is the SDK's public data model and `OTLPMetricExporter` (encoding, retries, TLS,
compression); `PeriodicExport` does what the SDK's PeriodicExportingMetricReader would (the SDK's
instruments cost far more per record than the aggregation: docs/metrics.md).

Invariants:
- Cumulative temporality: every export carries the totals since the start, so a failed export loses
  nothing for good, the next one carries it. One export at a time (timer or final flush).
- An export never raises into its caller, and nothing here runs on the event loop.
- SINK_RETRY is emitted only when a failed export held back batches the backend has not seen; the
  first success after that emits SINK_RECOVERED. A failed re-send of totals the backend already has
  emits nothing (a quiet server must not turn a metrics outage into an unhealthy sidecar).
- The exporter's own log lines, while one of our exports runs, become the SINK_RETRY `detail`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from logsidecar import __version__, events
from logsidecar.events import SinkRecovered, SinkRetry
from logsidecar.metrics.aggregate import (
    DURATION_BUCKETS,
    DURATION_METRIC,
    METHOD,
    REQUESTS_METRIC,
    ROUTE,
    SERVER_ADDRESS,
    STATUS,
    STATUS_CLASS,
    Resource,
    SeriesKey,
    Totals,
    status_class,
)
from logsidecar.sinks.otlp_settings import Compression, OtlpProtocol, OtlpSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricsData

SCOPE_NAME = "logsidecar.access_metrics"


def metrics_data(totals: Totals, start_time_ns: int, now_ns: int) -> MetricsData:
    """`totals` as an opentelemetry-sdk `MetricsData`: per resource, the requests counter (a
    monotonic cumulative Sum) and, when any record had a duration, the duration histogram."""
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Histogram,
        HistogramDataPoint,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
        Sum,
    )
    from opentelemetry.sdk.resources import Resource as SdkResource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    by_resource: dict[Resource, tuple[list[Any], list[Any]]] = {}
    for key, value in totals.requests.items():
        point = NumberDataPoint(
            attributes=_point_attributes(key),
            start_time_unix_nano=start_time_ns,
            time_unix_nano=now_ns,
            value=value,
        )
        by_resource.setdefault(key[0], ([], []))[0].append(point)
    for key, histogram in totals.durations.items():
        histogram_point = HistogramDataPoint(
            attributes=_point_attributes(key),
            start_time_unix_nano=start_time_ns,
            time_unix_nano=now_ns,
            count=histogram.count,
            sum=histogram.total,
            bucket_counts=histogram.bucket_counts,
            explicit_bounds=DURATION_BUCKETS,
            min=histogram.minimum,
            max=histogram.maximum,
        )
        by_resource.setdefault(key[0], ([], []))[1].append(histogram_point)
    scope = InstrumentationScope(SCOPE_NAME, __version__)
    cumulative = AggregationTemporality.CUMULATIVE
    resource_metrics = []
    for frozen_resource, (request_points, duration_points) in by_resource.items():
        metrics = [
            Metric(
                name=REQUESTS_METRIC,
                description="HTTP requests logged by the server (one per access log record).",
                unit="{request}",
                data=Sum(data_points=request_points, aggregation_temporality=cumulative, is_monotonic=True),
            )
        ]
        if duration_points:
            metrics.append(
                Metric(
                    name=DURATION_METRIC,
                    description="Duration of HTTP server requests.",
                    unit="s",
                    data=Histogram(data_points=duration_points, aggregation_temporality=cumulative),
                )
            )
        resource_metrics.append(
            ResourceMetrics(
                resource=SdkResource(dict(frozen_resource)),
                scope_metrics=[ScopeMetrics(scope=scope, metrics=metrics, schema_url="")],
                schema_url="",
            )
        )
    return MetricsData(resource_metrics=resource_metrics)


def _point_attributes(key: SeriesKey) -> dict[str, Any]:
    _resource, method, status, route, server = key
    attributes: dict[str, Any] = {METHOD: method}
    if status is not None:
        attributes[STATUS] = status
        klass = status_class(status)
        if klass is not None:
            attributes[STATUS_CLASS] = klass
    if route is not None:
        attributes[ROUTE] = route
    if server is not None:
        attributes[SERVER_ADDRESS] = server
    return attributes


class PeriodicExport:
    """Exports `collect()` with `exporter` every `interval_s` on a daemon thread, and once more on
    `stop()`. `collect` returns how many batches the data holds and the data (None: nothing yet);
    `sink` and `endpoint` name the source of the events."""

    def __init__(
        self,
        exporter: MetricExporter,
        collect: Callable[[], tuple[int, MetricsData | None]],
        *,
        interval_s: float,
        timeout_s: float,
        sink: str,
        endpoint: str,
    ) -> None:
        self.exporter = exporter
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.exports = 0
        self.failed_exports = 0
        self._collect = collect
        self._sink = sink
        self._endpoint = endpoint
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one export at a time (timer vs stop)
        self._failing = False
        self._exported_batches = 0  # how many batches the last successful export included
        _EXPORTER_LOGS.install()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="access-metrics-export", daemon=True)
            self._thread.start()

    def export_now(self) -> bool:
        """Collect and export once (blocking); True when exported or nothing to export."""
        with self._lock:
            batches, data = self._collect()
            if data is None:
                return True
            from opentelemetry.sdk.metrics.export import MetricExportResult

            with _EXPORTER_LOGS.capturing() as exporter_said:
                try:
                    result = self.exporter.export(data, timeout_millis=self.timeout_s * 1000)
                    ok = result is MetricExportResult.SUCCESS
                    detail = "" if ok else " / ".join(exporter_said[-2:]) or "the exporter reported failure"
                except Exception as error:  # noqa: BLE001 - an export failure must not kill the timer
                    ok, detail = False, f"{type(error).__name__}: {error}"
            self._note_outcome(ok, detail, batches)
            return ok

    def stop(self) -> None:
        """Stop the timer, export once more and shut the exporter down (blocking: bounded by about
        twice the export timeout when the collector is down, a timer export then the final one)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1.0)
        self.export_now()  # the final flush
        try:
            self.exporter.shutdown(timeout_millis=self.timeout_s * 1000)
        except Exception:  # noqa: BLE001 - closing must not fail the shutdown of the pipeline
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.export_now()

    def _note_outcome(self, ok: bool, detail: str, batches: int) -> None:
        if ok:
            self.exports += 1
            self._exported_batches = batches
            if self._failing:
                self._failing = False
                events.emit(SinkRecovered(sink=self._sink, endpoint=self._endpoint))
            return
        self.failed_exports += 1
        if batches == self._exported_batches:
            # Only totals the backend already has were re-sent: nothing is held back, so, like a log
            # sink with nothing to send, this is not reported as failing.
            return
        self._failing = True
        events.emit(
            SinkRetry(
                sink=self._sink,
                reason="metrics export failed; the cumulative totals go with the next export",
                detail=detail,
                attempt=self.failed_exports,
                retry_in_s=self.interval_s,
                endpoint=self._endpoint,
            )
        )


class _ExporterLogCapture(logging.Filter):
    """Takes the SDK exporters' own log lines while this thread runs one of our exports: their words
    become the `detail` of our SINK_RETRY event instead of a free-form line on stderr beside the
    JSON self-log. Records logged outside our exports (any other thread, any other time) pass."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        lines: list[str] | None = getattr(self._local, "lines", None)
        if lines is None:
            return True
        try:
            lines.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a malformed log call must not break the export
            lines.append(str(record.msg))
        return False

    @contextmanager
    def capturing(self) -> Iterator[list[str]]:
        lines: list[str] = []
        self._local.lines = lines
        try:
            yield lines
        finally:
            self._local.lines = None

    def install(self) -> None:
        """Attach to every opentelemetry exporter logger that exists (call after the imports)."""
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("opentelemetry.exporter"):
                logger = logging.getLogger(name)
                if self not in logger.filters:
                    logger.addFilter(self)


_EXPORTER_LOGS = _ExporterLogCapture()


def build_exporter(settings: OtlpSettings) -> MetricExporter:
    """The SDK's OTLP metric exporter for resolved `settings` (gRPC or HTTP/protobuf; the endpoint
    is the metrics endpoint)."""
    if settings.protocol is OtlpProtocol.GRPC:
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        from logsidecar.sinks.otlp_connection import grpc_credentials, grpc_gateway_options, grpc_target

        target, secure = grpc_target(settings)
        credentials = None
        if secure:
            credentials = grpc_credentials(
                settings.ca_file, settings.client_key_file, settings.client_cert_file
            )
        return OTLPMetricExporter(
            endpoint=target,
            insecure=not secure,
            credentials=credentials,
            headers=dict(settings.headers),
            timeout=settings.timeout_s,
            # As in the OTLP log sink: grpc's reconnect backoff grows to 120 s by default, so after a
            # collector restart the next exports would fail for minutes. Toward a gateway, as the logs.
            channel_options=(
                *grpc_gateway_options(settings),
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.min_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
            ),  # type: ignore[arg-type]  # the SDK's hint says str values; grpc takes ints here
            compression=grpc.Compression.Gzip
            if settings.compression is Compression.GZIP
            else grpc.Compression.NoCompression,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

    return HttpExporter(
        endpoint=settings.endpoint,
        certificate_file=settings.ca_file,
        client_key_file=settings.client_key_file,
        client_certificate_file=settings.client_cert_file,
        headers=dict(settings.headers),
        timeout=settings.timeout_s,
        compression=HttpCompression.Gzip
        if settings.compression is Compression.GZIP
        else HttpCompression.NoCompression,
    )
