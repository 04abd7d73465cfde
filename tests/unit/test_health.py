"""The three probes (alive, ready, healthy): the pure assessments over hand-built snapshots, and HealthMonitor's
transitions driven by events and deliveries under an injected clock."""

from __future__ import annotations

from logsidecar import events
from logsidecar.events import Event
from logsidecar.health import (
    SHOWN_PATHS,
    HealthMonitor,
    HealthPolicy,
    HealthSnapshot,
    LagSample,
    SinkStatus,
    assess_alive,
    assess_health,
    assess_readiness,
)

POLICY = HealthPolicy(unhealthy_after_s=60.0, stall_window_s=60.0)


class FakeClock:
    """A test double for time.monotonic: time moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Lag:
    """Mutable probe values standing in for the tailer's stats."""

    def __init__(self) -> None:
        self.bytes_behind = 0
        self.files = 1


def monitor(clock: FakeClock, lag: Lag, policy: HealthPolicy = POLICY) -> HealthMonitor:
    return HealthMonitor(
        policy=policy, clock=clock, bytes_behind=lambda: lag.bytes_behind, files_followed=lambda: lag.files
    )


# -- pure assessments ------------------------------------------------------------------------------


def test_idle_service_with_no_failures_is_healthy() -> None:
    verdict = assess_health(HealthSnapshot(now=10.0, files_followed=2, bytes_behind=0), POLICY)
    assert verdict.ok
    assert verdict.summary == "healthy: following 2 files, 0 bytes behind"
    assert verdict.reasons == ()


def test_sink_failing_shorter_than_threshold_is_still_healthy() -> None:
    snapshot = HealthSnapshot(now=159.0, files_followed=1, sinks={"otlp": SinkStatus(failing_since=100.0)})
    assert assess_health(snapshot, POLICY).ok


def test_sink_failing_for_the_threshold_is_unhealthy_with_its_last_error() -> None:
    snapshot = HealthSnapshot(
        now=160.0,
        files_followed=1,
        sinks={"otlp": SinkStatus(failing_since=100.0, last_error="connection refused")},
    )
    verdict = assess_health(snapshot, POLICY)
    assert not verdict.ok
    assert verdict.reasons == ("sink 'otlp' failing for 60s (last error: connection refused)",)
    assert verdict.summary == "unhealthy: sink 'otlp' failing for 60s (last error: connection refused)"


def test_bytes_behind_growing_over_the_window_with_no_delivery_is_unhealthy() -> None:
    history = (LagSample(0.0, 100, 5), LagSample(30.0, 200, 5), LagSample(60.0, 300, 5))
    snapshot = HealthSnapshot(now=60.0, files_followed=1, bytes_behind=300, history=history)
    verdict = assess_health(snapshot, POLICY)
    assert verdict.reasons == ("bytes behind grew from 100 to 300 over 60s while nothing was delivered",)


def test_growing_lag_is_fine_while_records_are_delivered() -> None:
    history = (LagSample(0.0, 100, 5), LagSample(60.0, 300, 6))
    assert assess_health(HealthSnapshot(now=60.0, bytes_behind=300, history=history), POLICY).ok


def test_constant_lag_without_delivery_is_not_a_stall() -> None:
    history = (LagSample(0.0, 300, 5), LagSample(60.0, 300, 5))
    assert assess_health(HealthSnapshot(now=60.0, bytes_behind=300, history=history), POLICY).ok


def test_history_shorter_than_the_window_never_counts_as_a_stall() -> None:
    history = (LagSample(0.0, 100, 5), LagSample(59.0, 900, 5))
    assert assess_health(HealthSnapshot(now=59.0, bytes_behind=900, history=history), POLICY).ok


def test_not_ready_before_start_while_stopping_and_without_files() -> None:
    assert assess_readiness(HealthSnapshot(now=0.0, started=False, files_followed=1)).summary == (
        "not ready: starting"
    )
    assert assess_readiness(HealthSnapshot(now=0.0, stopping=True, files_followed=1)).summary == (
        "not ready: shutting down"
    )
    assert assess_readiness(HealthSnapshot(now=0.0, files_followed=0)).summary == (
        "not ready: no file followed yet (waiting for files matching the inputs)"
    )


def test_not_ready_without_files_names_each_waiting_pattern_and_why() -> None:
    waiting = {"/b/*.log": "unreadable: cannot list /b (Permission denied)", "/a/*.log": "no file matches"}
    verdict = assess_readiness(HealthSnapshot(now=0.0, files_followed=0, waiting=waiting))
    assert verdict.summary == (
        "not ready: following 0 files; patterns waiting: /a/*.log (no file matches); "
        "/b/*.log (unreadable: cannot list /b (Permission denied))"
    )
    assert verdict.to_json()["waiting"] == waiting
    # a pattern waiting while another is followed: ready, and the body still says what waits
    ready = assess_readiness(HealthSnapshot(now=0.0, files_followed=1, waiting=waiting))
    assert ready.ok and ready.to_json()["waiting"] == waiting


def test_ready_once_started_and_following_files() -> None:
    verdict = assess_readiness(HealthSnapshot(now=0.0, files_followed=1))
    assert verdict.ok
    assert verdict.summary == "ready: following 1 file"


def test_readiness_never_depends_on_a_backend() -> None:
    # A native sidecar's readiness gates its Pod: a collector outage must not take Apache out of its
    # Service. /healthz says it instead.
    failing = {"otlp": SinkStatus(failing_since=0.0, last_error="refused")}
    misconfigured = {"otlp": SinkStatus(failing_since=99.0, last_error="HTTP 401", misconfigured=True)}
    for sinks in (failing, misconfigured):
        snapshot = HealthSnapshot(now=100.0, files_followed=1, sinks=sinks)
        assert (assess_readiness(snapshot).ok, assess_health(snapshot, POLICY).ok) == (True, False)
        assert assess_readiness(snapshot).summary == "ready: following 1 file"


def test_alive_whenever_asked_and_says_what_the_process_does() -> None:
    # Not started, stopping, following nothing, a sink failing for good: restarting fixes none of it.
    failing = {"otlp": SinkStatus(failing_since=0.0, misconfigured=True)}
    cases = [
        (HealthSnapshot(now=0.0, started=False), "alive: event loop answered; starting"),
        (HealthSnapshot(now=500.0, sinks=failing), "alive: event loop answered; running"),
        (HealthSnapshot(now=0.0, stopping=True), "alive: event loop answered; shutting down"),
    ]
    for snapshot, summary in cases:
        verdict = assess_alive(snapshot)
        assert (verdict.ok, verdict.summary) == (True, summary)
    assert assess_alive(HealthSnapshot(now=0.0, stopping=True)).to_json() == {
        "status": "ok",
        "summary": "alive: event loop answered; shutting down",
        "reasons": [],
        "started": True,
        "stopping": True,
    }


def test_verdict_json_explains_the_state() -> None:
    snapshot = HealthSnapshot(
        now=100.0,
        files_followed=3,
        bytes_behind=42,
        sinks={"otlp": SinkStatus(failing_since=90.0, last_error="timeout", delivered_records=7)},
    )
    assert assess_health(snapshot, POLICY).to_json() == {
        "status": "ok",
        "summary": "healthy: following 3 files, 42 bytes behind",
        "reasons": [],
        "files_followed": 3,
        "bytes_behind": 42,
        "waiting": {},
        "conditions": {},
        "sinks": {
            "otlp": {
                "failing_for_s": 10.0,
                "last_error": "timeout",
                "misconfigured": False,
                "delivered_records": 7,
            }
        },
    }


# -- the monitor -----------------------------------------------------------------------------------


def test_retry_events_make_a_sink_unhealthy_after_the_threshold_and_delivery_heals_it() -> None:
    clock, lag = FakeClock(), Lag()
    health = monitor(clock, lag)
    health.handle_event(Event.STARTED, {})
    health.handle_event(Event.SINK_RETRY, {"sink": "otlp", "reason": "connection refused"})
    clock.advance(30)
    health.handle_event(Event.SINK_RETRY, {"sink": "otlp", "reason": "deadline exceeded"})
    clock.advance(29.5)
    assert health.health().ok  # failing for 59.5 s: the first retry starts the clock, later ones do not
    clock.advance(0.5)
    assert health.health().reasons == ("sink 'otlp' failing for 60s (last error: deadline exceeded)",)
    assert health.readiness().ok and health.alive().ok  # the backend's state is /healthz's only
    health.note_delivery("otlp", records=10)
    assert health.health().ok
    assert health.readiness().ok


def test_sink_recovered_event_clears_the_failure() -> None:
    clock, lag = FakeClock(), Lag()
    health = monitor(clock, lag)
    health.handle_event(Event.SINK_RETRY, {"sink": "otlp", "reason": "refused"})
    clock.advance(120)
    assert not health.health().ok
    health.handle_event(Event.SINK_RECOVERED, {"sink": "otlp", "outage_s": 120.0})
    assert health.health().ok


def test_a_failing_state_dir_is_unhealthy_not_unready_until_a_checkpoint_is_written() -> None:
    clock, lag = FakeClock(), Lag()
    health = monitor(clock, lag)
    health.handle_event(Event.STARTED, {})
    # a one-off report (a corrupt database moved aside) is not a lasting condition
    health.handle_event(Event.CHECKPOINT_ERROR, {"state_dir": "/s", "error": "corrupt", "moved_to": "/s/x"})
    assert health.health().ok
    health.handle_event(
        Event.CHECKPOINT_ERROR, {"state_dir": "/s", "error": "No space left on device", "failing": True}
    )
    verdict = health.health()
    assert verdict.reasons == ("checkpoints: cannot write /s: No space left on device",)
    assert verdict.details["conditions"] == {"checkpoints": "cannot write /s: No space left on device"}
    assert health.readiness().ok  # records still flow
    health.handle_event(Event.CHECKPOINT_WRITTEN, {"entries": 1, "forgotten": 0})
    assert health.health().ok and health.conditions() == {}


def test_files_mostly_unparsed_are_unhealthy_not_unready_named_up_to_a_few() -> None:
    health = monitor(FakeClock(), Lag())
    health.handle_event(Event.STARTED, {})
    failing = [f"/logs/{n}.log" for n in range(SHOWN_PATHS + 2)]
    health.handle_event(Event.PARSE_FAILING, {"path": failing[-1], "failing_files": failing})
    named = ", ".join(failing[:SHOWN_PATHS])
    assert health.health().reasons == (f"parse: recent lines mostly not parsed in {named} and 2 more",)
    assert health.readiness().ok
    health.handle_event(Event.PARSE_RECOVERED, {"path": failing[0], "failing_files": []})
    assert health.health().ok


def test_a_configuration_error_makes_the_sink_unhealthy_at_once_until_it_recovers() -> None:
    clock, lag = FakeClock(), Lag()
    health = monitor(clock, lag)
    health.handle_event(Event.STARTED, {})
    reason = "authentication rejected by collector (HTTP 401)"
    health.handle_event(Event.SINK_MISCONFIGURED, {"sink": "otlp", "reason": reason, "fix": "check ..."})
    assert health.health().reasons == (f"sink 'otlp' misconfigured: {reason}",)
    assert health.readiness().ok
    health.handle_event(Event.SINK_RETRY, {"sink": "otlp", "reason": reason, "misconfigured": True})
    clock.advance(1)
    assert not health.health().ok
    # Fixed (e.g. a new token): the next delivery makes it healthy again.
    health.handle_event(Event.SINK_RECOVERED, {"sink": "otlp", "outage_s": 1.0})
    assert health.health().ok and health.readiness().ok
    # An ordinary outage afterwards is not a configuration error: it waits for the threshold.
    health.handle_event(Event.SINK_RETRY, {"sink": "otlp", "reason": "refused", "misconfigured": False})
    assert health.health().ok


def test_one_failing_sink_does_not_hide_behind_a_healthy_one() -> None:
    clock, lag = FakeClock(), Lag()
    health = monitor(clock, lag)
    health.note_failure("otlp", "refused")
    clock.advance(61)
    health.note_delivery("stdout", records=5)
    assert health.health().reasons == ("sink 'otlp' failing for 61s (last error: refused)",)


def test_monitor_detects_a_stalled_pipeline_from_its_own_samples() -> None:
    clock, lag = FakeClock(), Lag()
    health = monitor(clock, lag)
    for behind in (100, 150, 200):
        lag.bytes_behind = behind
        health.sample()
        clock.advance(30)
    lag.bytes_behind = 250  # now = start + 90 s; the anchor is the sample at +30 s (150 bytes)
    assert health.health().reasons == (
        "bytes behind grew from 150 to 250 over 60s while nothing was delivered",
    )
    health.note_delivery("otlp", records=1)
    clock.advance(1)
    assert health.health().ok  # a delivery inside the window means the pipeline moves


def test_monitor_keeps_only_one_sample_older_than_the_window() -> None:
    clock, lag = FakeClock(), Lag()
    health = monitor(clock, lag)
    for _ in range(100):
        health.sample()
        clock.advance(10)
    history = health.snapshot().history
    assert [round(s.at - history[-1].at) for s in history] == [-60, -50, -40, -30, -20, -10, 0]


def test_readiness_follows_lifecycle_events_and_files() -> None:
    clock, lag = FakeClock(), Lag()
    lag.files = 0
    health = monitor(clock, lag)
    assert health.readiness().summary == "not ready: starting"
    health.handle_event(Event.STARTED, {"sinks": ["stdout"]})
    assert (
        health.readiness().summary
        == "not ready: no file followed yet (waiting for files matching the inputs)"
    )
    lag.files = 2
    assert health.readiness().summary == "ready: following 2 files"
    health.handle_event(Event.STOPPING, {})
    assert health.readiness().summary == "not ready: shutting down"
    assert health.health().ok
    assert health.alive().summary == "alive: event loop answered; shutting down"


def test_a_pipeline_started_again_after_a_reload_is_ready_again() -> None:
    clock, lag = FakeClock(), Lag()
    lag.files = 1
    health = monitor(clock, lag)
    health.handle_event(Event.STARTED, {"sinks": ["stdout"]})
    health.handle_event(Event.STOPPING, {})  # the old pipeline stops on SIGHUP ...
    assert health.readiness().summary == "not ready: shutting down"
    health.handle_event(Event.STARTED, {"sinks": ["stdout"]})  # ... and the new one starts
    assert health.readiness().summary == "ready: following 1 file"


def test_monitor_subscribes_to_the_event_bus() -> None:
    clock, lag = FakeClock(), Lag()
    health = monitor(clock, lag)
    unsubscribe = health.subscribe()
    try:
        events.emit(Event.STARTED)
        events.emit(Event.SINK_RETRY, sink="otlp", reason="refused")
        clock.advance(60)
        assert health.health().reasons == ("sink 'otlp' failing for 60s (last error: refused)",)
    finally:
        unsubscribe()


def test_a_failing_probe_reads_as_zero_instead_of_crashing() -> None:
    def broken() -> int:
        raise RuntimeError("tailer gone")

    health = HealthMonitor(clock=FakeClock(), bytes_behind=broken, files_followed=broken)
    snapshot = health.snapshot()
    assert (snapshot.bytes_behind, snapshot.files_followed) == (0, 0)
