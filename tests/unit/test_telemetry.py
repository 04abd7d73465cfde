"""Self-metrics: counter values after events and observations, live gauges read at scrape time,
and the exposition text."""

from __future__ import annotations

from typing import Any

from logsidecar import events
from logsidecar.events import Event
from logsidecar.health import HealthMonitor
from logsidecar.service.metrics_registry import LiveSources, Metrics


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def tailer_stats(*files: dict[str, Any]) -> dict[str, Any]:
    """The shape Tailer.stats() returns."""
    return {"files": list(files), "counters": {}, "watcher": "poll"}


def test_events_are_counted_once_each() -> None:
    metrics = Metrics()
    unsubscribe = metrics.subscribe()
    try:
        events.emit(Event.FILE_ROTATED, path="/l/access.log", file_key="k1")
        events.emit(Event.FILE_ROTATED, path="/l/access.log", file_key="k2")
        events.emit(Event.FILE_TRUNCATED, path="/l/access.log", file_key="k3", bytes_known_lost=120)
        events.emit(Event.LINE_TRUNCATED, path="/l/access.log", offset=10)
        events.emit(Event.NUL_RUN_SKIPPED, path="/l/access.log", runs=3, bytes=4096)
        events.emit(Event.CHECKPOINT_WRITTEN, entries=2, forgotten=0)
        events.emit(Event.CHECKPOINT_WRITTEN, entries=1, forgotten=0)
        events.emit(Event.SINK_RETRY, sink="otlp", reason="unavailable", attempt=1)
        events.emit(Event.INOTIFY_OVERFLOW, overflows=1, files_added=0, rotations=0)
        events.emit(Event.INOTIFY_OVERFLOW, overflows=2, files_added=3, rotations=1)
        events.emit(Event.FILE_CLOSED_IDLE, path="/l/a.log", file_key="k4")
        events.emit(Event.FILE_CLOSED_IDLE, path="/l/b.log", file_key="k5")
        events.emit(Event.FILE_REOPENED, path="/l/a.log", file_key="k4")
        events.emit(Event.FILE_LOST_WHILE_CLOSED, path="/l/b.log", file_key="k5")
        events.emit(Event.FILE_ADDED, path="/l/error.log")  # not counted: files are live gauges
    finally:
        unsubscribe()
    events.emit(Event.FILE_ROTATED, path="/l/access.log")  # after unsubscribing: not counted
    assert value(metrics, "logsidecar_rotations_total") == 2
    assert value(metrics, "logsidecar_truncations_total") == 1
    assert value(metrics, "logsidecar_bytes_known_lost_total") == 120
    assert value(metrics, "logsidecar_lines_truncated_total") == 1
    assert value(metrics, "logsidecar_nul_runs_skipped_total") == 3
    assert value(metrics, "logsidecar_checkpoint_writes_total") == 2
    assert value(metrics, "logsidecar_delivery_retries_total", sink="otlp") == 1
    assert value(metrics, "logsidecar_inotify_overflows_total") == 3  # one rescan saw two overflows
    assert value(metrics, "logsidecar_files_closed_idle_total") == 2
    assert value(metrics, "logsidecar_files_reopened_total") == 1
    assert value(metrics, "logsidecar_files_lost_while_closed_total") == 1


def test_rejections_count_records_from_events_that_carry_the_count() -> None:
    metrics = Metrics()
    # The OTLP sink reports a rejected batch without `rejected`; the pipeline then reports it with it.
    metrics.handle_event(Event.SINK_REJECTED, {"sink": "otlp", "reason": "400", "records": 50})
    metrics.handle_event(
        Event.SINK_REJECTED, {"sink": "otlp", "reason": "400", "rejected": 50, "records": 50}
    )
    metrics.handle_event(Event.SINK_PARTIAL_SUCCESS, {"sink": "otlp", "rejected": 3, "records": 100})
    assert value(metrics, "logsidecar_records_rejected_total", sink="otlp") == 53


def test_observe_batch_counts_lines_bytes_and_parse_outcomes() -> None:
    metrics = Metrics(live=LiveSources(input_patterns=lambda: ["/l/access.log", "/l/error.log"]))
    metrics.observe_batch("/l/access.log", "combined", lines=10, bytes=1500, parsed=9, unparsed=1)
    metrics.observe_batch("/l/access.log", "combined", lines=5, bytes=500, parsed=5, unparsed=0)
    metrics.observe_batch("/l/error.log", "error", lines=2, bytes=300, parsed=1, unparsed=1)
    assert value(metrics, "logsidecar_lines_read_total", input="/l/access.log") == 15
    assert value(metrics, "logsidecar_bytes_read_total", input="/l/access.log") == 2000
    assert value(metrics, "logsidecar_lines_read_total", input="/l/error.log") == 2
    assert value(metrics, "logsidecar_records_parsed_total", format="combined") == 14
    assert value(metrics, "logsidecar_records_unparsed_total", format="combined") == 1
    assert value(metrics, "logsidecar_records_unparsed_total", format="error") == 1


def test_observe_delivery_counts_records_and_latency_and_tells_health() -> None:
    clock_now = [100.0]
    health = HealthMonitor(clock=lambda: clock_now[0])
    metrics = Metrics(health=health)
    metrics.observe_retry("otlp", "connection refused")
    assert health.failing_for() == {"otlp": 0.0}
    metrics.observe_delivery("otlp", records=100, latency_s=0.03)
    metrics.observe_delivery("otlp", records=20, latency_s=2.0)
    assert value(metrics, "logsidecar_records_delivered_total", sink="otlp") == 120
    assert value(metrics, "logsidecar_delivery_retries_total", sink="otlp") == 1
    assert value(metrics, "logsidecar_export_latency_seconds_count", sink="otlp") == 2
    assert value(metrics, "logsidecar_export_latency_seconds_sum", sink="otlp") == 2.03
    assert value(metrics, "logsidecar_export_latency_seconds_bucket", sink="otlp", le="0.05") == 1
    assert value(metrics, "logsidecar_export_latency_seconds_bucket", sink="otlp", le="2.5") == 2
    assert health.failing_for() == {}
    assert health.snapshot().sinks["otlp"].delivered_records == 120


def test_live_gauges_are_read_from_tailer_stats_at_scrape_time() -> None:
    files = [
        {"path": "/l/access.log", "file_key": "a", "size": 1000, "committed_offset": 400, "state": "active"},
        {"path": "/l/error.log", "file_key": "b", "size": 50, "committed_offset": 50, "state": "active"},
        {
            "path": "/l/access.log.1",
            "file_key": "c",
            "size": 800,
            "committed_offset": 700,
            "state": "rotated",
        },
    ]
    live = LiveSources(
        file_stats=lambda: tailer_stats(*files),
        oldest_undelivered_age_s=lambda: 2.5,
        queue_depth=lambda: 4,
        input_patterns=lambda: ["/l/access.log*", "/l/error.log"],
    )
    metrics = Metrics(live=live)
    assert value(metrics, "logsidecar_files_watched") == 2
    assert value(metrics, "logsidecar_rotated_files_held") == 1
    assert value(metrics, "logsidecar_bytes_behind", input="/l/access.log*") == 600 + 100
    assert value(metrics, "logsidecar_bytes_behind", input="/l/error.log") == 0
    assert value(metrics, "logsidecar_oldest_undelivered_age_seconds") == 2.5
    assert value(metrics, "logsidecar_queue_depth") == 4
    files.pop()  # the rotated file was drained and released
    assert value(metrics, "logsidecar_rotated_files_held") == 0
    assert value(metrics, "logsidecar_bytes_behind", input="/l/access.log*") == 600
    assert live.total_bytes_behind() == 600


def test_a_failing_live_source_does_not_break_the_scrape() -> None:
    def broken() -> Any:
        raise RuntimeError("tailer stopped")

    metrics = Metrics(
        live=LiveSources(file_stats=broken, oldest_undelivered_age_s=broken, queue_depth=broken)
    )
    metrics.observe_batch("/l/a", "raw", lines=1, bytes=1, parsed=1, unparsed=0)
    body, _ = metrics.exposition()
    assert b"logsidecar_files_watched 0.0" in body
    assert b'logsidecar_lines_read_total{input="(other)"} 1.0' in body  # no pattern names it


def test_sink_failing_seconds_is_exported_while_a_sink_fails() -> None:
    now = [10.0]
    health = HealthMonitor(clock=lambda: now[0])
    metrics = Metrics(health=health)
    health.note_failure("otlp", "refused")
    now[0] = 25.0
    assert value(metrics, "logsidecar_sink_failing_seconds", sink="otlp") == 15.0
    health.note_delivery("otlp", 1)
    assert value(metrics, "logsidecar_sink_failing_seconds", sink="otlp") is None


def test_each_metrics_instance_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe_batch("/l/a", "raw", lines=3, bytes=3, parsed=3, unparsed=0)
    assert value(first, "logsidecar_lines_read_total", input="(other)") == 3
    assert value(second, "logsidecar_lines_read_total", input="(other)") is None


def test_exposition_lists_every_documented_metric_family() -> None:
    metrics = Metrics(health=HealthMonitor())
    text = metrics.exposition()[0].decode()
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert {
        "logsidecar_lines_read_total",
        "logsidecar_bytes_read_total",
        "logsidecar_records_parsed_total",
        "logsidecar_records_unparsed_total",
        "logsidecar_records_delivered_total",
        "logsidecar_delivery_retries_total",
        "logsidecar_records_rejected_total",
        "logsidecar_lines_truncated_total",
        "logsidecar_nul_runs_skipped_total",
        "logsidecar_files_watched",
        "logsidecar_rotations_total",
        "logsidecar_truncations_total",
        "logsidecar_rotated_files_held",
        "logsidecar_bytes_behind",
        "logsidecar_oldest_undelivered_age_seconds",
        "logsidecar_checkpoint_writes_total",
        "logsidecar_inotify_overflows_total",
        "logsidecar_export_latency_seconds",
        "logsidecar_queue_depth",
        "logsidecar_build_info",
        "process_open_fds",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    } <= families
    assert not any(name.startswith("logsidecar_process_") for name in families)
    assert "_created" not in text


def test_openmetrics_is_served_when_the_scraper_asks_for_it() -> None:
    body, content_type = Metrics().exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_read_series_are_per_input_pattern_so_rotated_names_leave_none_behind() -> None:
    patterns = ["/l/access.log.*", "/l/error.log"]
    files: list[dict[str, Any]] = []
    metrics = Metrics(
        live=LiveSources(file_stats=lambda: tailer_stats(*files), input_patterns=lambda: patterns)
    )
    for day in range(1, 31):  # a month of dated names (rotatelogs): one series, counting all of them
        path = f"/l/access.log.202612{day:02d}"
        files[:] = [
            {"path": path, "file_key": str(day), "size": 100, "committed_offset": 90, "state": "active"}
        ]
        metrics.observe_batch(path, "common", lines=2, bytes=20, parsed=2, unparsed=0)
    text = metrics.exposition()[0].decode()
    read_series = [line for line in text.splitlines() if line.startswith("logsidecar_lines_read_total{")]
    assert sorted(read_series) == [
        'logsidecar_lines_read_total{input="/l/access.log.*"} 60.0',
        'logsidecar_lines_read_total{input="/l/error.log"} 0.0',
    ]
    assert value(metrics, "logsidecar_bytes_behind", input="/l/access.log.*") == 10
    assert value(metrics, "logsidecar_bytes_behind", input="/l/error.log") == 0
    assert "202612" not in text


def test_every_counter_has_its_series_at_zero_before_any_event() -> None:
    metrics = Metrics(live=LiveSources(input_patterns=lambda: ["/l/*.log"]))
    metrics.declare(sinks=["otlp", "stdout"])
    for sink in ("otlp", "stdout"):
        for name in (
            "logsidecar_records_delivered_total",
            "logsidecar_delivery_retries_total",
            "logsidecar_records_rejected_total",
            "logsidecar_export_latency_seconds_count",
        ):
            assert value(metrics, name, sink=sink) == 0, (name, sink)
    assert value(metrics, "logsidecar_lines_read_total", input="/l/*.log") == 0
    assert value(metrics, "logsidecar_files_refused_total", reason="symlink") == 0
    assert value(metrics, "logsidecar_io_stalls_total", operation="stat") == 0
    assert value(metrics, "logsidecar_http_connections_dropped_total", reason="idle_timeout") == 0
    text = metrics.exposition()[0].decode()
    lines = text.splitlines()
    counters = {line.split()[2] for line in lines if line.startswith("# TYPE") and line.endswith(" counter")}
    sampled = {line.split("{")[0].split()[0] for line in lines if not line.startswith("#")}
    # every counter family except the per-format ones (a format is known once detected) has a sample
    assert counters - sampled == {"logsidecar_records_parsed_total", "logsidecar_records_unparsed_total"}
