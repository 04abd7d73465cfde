"""HTTP server request totals aggregated from access records: the state behind the access metrics.

`AccessAggregate.record(batch)` adds a batch; `snapshot()` returns the cumulative totals since the
aggregate was created: a request count and a duration histogram per series, a series being
(resource, method, status, route, server address). Metric names, attributes and the reasons behind
them: docs/metrics.md.

Invariants:
- Which records count: no `logsidecar.parse_error`, and at least one of http.request.method,
  http.response.status_code or url.path. Anything else (error log, raw lines) is ignored.
- Bounded cardinality: the method is one of the convention's known methods or "_OTHER"; at most
  `max_routes` routes and `max_server_addresses` server addresses are ever admitted (the first
  seen), every later new value is "_OTHER". Series <= methods x statuses x routes x servers.
- No input breaks a batch: values of the wrong type (lists, strings from JSON lines) are left out
  of the key, NaN and infinite durations out of the histogram.
- Cost: per record a few dict operations (routes come from a bounded per-path cache); the rest
  once per distinct raw key of the batch (sorted durations, one bisect per bucket bound).
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from logsidecar.record import PARSE_ERROR, LogRecord

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
DEFAULT_MAX_ROUTES = 100
DEFAULT_MAX_SERVER_ADDRESSES = 50
_ROUTE_CACHE_LIMIT = 65536
_INF = float("inf")

Resource = tuple[tuple[str, Any], ...]
# (id of the record's resource dict within one batch, method, status, route prefix, server address),
# values as the record has them; normalised and capped once per distinct key in `_merge`.
_RawKey = tuple[Any, Any, Any, Any, Any]
SeriesKey = tuple[Resource, str, int | None, str | None, str | None]


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


@dataclass(slots=True)
class _HistogramState:
    count: int = 0
    total: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))


@dataclass(frozen=True, slots=True)
class HistogramTotals:
    """One series' durations: count, sum, min, max and the counts per `DURATION_BUCKETS` bucket
    (bucket i holds (bound[i-1], bound[i]]; the last one everything above the last bound)."""

    count: int
    total: float
    minimum: float
    maximum: float
    bucket_counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Totals:
    """The cumulative totals at one moment, and how many batches they hold (`batches`)."""

    requests: dict[SeriesKey, int]
    durations: dict[SeriesKey, HistogramTotals]
    batches: int


class AccessAggregate:
    """Cumulative request counts and duration histograms per series. `record` runs on the event loop,
    `snapshot` on the export thread: the shared state is guarded by one lock, taken once per batch.
    `resource` is the logs' resource; a record's own resource is overlaid on it."""

    def __init__(
        self,
        *,
        route_depth: int = DEFAULT_ROUTE_DEPTH,
        max_routes: int = DEFAULT_MAX_ROUTES,
        max_server_addresses: int = DEFAULT_MAX_SERVER_ADDRESSES,
        resource: Mapping[str, Any] | None = None,
    ) -> None:
        if route_depth < 1:
            raise ValueError("route_depth must be at least 1")
        self.route_depth = route_depth
        self.routes = ValueCap(max_routes)
        self.server_addresses = ValueCap(max_server_addresses)
        self.base_resource: dict[str, Any] = dict(resource or {})
        self.records_counted = 0
        self.durations_recorded = 0
        self._lock = threading.Lock()  # record() (event loop) vs snapshot() (export thread)
        self._requests: dict[SeriesKey, int] = {}
        self._durations: dict[SeriesKey, _HistogramState] = {}
        self._route_cache: dict[str, str] = {}
        self._frozen_resources: dict[Resource, Resource] = {}
        self._batches = 0  # batches merged so far (under _lock)

    def record(self, records: Sequence[LogRecord]) -> None:
        """Add a batch. Synchronous and cheap: per record, a few dict lookups (the route prefix comes
        from a per-path cache); the rest once per distinct (resource, method, status, route, server)
        in the batch."""
        counts: dict[_RawKey, int] = {}
        durations: dict[_RawKey, list[float]] = {}
        resources: dict[int, Mapping[str, Any]] = {}
        counts_get = counts.get
        durations_get = durations.get
        route_of = self._route_cache.get
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

    def snapshot(self) -> Totals | None:
        """The cumulative totals (a copy), None before the first counted record."""
        with self._lock:
            if not self._requests:
                return None
            return Totals(
                requests=dict(self._requests),
                durations={
                    key: HistogramTotals(s.count, s.total, s.minimum, s.maximum, tuple(s.bucket_counts))
                    for key, s in self._durations.items()
                },
                batches=self._batches,
            )

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
                self.records_counted += count
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
                self.durations_recorded += n
            self._batches += 1

    def _series_key(self, raw: _RawKey, frozen_by_id: Mapping[int, Resource]) -> SeriesKey:
        resource_id, method, status, route, server = raw
        return (
            frozen_by_id[resource_id],
            normalize_method(method),
            status if type(status) is int else None,
            self.routes.admit(route) if route is not None else None,
            self.server_addresses.admit(server) if isinstance(server, str) else None,
        )

    def _freeze_resource(self, resource: Mapping[str, Any]) -> Resource:
        """The resource the logs are sent with (base overlaid by the record's own), hashable."""
        merged = {**self.base_resource, **resource} if resource else self.base_resource
        frozen = tuple(sorted((str(k), _freeze(v)) for k, v in merged.items() if v is not None))
        # Intern, so the cumulative state holds one tuple per distinct resource.
        return self._frozen_resources.setdefault(frozen, frozen)


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)
