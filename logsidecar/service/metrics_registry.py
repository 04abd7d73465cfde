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

Read counters and `bytes_behind` are labelled by `input`, the configured path pattern a file was
found by (`/var/log/apache2/*.log`), never by the file's own path: with dated rotation
(`access.log.20261205`, rotatelogs) every day brings a new name, and a per-path series would be left
behind for each one (unbounded cardinality), or be dropped and restarted (a counter reset that breaks
`rate()`). Per input, the series count is fixed by the configuration and the counters stay monotonic
across rotations. A path no pattern names (only possible in an embedding without a tailer) counts
under `input="(other)"`. Per-file detail is the tailer's business (`tail --dry-run`, the self-logs).

Every counter has its series from the start, at zero (`declare`): the configured inputs and sinks, and
the fixed sets of refusal reasons, stalled operations and dropped-connection reasons. A query such as
`increase(logsidecar_records_rejected_total[5m])` then answers 0, not "no data", before the first event.
Process metrics are prometheus_client's standard `process_*` collector (CPU, RSS, open fds).

Served by `service.http_endpoint.TelemetryServer`; wired by `service.telemetry.Telemetry`.
Retries: counted from the SINK_RETRY event. `observe_retry(sink)` does the same for code that does not
emit the event; use one or the other for a given sink, never both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Brings ssl in (~3.9 MiB): its exposition module needs ssl to import (unlike asyncio, see `runtime`).
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from logsidecar import __version__, events
from logsidecar.events import Event
from logsidecar.health import HEALTH_CONDITIONS, HealthMonitor
from logsidecar.tail.discovery import translate_glob
from logsidecar.tail.open_policy import Reason

DEFAULT_HTTP_ADDR = "127.0.0.1:9464"

# The `kind` of a file_error most seen (an errno name, or what failed), declared at zero so that an
# alert on increase() sees the first one; other kinds get their series when they happen.
FILE_ERROR_KINDS = (
    "EACCES",
    "ENOENT",
    "EIO",
    "ELOOP",
    "directory",
    "directory_unreadable",
    "inotify_watch_failed",
)

# `*_created` series double the scrape size and no dashboard of ours uses them (process-wide switch).
disable_created_metrics()

# Tailer states of a file that was rotated away or deleted and is held open until drained.
HELD_STATES = frozenset({"rotated", "draining", "deleted", "lost"})
# Export latency buckets: sub-millisecond stdout writes up to minute-long OTLP retries.
# The input of a path that no configured pattern names (see the module docstring).
OTHER_INPUT = "(other)"
# Paths whose input is remembered; past this the cache starts over (a lookup is one regex per pattern).
INPUT_CACHE_SIZE = 4096
# Fixed label sets, declared at zero (see `Metrics.declare`); files_refused's come from tail.open_policy.
STALLED_OPERATIONS = ("stat", "fstat", "open", "read", "scandir")
DROPPED_CONNECTION_REASONS = ("over_limit", "idle_timeout")
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _no_files() -> Iterable[Any]:
    return ()


def _no_age() -> float | None:
    return None


def _no_queue() -> int:
    return 0


def _no_patterns() -> Sequence[str]:
    return ()


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
    ("active"; "rotated" counts as held). `oldest_undelivered_age_s` returns None when nothing waits.
    `input_patterns` are the configured path patterns (absolute, as the tailer matches them), in order."""

    file_stats: Callable[[], Iterable[Any]] = _no_files
    oldest_undelivered_age_s: Callable[[], float | None] = _no_age
    queue_depth: Callable[[], int] = _no_queue
    input_patterns: Callable[[], Sequence[str]] = _no_patterns

    def _stats(self) -> list[Any]:
        return _file_items(self.file_stats())

    def files_watched(self) -> int:
        return sum(1 for s in self._stats() if str(_field(s, "state", "")) not in HELD_STATES)

    def rotated_files_held(self) -> int:
        return sum(1 for s in self._stats() if str(_field(s, "state", "")) in HELD_STATES)

    def bytes_behind(self, input_of: Callable[[str], str] | None = None) -> dict[str, int]:
        """size - committed offset, summed per path, or per input when `input_of` maps a path to it."""
        behind: dict[str, int] = {}
        for s in self._stats():
            size, committed = _field(s, "size", 0) or 0, _field(s, "committed_offset", 0) or 0
            path = str(_field(s, "path", ""))
            key = input_of(path) if input_of is not None else path
            behind[key] = behind.get(key, 0) + max(0, int(size) - int(committed))
        return behind

    def total_bytes_behind(self) -> int:
        return sum(self.bytes_behind().values())


class Metrics:
    def __init__(
        self,
        live: LiveSources | None = None,
        health: HealthMonitor | None = None,
    ) -> None:
        self.live = live or LiveSources()
        self.health = health
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.lines_read = Counter(
            "logsidecar_lines_read_total", "Lines read, by configured input pattern.", ["input"], registry=r
        )
        self.bytes_read = Counter(
            "logsidecar_bytes_read_total",
            "Bytes of lines read, by configured input pattern.",
            ["input"],
            registry=r,
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
        self.checkpoint_errors = Counter(
            "logsidecar_checkpoint_errors_total",
            "Checkpoint failures reported (a state directory that cannot be written, a corrupt database).",
            registry=r,
        )
        self.export_latency = Histogram(
            "logsidecar_export_latency_seconds",
            "Time from handing a batch to a sink to its acceptance, retries included.",
            ["sink"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        r.register(_LiveCollector(self))
        # path -> its input's (lines_read, bytes_read) children; input patterns and their regexes.
        self._per_path: dict[str, tuple[Any, Any]] = {}
        self._patterns: tuple[str, ...] = ()
        self._pattern_res: list[Any] = []
        self._per_format: dict[str, tuple[Any, Any]] = {}
        # CPU, memory and open file descriptors: a sidecar's budget (held rotated files cost fds).
        # The standard names (process_*), so the usual dashboards and alerts apply as they are.
        ProcessCollector(registry=r)
        self.declare()

    def declare(self, inputs: Sequence[str] | None = None, sinks: Sequence[str] = ()) -> None:
        """Create every counter's series at zero: those of `inputs` (the configured path patterns;
        None: those of `live.input_patterns`) and `sinks`, and the fixed label sets. Called at each
        start of a run (a reload may add inputs or sinks; the old ones keep their series)."""
        patterns = tuple(self.live.input_patterns() if inputs is None else inputs)
        if patterns != self._patterns:
            self._patterns = patterns
            self._pattern_res = [translate_glob(p) for p in patterns]
            self._per_path.clear()
        for pattern in patterns:
            self.lines_read.labels(input=pattern)
            self.bytes_read.labels(input=pattern)
        for sink in sinks:
            for counter in (self.records_delivered, self.delivery_retries, self.records_rejected):
                counter.labels(sink=sink)
            self.export_latency.labels(sink=sink)
        for reason in Reason:
            self.files_refused.labels(reason=reason.value)
        for operation in STALLED_OPERATIONS:
            self.io_stalls.labels(operation=operation)
        for kind in FILE_ERROR_KINDS:
            self.file_errors.labels(kind=kind)
        for dropped in DROPPED_CONNECTION_REASONS:
            self.http_connections_dropped.labels(reason=dropped)

    def bytes_behind_by_input(self, live: LiveSources) -> dict[str, int]:
        """Every configured input (0 when it has no file yet), plus what the files are behind."""
        behind = dict.fromkeys(self._patterns, 0)
        for label, value in live.bytes_behind(self.input_of).items():
            behind[label] = behind.get(label, 0) + value
        return behind

    def input_of(self, path: str) -> str:
        """The first configured pattern that names `path`, or OTHER_INPUT."""
        if path in self._patterns:  # a plain path, or "-" (standard input)
            return path
        for pattern, regex in zip(self._patterns, self._pattern_res, strict=True):
            if regex.match(path):
                return pattern
        return OTHER_INPUT

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
        elif event is Event.FILE_REFUSED:
            self.files_refused.labels(reason=str(fields.get("reason", "unknown"))).inc()
        elif event is Event.FILE_ERROR:
            self.file_errors.labels(kind=str(fields.get("kind", "unknown"))).inc()
        elif event is Event.CHECKPOINT_WRITTEN:
            self.checkpoint_writes.inc()
        elif event is Event.CHECKPOINT_ERROR:
            self.checkpoint_errors.inc()
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
        if len(self._per_path) >= INPUT_CACHE_SIZE:
            self._per_path.clear()
        label = self.input_of(path)
        children = self._per_path[path] = (
            self.lines_read.labels(input=label),
            self.bytes_read.labels(input=label),
        )
        return children

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
            "Bytes written but not yet delivered (size - committed offset), by configured input pattern.",
            {(("input", i),): v for i, v in sorted(self._metrics.bytes_behind_by_input(frozen).items())},
            labels=["input"],
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
            conditions = self._metrics.health.conditions()
            yield _gauge(
                "logsidecar_health_condition",
                "1 while a named problem makes /healthz fail (checkpoints: the state directory cannot "
                "be written; parse: a file's recent lines mostly fail to parse), else 0.",
                {(("condition", c),): int(c in conditions) for c in HEALTH_CONDITIONS},
                labels=["condition"],
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
