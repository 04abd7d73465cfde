"""Self-metrics (Prometheus): `Metrics`, its registry, and the live gauges read at scrape time.

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

Per-path series are bounded, so that /metrics stays small and cheap with thousands of files: at most
`max_path_series` paths (MAX_PATH_SERIES by default) have series of their own (`lines_read`,
`bytes_read`: the first paths seen; `bytes_behind`: the paths furthest behind); the others are summed
under `path="(other)"`. A path's series is removed when the tailer releases its last file there
(FILE_DRAINED), which frees its place: a sidecar that saw 9,000 short-lived files keeps none of them.

Served by `service.http_endpoint.TelemetryServer`; wired by `service.telemetry.Telemetry`.
Retries: counted from the SINK_RETRY event. `observe_retry(sink)` does the same for code that does not
emit the event; use one or the other for a given sink, never both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from logsidecar import __version__, events
from logsidecar.events import Event
from logsidecar.health import HealthMonitor

DEFAULT_HTTP_ADDR = "127.0.0.1:9464"

# `*_created` series double the scrape size and no dashboard of ours uses them (process-wide switch).
disable_created_metrics()

# Tailer states of a file that was rotated away or deleted and is held open until drained.
HELD_STATES = frozenset({"rotated", "draining", "deleted", "lost"})
# Export latency buckets: sub-millisecond stdout writes up to minute-long OTLP retries.
# Paths with series of their own; the rest are summed under OTHER_PATHS (see the module docstring).
MAX_PATH_SERIES = 100
OTHER_PATHS = "(other)"
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _no_files() -> Iterable[Any]:
    return ()


def _no_age() -> float | None:
    return None


def _no_queue() -> int:
    return 0


def _field(item: Any, name: str, default: Any = None) -> Any:
    """Tailer stats may be dataclasses or dicts; read either."""
    if type(item) is dict:  # the tailer's own (an ABC isinstance costs more, 10,000 files a scrape)
        return item.get(name, default)
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
    def __init__(
        self,
        live: LiveSources | None = None,
        health: HealthMonitor | None = None,
        max_path_series: int = MAX_PATH_SERIES,
    ) -> None:
        self.live = live or LiveSources()
        self.max_path_series = max_path_series
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
        self.file_errors = Counter(
            "logsidecar_file_errors_total",
            "Paths that could not be read (permission denied, not a regular file, directory gone ...), "
            "once per path and kind until the path recovers.",
            ["kind"],
            registry=r,
        )
        # The descriptor budget (tail/fd_budget.py): idle files closed above it and reopened when they
        # change; one that was rotated and removed while closed lost its lines.
        self.fd_budget_closes = Counter(
            "logsidecar_files_closed_idle_total",
            "Idle files closed to stay within the fd budget.",
            registry=r,
        )
        self.fd_budget_reopens = Counter(
            "logsidecar_files_reopened_total",
            "Files closed by the fd budget reopened by identity.",
            registry=r,
        )
        self.files_lost_while_closed = Counter(
            "logsidecar_files_lost_while_closed_total",
            "Files closed by the fd budget that were rotated and removed before they could be reopened.",
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
        # path -> its (lines_read, bytes_read) children, own ones only; over the cap: `_other_paths`.
        self._per_path: dict[str, tuple[Any, Any]] = {}
        self._other_paths: tuple[Any, Any] | None = None
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
        elif event is Event.FILE_CLOSED_IDLE:
            self.fd_budget_closes.inc()
        elif event is Event.FILE_REOPENED:
            self.fd_budget_reopens.inc()
        elif event is Event.FILE_LOST_WHILE_CLOSED:
            self.files_lost_while_closed.inc()
        elif event is Event.FILE_DRAINED:
            self.release_path(str(fields.get("path", "")))
        elif event is Event.FILE_REFUSED:
            self.files_refused.labels(reason=str(fields.get("reason", "unknown"))).inc()
        elif event is Event.FILE_ERROR:
            self.file_errors.labels(kind=str(fields.get("kind", "unknown"))).inc()
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
            per_path = self._path_children(path)
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

    def _path_children(self, path: str) -> tuple[Any, Any]:
        if len(self._per_path) < self.max_path_series:
            children = self._per_path[path] = (
                self.lines_read.labels(path=path),
                self.bytes_read.labels(path=path),
            )
            return children
        if self._other_paths is None:
            self._other_paths = (
                self.lines_read.labels(path=OTHER_PATHS),
                self.bytes_read.labels(path=OTHER_PATHS),
            )
        return self._other_paths

    def release_path(self, path: str) -> None:
        """The tailer released a file at `path`: unless another file is still followed there, its
        series go (a file later found at that path starts them again from zero, a counter reset)."""
        if path not in self._per_path:
            return
        stats = _safely(lambda: _file_items(self.live.file_stats()), None)
        if stats is None or any(str(_field(s, "path", "")) == path for s in stats):
            return
        del self._per_path[path]
        self.lines_read.remove(path)
        self.bytes_read.remove(path)

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
        held = frozen.rotated_files_held()
        yield _gauge("logsidecar_files_watched", "Files followed at their path.", {(): len(stats) - held})
        yield _gauge(
            "logsidecar_rotated_files_held",
            "Rotated or deleted files kept open until read to their end.",
            {(): held},
        )
        yield _gauge(
            "logsidecar_bytes_behind",
            "Bytes written to a file but not yet delivered (size - committed offset).",
            {(("path", p),): v for p, v in _capped(frozen.bytes_behind(), self._metrics.max_path_series)},
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


def _capped(per_path: dict[str, int], cap: int) -> list[tuple[str, int]]:
    """The `cap` paths furthest behind, by path, then the others summed under OTHER_PATHS."""
    if len(per_path) <= cap:
        return sorted(per_path.items())
    ranked = sorted(per_path.items(), key=lambda pv: pv[1], reverse=True)
    return [*sorted(ranked[:cap]), (OTHER_PATHS, sum(v for _, v in ranked[cap:]))]


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
