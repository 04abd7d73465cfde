"""The access-metrics sink: HTTP server metrics derived from parsed Apache access records, sent over OTLP.

It is a `Sink` like any other, so the pipeline needs no change: it receives every batch and "delivers"
it by adding the batch to in-memory aggregates; a background thread exports those aggregates every
`export_interval_s` with the OpenTelemetry SDK's OTLP metric exporter (gRPC or HTTP/protobuf, the
same resolved endpoint, headers, TLS and compression as the logs; see `build_access_metrics_sink`).

Metrics (cumulative temporality, start time = when the sink was created):

    http.server.request.duration   Histogram, unit "s", the semantic-convention metric; explicit
                                   bucket boundaries [0.005 ... 10] as the convention advises.
                                   Recorded only for records that carry a duration (%D / %T in the
                                   LogFormat).
    apache.http.server.requests    Counter (monotonic Sum), unit "{request}", one per access record.

Why this name for the counter: the semantic conventions define no HTTP server request counter (the
request count is normally read from the duration histogram's count, which we cannot rely on: many
LogFormats have no %D). Their naming rules (docs/general/naming.md) say a counter of countable
things with a `{unit}` is pluralised (`system.network.packets`; `.count` is reserved for
UpDownCounters) and that a name the conventions do not define should not be put in one of their
namespaces (it may clash later). So: pluralised, and under `apache.`, where this project keeps
everything the conventions lack. `STATUS_CLASS` follows the same rule. Both are constants below.

Data point attributes:
    http.request.method               known methods as logged (case-sensitive: GET, POST ...,
                                      per the convention's list); anything else, and a record with
                                      no method (a 408 with no request line), is "_OTHER"
    http.response.status_code         int, when the line has a status
    apache.http.response.status_class "1xx" ... "5xx", when the status is in 100..599
    http.route                        the first `route_depth` segments of url.path ("/api",
                                      "/static"; "/" for the root). Apache does not know the
                                      application's route templates, so a path prefix is the
                                      low-cardinality stand-in. Absolute-form targets
                                      (proxy requests) use their path; other targets ("*",
                                      garbage) are "_OTHER"; no path, no attribute.
    server.address                    when the record has one (%v / %V)

Cardinality guard: at most `max_routes` distinct route values (default 100) and
`max_server_addresses` distinct server.address values (default 50: with UseCanonicalName Off, %V is
the client's Host header, which anyone can vary). The first values seen are kept; every later new
value is reported as "_OTHER" for the life of the process. The series count is therefore bounded
by methods x statuses x routes x servers.

Which records count: an access record is one without `logsidecar.parse_error` that has at least one
of http.request.method, http.response.status_code or url.path. Error-log records, unparsable lines
and raw/unrelated JSON records are ignored.

Why not the SDK's MeterProvider, instruments and PeriodicExportingMetricReader (measured on this
project's 2-core machine with opentelemetry-sdk 1.45: Histogram.record ~10-25 us and Counter.add
~10 us per call, because every call validates and sorts its attributes; the whole "counter.add once
per key per batch, histogram.record per value" design came to 34-51 us per record against 2-4 us
for this module, same records, same machine): one record() per request would cost more than parsing
the line, and the pipeline targets > 200k lines/s; the Python SDK has no MetricProducer to feed
pre-aggregated histograms in. So each batch is aggregated in plain dicts keyed by the raw attribute
tuple (a few dict operations per record; the route prefix comes from a bounded per-path cache),
then folded into cumulative per-series state once per distinct key: the key's durations are sorted
(C) and each bucket count is one `bisect` over them. The export side stays the SDK's: its public
data model (`MetricsData`, `HistogramDataPoint`, ...) and `OTLPMetricExporter` (encoding, retries,
TLS, compression); a daemon thread does what PeriodicExportingMetricReader would (export every
`export_interval_s`). The exporter's own log lines are taken into our events (`_ExporterLogCapture`).

Delivery semantics: `send` never fails and never blocks on the network, so metrics never hold back
the logs' acknowledgements. A failed export loses nothing for good: the next export carries the
cumulative totals. Lines replayed after a restart are counted again (the same at-least-once as the
logs), and counts restart from zero with a new start time, as cumulative counters do.
A failed export that held back new data emits SINK_RETRY (reason says the totals go with the next
export); the first success after that emits SINK_RECOVERED. A failed re-send of totals the backend
already has emits nothing: like a log sink with nothing to send, a quiet server must not turn a
metrics backend outage into an unhealthy sidecar. (While batches flow, the pipeline's per-send
delivery note clears this sink's failing state anyway: metrics never hold the logs back.)
`close()` stops the timer, exports once more and shuts the exporter down (bounded by about twice
the export timeout when the collector is down: a timer export in progress, then the final one).

Metrics are recorded at processing time, not at the log line's time: a backlog read after a restart
lands in the current interval.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from logsidecar import __version__, events
from logsidecar.events import Event
from logsidecar.record import PARSE_ERROR, LogRecord
from logsidecar.sinks.base import Sink
from logsidecar.sinks.otlp import Compression, OtlpProtocol, OtlpSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricsData

__all__ = [
    "AccessMetricsSink",
    "build_access_metrics_sink",
    "resolve_metrics_settings",
    "DURATION_METRIC",
    "REQUESTS_METRIC",
    "DURATION_BUCKETS",
    "STATUS_CLASS",
    "OTHER",
]

DURATION_METRIC = "http.server.request.duration"
REQUESTS_METRIC = "apache.http.server.requests"
# The semantic convention's advised boundaries for http.server.request.duration, in seconds.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip

METHOD = "http.request.method"
STATUS = "http.response.status_code"
STATUS_CLASS = "apache.http.response.status_class"
ROUTE = "http.route"
SERVER_ADDRESS = "server.address"
URL_PATH = "url.path"
DURATION = "http.server.request.duration"
# The semantic conventions' sentinel for "not one of the known values"; reused for routes and servers.
OTHER = "_OTHER"

# The convention's known methods (HttpRequestMethodValues, without _OTHER itself).
KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})
_STATUS_CLASSES = {hundreds: f"{hundreds}xx" for hundreds in range(1, 6)}

DEFAULT_ROUTE_DEPTH = 1
DEFAULT_EXPORT_INTERVAL_S = 10.0
DEFAULT_MAX_ROUTES = 100
DEFAULT_MAX_SERVER_ADDRESSES = 50
_ROUTE_CACHE_LIMIT = 65536
_INF = float("inf")

# (id of the record's resource dict within one batch, method, status, route prefix, server address),
# values as the record has them; normalised and capped once per distinct key in `_merge`.
_RawKey = tuple[Any, Any, Any, Any, Any]
SeriesKey = tuple[tuple[tuple[str, Any], ...], str, int | None, str | None, str | None]


def normalize_method(method: Any) -> str:
    """The convention's rule: a known method as is, anything else (or none) is "_OTHER"."""
    return method if method in KNOWN_METHODS else OTHER


def status_class(status: Any) -> str | None:
    """The class ("2xx" for 200 ...); None for a missing or out-of-range status."""
    if type(status) is not int:
        return None
    return _STATUS_CLASSES.get(status // 100)


def route_prefix(path: str, depth: int) -> str:
    """The first `depth` non-empty segments of an origin-form path ("/api/x/1", 1 → "/api"); "/" when
    the path has none. Absolute-form targets ("http://host/api/x") use their path; anything that is
    not a path ("*", garbage) is "_OTHER"."""
    if not path.startswith("/"):
        if "://" not in path:
            return OTHER
        path = urlsplit(path).path or "/"
    segments = [segment for segment in path.split("/") if segment][:depth]  # "//a//b" → a, b
    return "/" + "/".join(segments)


class ValueCap:
    """Admits the first `limit` distinct values; every later new value becomes "_OTHER"."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the cap must admit at least one value")
        self.limit = limit
        self.admitted: set[str] = set()
        self.overflowed = 0  # how many times a value was replaced by _OTHER (in distinct keys)

    def admit(self, value: str) -> str:
        admitted = self.admitted
        if value in admitted or value == OTHER:
            return value
        if len(admitted) < self.limit:
            admitted.add(value)
            return value
        self.overflowed += 1
        return OTHER


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


@dataclass(slots=True)
class _HistogramState:
    count: int = 0
    total: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))


@dataclass(slots=True)
class AccessMetricsStats:
    records_counted: int = 0
    durations_recorded: int = 0
    exports: int = 0
    failed_exports: int = 0


class AccessMetricsSink(Sink):
    """See the module docstring. `settings` is the metrics-resolved OTLP configuration (endpoint is
    the metrics endpoint; see `resolve_metrics_settings`). `exporter` replaces the OTLP exporter built
    from `settings` (any opentelemetry-sdk `MetricExporter`); with neither, nothing is exported and
    `collect()` is the only way out (unit tests)."""

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
        if route_depth < 1:
            raise ValueError("route_depth must be at least 1")
        if export_interval_s <= 0:
            raise ValueError("export_interval_s must be positive")
        self.settings = settings
        self.route_depth = route_depth
        self.export_interval_s = export_interval_s
        self.export_timeout_s = settings.timeout_s if settings is not None else 10.0
        self.routes = ValueCap(max_routes)
        self.server_addresses = ValueCap(max_server_addresses)
        if resource is None:
            resource = settings.resource if settings is not None else {}
        self.base_resource: dict[str, Any] = dict(resource)
        self.stats = AccessMetricsStats()
        self._clock_ns = clock_ns
        self._start_time_ns = clock_ns()
        self._lock = threading.Lock()  # send() (event loop) vs collect() (export thread)
        self._requests: dict[SeriesKey, int] = {}
        self._durations: dict[SeriesKey, _HistogramState] = {}
        self._route_cache: dict[str, str] = {}
        self._frozen_resources: dict[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]] = {}
        self._exporter: MetricExporter | None = (
            exporter
            if exporter is not None
            else (_build_exporter(settings) if settings is not None else None)
        )
        if self._exporter is not None:
            _EXPORTER_LOGS.install()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._export_lock = threading.Lock()  # one export at a time (timer vs close)
        self._failing = False
        self._closed = False
        self._recorded_batches = 0  # batches merged so far (under _lock)
        self._exported_batches = 0  # of those, how many the last successful export included

    # -- Sink -------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._start_exporting()

    async def send(self, records: Sequence[LogRecord]) -> None:
        if self._thread is None and not self._closed:
            self._start_exporting()
        self.record(records)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        await asyncio.to_thread(self._shutdown)

    # -- recording (the hot path) -----------------------------------------------------------------

    def record(self, records: Sequence[LogRecord]) -> None:
        """Add a batch to the aggregates. Synchronous and cheap: per record, a few dict lookups (the
        route prefix comes from a per-path cache); the rest once per distinct (resource, method,
        status, route, server) in the batch."""
        counts: dict[_RawKey, int] = {}
        durations: dict[_RawKey, list[float]] = {}
        resources: dict[int, Mapping[str, Any]] = {}
        counts_get = counts.get
        durations_get = durations.get
        route_cache = self._route_cache
        route_of = route_cache.get
        for record in records:
            attributes = record.attributes
            if PARSE_ERROR in attributes:
                continue
            method = attributes.get(METHOD)
            status = attributes.get(STATUS)
            path = attributes.get(URL_PATH)
            resource = record.resource
            resource_id = id(resource)  # records of a batch share one dict; content frozen in _merge
            try:
                if path is not None:
                    route = route_of(path)
                    if route is None:
                        route = self._new_route(path)
                elif method is None and status is None:
                    continue  # error-log, raw or unrelated records
                else:
                    route = None
                key = (resource_id, method, status, route, attributes.get(SERVER_ADDRESS))
                counts[key] = counts_get(key, 0) + 1
            except TypeError:
                # An unhashable value (a list from a JSON line): no try cost on the normal path.
                key = self._sanitized_key(resource_id, attributes)
                if key[1] is None and key[2] is None and key[3] is None:
                    continue
                counts[key] = counts_get(key, 0) + 1
            if resource_id not in resources:
                resources[resource_id] = resource
            duration = attributes.get(DURATION)
            if duration is not None:
                values = durations_get(key)
                if values is None:
                    durations[key] = [duration]
                else:
                    values.append(duration)
        if counts:
            self._merge(counts, durations, resources)

    def _sanitized_key(self, resource_id: int, attributes: Mapping[str, Any]) -> _RawKey:
        """The raw key with every value that is not of its expected type left out."""
        method, status, path, server = (attributes.get(k) for k in (METHOD, STATUS, URL_PATH, SERVER_ADDRESS))
        route = self._new_route(path) if isinstance(path, str) else None
        return (
            resource_id,
            method if isinstance(method, str) else None,
            status if type(status) is int else None,
            route,
            server if isinstance(server, str) else None,
        )

    def _new_route(self, path: Any) -> str | None:
        if not isinstance(path, str):
            return None
        if len(self._route_cache) >= _ROUTE_CACHE_LIMIT:
            self._route_cache.clear()  # bounded: paths vary without limit
        route = self._route_cache[path] = route_prefix(path, self.route_depth)
        return route

    def _merge(
        self,
        counts: dict[_RawKey, int],
        durations: dict[_RawKey, list[float]],
        resources: dict[int, Mapping[str, Any]],
    ) -> None:
        frozen_by_id = {rid: self._freeze_resource(resource) for rid, resource in resources.items()}
        series_of: dict[_RawKey, SeriesKey] = {raw: self._series_key(raw, frozen_by_id) for raw in counts}
        bounds = DURATION_BUCKETS
        with self._lock:
            requests = self._requests
            for raw, count in counts.items():
                series = series_of[raw]
                requests[series] = requests.get(series, 0) + count
                self.stats.records_counted += count
            states = self._durations
            for raw, values in durations.items():
                try:
                    total = sum(values)
                except TypeError:  # a string or list from a JSON line: keep the numbers only
                    values = [v for v in values if type(v) is float or type(v) is int]
                    total = sum(values)
                if total != total or total in (_INF, -_INF):
                    # NaN or infinities: leave them out (they would poison the sum and the order)
                    values = [v for v in values if v == v and v not in (_INF, -_INF)]
                    total = sum(values)
                if not values:
                    continue
                values.sort()
                n = len(values)
                series = series_of[raw]
                state = states.get(series)
                if state is None:
                    state = states[series] = _HistogramState()
                state.count += n
                state.total += total
                state.minimum = min(state.minimum, values[0])
                state.maximum = max(state.maximum, values[-1])
                # Buckets are (previous bound, bound]: on sorted values, the count up to each bound
                # is one bisect, so the cost is the sort (C) plus 14 bisects per key.
                bucket_counts = state.bucket_counts
                below = 0
                for index, bound in enumerate(bounds):
                    upto = bisect_right(values, bound, below)
                    bucket_counts[index] += upto - below
                    below = upto
                bucket_counts[-1] += n - below
                self.stats.durations_recorded += n
            self._recorded_batches += 1

    def _series_key(self, raw: _RawKey, frozen_by_id: Mapping[int, tuple[tuple[str, Any], ...]]) -> SeriesKey:
        resource_id, method, status, route, server = raw
        return (
            frozen_by_id[resource_id],
            normalize_method(method),
            status if type(status) is int else None,
            self.routes.admit(route) if route is not None else None,
            self.server_addresses.admit(server) if isinstance(server, str) else None,
        )

    def _freeze_resource(self, resource: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """The resource the logs are sent with (base overlaid by the record's own), hashable."""
        merged = {**self.base_resource, **resource} if resource else self.base_resource
        frozen = tuple(sorted((str(k), _freeze(v)) for k, v in merged.items() if v is not None))
        # Intern, so the cumulative state holds one tuple per distinct resource.
        return self._frozen_resources.setdefault(frozen, frozen)

    # -- collecting and exporting -----------------------------------------------------------------

    def collect(self) -> MetricsData | None:
        """The cumulative totals as an opentelemetry-sdk `MetricsData` (None before any record)."""
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
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        now = self._clock_ns()
        start = self._start_time_ns
        with self._lock:
            requests = dict(self._requests)
            histograms = {
                key: (s.count, s.total, s.minimum, s.maximum, tuple(s.bucket_counts))
                for key, s in self._durations.items()
            }
        if not requests:
            return None
        by_resource: dict[tuple[tuple[str, Any], ...], tuple[list[Any], list[Any]]] = {}
        for key, value in requests.items():
            point = NumberDataPoint(
                attributes=_point_attributes(key), start_time_unix_nano=start, time_unix_nano=now, value=value
            )
            by_resource.setdefault(key[0], ([], []))[0].append(point)
        for key, (count, total, minimum, maximum, bucket_counts) in histograms.items():
            histogram_point = HistogramDataPoint(
                attributes=_point_attributes(key),
                start_time_unix_nano=start,
                time_unix_nano=now,
                count=count,
                sum=total,
                bucket_counts=bucket_counts,
                explicit_bounds=DURATION_BUCKETS,
                min=minimum,
                max=maximum,
            )
            by_resource.setdefault(key[0], ([], []))[1].append(histogram_point)
        scope = InstrumentationScope("logsidecar.access_metrics", __version__)
        cumulative = AggregationTemporality.CUMULATIVE
        resource_metrics = []
        for frozen_resource, (request_points, duration_points) in by_resource.items():
            metrics = [
                Metric(
                    name=REQUESTS_METRIC,
                    description="HTTP requests logged by the server (one per access log record).",
                    unit="{request}",
                    data=Sum(
                        data_points=request_points, aggregation_temporality=cumulative, is_monotonic=True
                    ),
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
                    resource=Resource(dict(frozen_resource)),
                    scope_metrics=[ScopeMetrics(scope=scope, metrics=metrics, schema_url="")],
                    schema_url="",
                )
            )
        return MetricsData(resource_metrics=resource_metrics)

    def export_now(self) -> bool:
        """Collect and export once (blocking); True when exported or nothing to export."""
        exporter = self._exporter
        if exporter is None:
            return True
        with self._export_lock:
            with self._lock:
                version = self._recorded_batches  # read first: the data holds at least this much
            data = self.collect()
            if data is None:
                return True
            from opentelemetry.sdk.metrics.export import MetricExportResult

            with _EXPORTER_LOGS.capturing() as exporter_said:
                try:
                    result = exporter.export(data, timeout_millis=self.export_timeout_s * 1000)
                    ok = result is MetricExportResult.SUCCESS
                    detail = "" if ok else " / ".join(exporter_said[-2:]) or "the exporter reported failure"
                except Exception as error:  # noqa: BLE001 - an export failure must not kill the timer
                    ok, detail = False, f"{type(error).__name__}: {error}"
            self._note_outcome(ok, detail, version)
            return ok

    def _note_outcome(self, ok: bool, detail: str, version: int) -> None:
        endpoint = self.settings.endpoint if self.settings is not None else ""
        if ok:
            self.stats.exports += 1
            self._exported_batches = version
            if self._failing:
                self._failing = False
                events.emit(Event.SINK_RECOVERED, sink=self.name, endpoint=endpoint)
            return
        self.stats.failed_exports += 1
        if version == self._exported_batches:
            # Only totals the backend already has were re-sent: nothing is held back, so, like a log
            # sink with nothing to send, this is not reported as failing (a quiet server with the
            # metrics backend down must not make the sidecar unhealthy).
            return
        self._failing = True
        events.emit(
            Event.SINK_RETRY,
            sink=self.name,
            reason="metrics export failed; the cumulative totals go with the next export",
            detail=detail,
            attempt=self.stats.failed_exports,
            retry_in_s=self.export_interval_s,
            endpoint=endpoint,
        )

    def _start_exporting(self) -> None:
        if self._thread is not None or self._exporter is None:
            return
        self._thread = threading.Thread(target=self._run_timer, name="access-metrics-export", daemon=True)
        self._thread.start()

    def _run_timer(self) -> None:
        while not self._stop.wait(self.export_interval_s):
            self.export_now()

    def _shutdown(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=self.export_timeout_s + 1.0)
        self.export_now()  # the final flush
        if self._exporter is not None:
            try:
                self._exporter.shutdown(timeout_millis=self.export_timeout_s * 1000)
            except Exception:  # noqa: BLE001 - closing must not fail the shutdown of the pipeline
                pass


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


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)


# --- configuration: the logs' OTLP options, resolved for the metrics signal ---------------------------

_LOGS_PREFIX = "OTEL_EXPORTER_OTLP_LOGS_"
_METRICS_PREFIX = "OTEL_EXPORTER_OTLP_METRICS_"


def resolve_metrics_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, hostname: str | None = None
) -> OtlpSettings:
    """The same resolution as the logs (`cli.otlp_options.resolve_otlp_settings`: flags > OTEL_* env >
    defaults, the same resource), for the metrics signal: OTEL_EXPORTER_OTLP_METRICS_* variables take
    the place of the LOGS_* ones, and for HTTP the URL path is /v1/metrics. The endpoint:
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT as is; otherwise the logs endpoint with a trailing /v1/logs
    replaced by /v1/metrics (a flag or base URL without a path gets /v1/metrics); a custom path
    from --otlp-endpoint is kept as is."""
    import os

    from logsidecar.cli.otlp_options import resolve_otlp_settings

    env = os.environ if environ is None else environ
    metrics_env = {k: v for k, v in env.items() if not k.startswith(_LOGS_PREFIX)}
    for key, value in env.items():
        if key.startswith(_METRICS_PREFIX):
            metrics_env[_LOGS_PREFIX + key[len(_METRICS_PREFIX) :]] = value
    settings = resolve_otlp_settings(flags, metrics_env, hostname=hostname)
    endpoint = settings.endpoint
    own_endpoint = env.get(_METRICS_PREFIX + "ENDPOINT", "").strip()
    if settings.protocol is OtlpProtocol.HTTP_PROTOBUF and not own_endpoint and endpoint.endswith("/v1/logs"):
        endpoint = endpoint[: -len("/v1/logs")] + "/v1/metrics"
    return _replace_endpoint(settings, endpoint)


def _replace_endpoint(settings: OtlpSettings, endpoint: str) -> OtlpSettings:
    import dataclasses

    return dataclasses.replace(settings, endpoint=endpoint)


def build_access_metrics_sink(
    *,
    route_depth: int = DEFAULT_ROUTE_DEPTH,
    export_interval_s: float = DEFAULT_EXPORT_INTERVAL_S,
    max_routes: int = DEFAULT_MAX_ROUTES,
    max_server_addresses: int = DEFAULT_MAX_SERVER_ADDRESSES,
    **otlp_kwargs: Any,
) -> AccessMetricsSink:
    """Build the sink from the same keyword arguments as `build_otlp_sink` (the `--otlp-*` click
    parameters; unknown keys are ignored). Raises click.UsageError for an invalid combination."""
    return AccessMetricsSink(
        resolve_metrics_settings(otlp_kwargs),
        route_depth=route_depth,
        export_interval_s=export_interval_s,
        max_routes=max_routes,
        max_server_addresses=max_server_addresses,
    )


def _build_exporter(settings: OtlpSettings) -> MetricExporter:
    """The SDK's OTLP metric exporter for `settings` (gRPC or HTTP/protobuf)."""
    if settings.protocol is OtlpProtocol.GRPC:
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        from logsidecar.sinks.otlp import _grpc_target
        from logsidecar.sinks.otlp_connection import grpc_credentials

        target, secure = _grpc_target(settings)
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
            # collector restart the next exports would fail for minutes.
            channel_options=(
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
