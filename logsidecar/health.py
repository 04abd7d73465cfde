"""The three probes, each with one meaning, computed from what the process knows rather than "it is up".

- alive (/livez): the event loop answered. Always ok when it can be asked at all: a stuck loop answers
  nothing and the probe times out. The only state in which a restart helps, so the only one a
  Kubernetes liveness (or startup) probe should act on.
- ready (/readyz): started, not shutting down, and following at least one file. Never the state of a
  backend: a native sidecar's readiness gates its Pod's, so a collector outage must not take the app
  out of its Service. While it follows no file, it says why per input pattern (from
  `Tailer.waiting_patterns`: no file matches, a directory on its path is unreadable, every match refused).
- healthy (/healthz, for alerting): delivery and lag. Unhealthy when
  - a sink has been failing (retrying, no successful delivery since) for at least `unhealthy_after_s`
    (the `--unhealthy-after` option, default 60 s);
  - a sink's last failure is a configuration error (SINK_MISCONFIGURED, or SINK_RETRY with
    `misconfigured: true`: a wrong token or endpoint does not heal by waiting), at once;
  - the bytes behind grew over the last `stall_window_s` while not one record was delivered: a
    pipeline that stopped moving although there is work to do;
  - a condition holds (`HealthSnapshot.conditions`, from events): "checkpoints" from a
    `checkpoint_error` with `failing: true` until the next `checkpoint_written` (the state directory
    cannot be written: resuming where we stopped is no longer guaranteed); "parse" while a file's
    recent lines mostly fail to parse (`parse_failing` .. `parse_recovered`). Conditions fail /healthz,
    never /readyz: the records still flow.

Two layers:

1. Pure assessment: `assess_alive`, `assess_readiness` and `assess_health` turn a `HealthSnapshot` (a
   frozen picture taken at `snapshot.now`) and a `HealthPolicy` into a `Verdict`. No clock, no I/O:
   tests build snapshots by hand and assert exact verdicts.
2. `HealthMonitor`: the stateful side. It learns sink failures and recoveries from the event bus
   (`SINK_RETRY`, `SINK_RECOVERED`, `STARTED`, `STOPPING`), deliveries from `note_delivery`, and
   samples the lag through callables; `snapshot()` freezes all that with an injectable clock.

Wiring (what service/telemetry.py does):
    health = HealthMonitor(policy=HealthPolicy(unhealthy_after_s=60),
                           bytes_behind=lambda: ..., files_followed=lambda: ...)
    unsubscribe = health.subscribe()        # listens to logsidecar.events
    health.note_delivery("otlp", records=500)   # after each successful Sink.send (Metrics does it for you)
    health.alive(); health.readiness(); health.health()   # -> Verdict (ok, summary, reasons, details)

Invariant: a sink that delivers anything is not failing any more, whatever events said before.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from logsidecar import events
from logsidecar.events import Event
from logsidecar.redact import redact

Clock = Callable[[], float]

# The named conditions that can make the process unhealthy (`HealthMonitor.set_condition`).
HEALTH_CONDITIONS = ("checkpoints", "parse")
SHOWN_PATHS = 5  # a condition names at most this many files (the log names each one)


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    unhealthy_after_s: float = 60.0  # a sink retrying this long makes the process unhealthy
    stall_window_s: float = 60.0  # bytes behind growing this long with zero deliveries: unhealthy


@dataclass(frozen=True, slots=True)
class SinkStatus:
    failing_since: float | None = None  # clock time of the first failure since the last success
    last_error: str | None = None
    last_delivery_at: float | None = None
    delivered_records: int = 0
    misconfigured: bool = False  # the last failure was a configuration error


@dataclass(frozen=True, slots=True)
class LagSample:
    at: float
    bytes_behind: int
    delivered_records: int  # over all sinks, monotonic


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    now: float
    started: bool = True
    stopping: bool = False
    files_followed: int = 0
    bytes_behind: int = 0
    waiting: Mapping[str, str] = field(default_factory=dict)  # input pattern -> why no file is followed
    conditions: Mapping[str, str] = field(default_factory=dict)  # name -> what is wrong (see module doc)
    sinks: Mapping[str, SinkStatus] = field(default_factory=dict)
    history: tuple[LagSample, ...] = ()  # oldest first; the last one is taken at `now`


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    summary: str  # one line, for `logsidecar health` and logs
    reasons: tuple[str, ...] = ()  # why not ok (empty when ok)
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "fail",
            "summary": self.summary,
            "reasons": list(self.reasons),
            **self.details,
        }


def assess_alive(snapshot: HealthSnapshot) -> Verdict:
    """/livez: whoever computes this was answered by the event loop; the details say what it does."""
    state = "starting" if not snapshot.started else "shutting down" if snapshot.stopping else "running"
    return Verdict(
        True,
        f"alive: event loop answered; {state}",
        (),
        {"started": snapshot.started, "stopping": snapshot.stopping},
    )


def assess_health(snapshot: HealthSnapshot, policy: HealthPolicy) -> Verdict:
    """/healthz: delivery and lag (for alerting; a restart does not fix a backend outage)."""
    reasons = [*_failing_sink_reasons(snapshot, policy)]
    stall = _stall_reason(snapshot, policy)
    if stall:
        reasons.append(stall)
    reasons += [f"{name}: {what}" for name, what in sorted(snapshot.conditions.items())]
    details = _details(snapshot)
    if reasons:
        return Verdict(False, "unhealthy: " + "; ".join(reasons), tuple(reasons), details)
    return Verdict(
        True, f"healthy: {_describe_files(snapshot)}, {snapshot.bytes_behind} bytes behind", (), details
    )


def assess_readiness(snapshot: HealthSnapshot) -> Verdict:
    """/readyz: started and following at least one file; never the backends' state."""
    details = _details(snapshot)
    if not snapshot.started:
        reasons: tuple[str, ...] = ("starting",)
    elif snapshot.stopping:
        reasons = ("shutting down",)
    elif snapshot.files_followed == 0 and snapshot.waiting:
        waiting = "; ".join(f"{pattern} ({why})" for pattern, why in sorted(snapshot.waiting.items()))
        reasons = (f"following 0 files; patterns waiting: {waiting}",)
    elif snapshot.files_followed == 0:
        reasons = ("no file followed yet (waiting for files matching the inputs)",)
    else:
        reasons = ()
    if reasons:
        return Verdict(False, "not ready: " + "; ".join(reasons), reasons, details)
    return Verdict(True, f"ready: {_describe_files(snapshot)}", (), details)


def _failing_sink_reasons(snapshot: HealthSnapshot, policy: HealthPolicy) -> list[str]:
    reasons = []
    for name, status in sorted(snapshot.sinks.items()):
        if status.failing_since is None:
            continue
        failing_for = snapshot.now - status.failing_since
        if status.misconfigured:
            reasons.append(f"sink '{name}' misconfigured: {status.last_error or 'configuration error'}")
        elif failing_for >= policy.unhealthy_after_s:
            error = f" (last error: {status.last_error})" if status.last_error else ""
            reasons.append(f"sink '{name}' failing for {failing_for:.0f}s{error}")
    return reasons


def _stall_reason(snapshot: HealthSnapshot, policy: HealthPolicy) -> str | None:
    """Compare now with the newest sample at least one window old (the window's anchor)."""
    if not snapshot.history:
        return None
    latest = snapshot.history[-1]
    anchor = None
    for sample in snapshot.history:
        if latest.at - sample.at >= policy.stall_window_s:
            anchor = sample
    if anchor is None:
        return None  # not observed for a whole window yet
    if latest.delivered_records == anchor.delivered_records and latest.bytes_behind > anchor.bytes_behind:
        return (
            f"bytes behind grew from {anchor.bytes_behind} to {latest.bytes_behind} "
            f"over {latest.at - anchor.at:.0f}s while nothing was delivered"
        )
    return None


def _describe_files(snapshot: HealthSnapshot) -> str:
    return f"following {snapshot.files_followed} file{'' if snapshot.files_followed == 1 else 's'}"


def _details(snapshot: HealthSnapshot) -> dict[str, Any]:
    return {
        "files_followed": snapshot.files_followed,
        "bytes_behind": snapshot.bytes_behind,
        "waiting": dict(sorted(snapshot.waiting.items())),
        "conditions": dict(sorted(snapshot.conditions.items())),
        "sinks": {
            name: {
                "failing_for_s": None
                if s.failing_since is None
                else round(snapshot.now - s.failing_since, 3),
                "last_error": s.last_error,
                "misconfigured": s.misconfigured,
                "delivered_records": s.delivered_records,
            }
            for name, s in sorted(snapshot.sinks.items())
        },
    }


def _zero() -> int:
    return 0


class HealthMonitor:
    """Accumulates what health depends on; thread-safe (the HTTP server may run elsewhere)."""

    def __init__(
        self,
        *,
        policy: HealthPolicy | None = None,
        clock: Clock = time.monotonic,
        bytes_behind: Callable[[], int] = _zero,
        files_followed: Callable[[], int] = _zero,
        waiting: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        self.policy = policy or HealthPolicy()
        self._clock = clock
        self._bytes_behind = bytes_behind
        self._files_followed = files_followed
        self._waiting = waiting
        self._lock = threading.Lock()
        self._started = False
        self._stopping = False
        self._sinks: dict[str, SinkStatus] = {}
        self._conditions: dict[str, str] = {}
        self._delivered = 0
        self._history: deque[LagSample] = deque()

    # -- inputs --------------------------------------------------------------------------------
    def subscribe(self) -> Callable[[], None]:
        """Listen to the event bus; returns the unsubscribe function."""
        return events.subscribe(self.handle_event)

    def handle_event(self, event: Event, fields: dict[str, Any]) -> None:
        if event is Event.STARTED:
            self.mark_started()
        elif event is Event.STOPPING:
            self.mark_stopping()
        elif event is Event.SINK_RETRY:
            misconfigured = bool(fields.get("misconfigured"))
            self.note_failure(
                str(fields.get("sink", "sink")), _error_text(fields), misconfigured=misconfigured
            )
        elif event is Event.SINK_MISCONFIGURED:
            self.note_failure(str(fields.get("sink", "sink")), _error_text(fields), misconfigured=True)
        elif event is Event.SINK_RECOVERED:
            self.note_recovered(str(fields.get("sink", "sink")))
        elif event is Event.CHECKPOINT_ERROR and fields.get("failing"):
            where = fields.get("state_dir", "the state directory")
            self.set_condition("checkpoints", redact(f"cannot write {where}: {_error_text(fields)}"))
        elif event is Event.CHECKPOINT_WRITTEN:
            self.set_condition("checkpoints", None)
        elif event in (Event.PARSE_FAILING, Event.PARSE_RECOVERED):
            failing = [str(path) for path in fields.get("failing_files") or []]
            named = ", ".join(failing[:SHOWN_PATHS]) + (
                f" and {len(failing) - SHOWN_PATHS} more" if len(failing) > SHOWN_PATHS else ""
            )
            self.set_condition(
                "parse", redact(f"recent lines mostly not parsed in {named}") if failing else None
            )

    def mark_started(self) -> None:
        # A pipeline started again after a reload (SIGHUP) is no longer shutting down.
        with self._lock:
            self._started = True
            self._stopping = False

    def mark_stopping(self) -> None:
        with self._lock:
            self._stopping = True

    def note_failure(self, sink: str, error: str | None = None, *, misconfigured: bool = False) -> None:
        now = self._clock()
        with self._lock:
            status = self._sinks.get(sink, SinkStatus())
            since = status.failing_since if status.failing_since is not None else now
            shown = redact(error) if error else status.last_error  # served on /healthz
            self._sinks[sink] = SinkStatus(
                since, shown, status.last_delivery_at, status.delivered_records, misconfigured
            )

    def note_recovered(self, sink: str) -> None:
        with self._lock:
            status = self._sinks.get(sink, SinkStatus())
            self._sinks[sink] = SinkStatus(None, None, status.last_delivery_at, status.delivered_records)

    def set_condition(self, name: str, what: str | None) -> None:
        """A named problem that makes the process unhealthy while set (None clears it)."""
        with self._lock:
            if what is None:
                self._conditions.pop(name, None)
            else:
                self._conditions[name] = what

    def conditions(self) -> dict[str, str]:
        with self._lock:
            return dict(self._conditions)

    def note_delivery(self, sink: str, records: int) -> None:
        now = self._clock()
        with self._lock:
            status = self._sinks.get(sink, SinkStatus())
            self._sinks[sink] = SinkStatus(None, None, now, status.delivered_records + records)
            self._delivered += records

    # -- outputs -------------------------------------------------------------------------------
    def sample(self) -> LagSample:
        """Record the current lag; called on every assessment and periodically by TelemetryServer."""
        bytes_behind = _safe_int(self._bytes_behind)
        now = self._clock()
        with self._lock:
            sample = LagSample(now, bytes_behind, self._delivered)
            self._history.append(sample)
            self._prune(now)
            return sample

    def _prune(self, now: float) -> None:
        # Keep one sample older than the window (the anchor) and everything inside it.
        window = self.policy.stall_window_s
        while len(self._history) >= 2 and now - self._history[1].at >= window:
            self._history.popleft()

    def snapshot(self) -> HealthSnapshot:
        sample = self.sample()
        files = _safe_int(self._files_followed)
        waiting = _safe_waiting(self._waiting)
        with self._lock:
            return HealthSnapshot(
                now=sample.at,
                started=self._started,
                stopping=self._stopping,
                files_followed=files,
                bytes_behind=sample.bytes_behind,
                waiting=waiting,
                conditions=dict(self._conditions),
                sinks=dict(self._sinks),
                history=tuple(self._history),
            )

    def alive(self) -> Verdict:
        return assess_alive(self.snapshot())

    def readiness(self) -> Verdict:
        return assess_readiness(self.snapshot())

    def health(self) -> Verdict:
        return assess_health(self.snapshot(), self.policy)

    def failing_for(self) -> dict[str, float]:
        """Seconds each currently failing sink has been failing (for the metrics collector)."""
        now = self._clock()
        with self._lock:
            return {n: now - s.failing_since for n, s in self._sinks.items() if s.failing_since is not None}


def _error_text(fields: Mapping[str, Any]) -> str | None:
    for key in ("reason", "error"):
        if fields.get(key):
            return str(fields[key])
    return None


def _safe_int(read: Callable[[], int]) -> int:
    try:
        return int(read())
    except Exception:  # noqa: BLE001 - a broken probe must not make health crash; it reads as zero
        return 0


def _safe_waiting(read: Callable[[], Mapping[str, str]]) -> dict[str, str]:
    try:
        return {str(k): str(v) for k, v in read().items()}
    except Exception:  # noqa: BLE001 - a broken probe must not make health crash; nothing waits
        return {}
