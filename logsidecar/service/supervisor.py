"""Running the service: pipelines one after another until a stop signal, reloads on SIGHUP, and the
bounded exit.

Stopping (SIGTERM/SIGINT): no more file discovery; every followed file is read to its end, delivered
and committed, the outputs closed and the process gone within `drain_timeout` (8 s: below docker
stop's 10 s); a worker thread stuck in an abandoned export (a collector that accepted the connection
and never answers) is not waited for (`run_until_exit`). What is left at the deadline is named in the
last log line (file, offset where it starts, bytes and lines), at warning level, and read again after
a restart; the exit status is then EXIT_STOPPED_SHORT (also when something blocked the event loop
and the stop was still running when the budget was spent: `_guard_budget`). A second SIGTERM/SIGINT
exits at once
(128 + the signal number): the acknowledged offsets are already durable, what was in flight is read
again after a restart.

SIGHUP without a config file reloads nothing, except that a SIGHUP from the terminal we write to
hanging up (the window or the SSH session closed) stops the service like SIGTERM: nobody is left to
read it, and an orphan would hold the files open for ever.

`--exit-when-exists PATH`: once PATH exists (the app container stopped: `service.exit_marker`), the
same stop as on SIGTERM, announced by `exit_marker_found`.

SIGHUP (with a config file): the new settings are resolved and built first; invalid -> config_error,
the running pipeline goes on untouched. Valid -> the running pipeline stops gracefully (in-flight
batches settle, checkpoints are written) and a new one starts in the same process on the same state
directory, so every file resumes at its committed offset: nothing lost, nothing repeated (an
in-memory checkpoint store, `--state-dir none`, is carried over). Then config_reloaded.
The resolution (`Reload.resolve`: the config read again, in a child process for the lean runtime)
runs in a worker thread, so that reading, delivery and /livez go on while it lasts (a config on a
slow mount); the plan is built and swapped in on the event loop. A SIGHUP while one is resolving
asks for one more resolution after it (any number of them coalesce into one: the file is read as
it is then). A stop while one is resolving wins: no new pipeline starts; a refusal that comes
before the stop's deadline is still logged (a stalled resolution is not waited for beyond it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import signal
import sys
import termios
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from logsidecar import events
from logsidecar.events import ConfigErrorEvent, Event, StopForced, Stopping
from logsidecar.parse.base import FormatError
from logsidecar.pipeline import SINK_CLOSE_GRACE_S, Pipeline
from logsidecar.service.exit_marker import wait_for_exit_marker
from logsidecar.service.plan import Plan, reads_stdin
from logsidecar.service.telemetry import LiveRun, SelfLog, Telemetry, telemetry_key
from logsidecar.settings.errors import ConfigError
from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.stdin import StdinSource
from logsidecar.tail.tailer import Tailer

# The exit status of a stop whose --drain-timeout passed before every line was read and delivered.
EXIT_STOPPED_SHORT = 3


@dataclass(frozen=True, slots=True)
class Reload:
    """How SIGHUP gets the next plan: `resolve` may block (it runs in a worker thread); `build` turns
    its result into the plan on the event loop. Both raise ConfigError (or FormatError/ValueError)
    for settings that are refused."""

    resolve: Callable[[], Any]
    build: Callable[[Any], Plan]


@dataclass(frozen=True, slots=True)
class StopOutcome:
    deadline: float | None  # the last pipeline's stop deadline (time.monotonic()), None if it never stopped
    exit_code: int  # 0, or EXIT_STOPPED_SHORT


class Supervisor:
    """Runs the plan's pipeline until a stop; on reload, the next plan's on the same state.

    State, changed only on the event loop (signal handlers run there):
    - `stopping`: a stop was requested; the current pipeline drains and `run` returns.
    - `next_plan`: a reload was built and waits for the current pipeline to stop.
    - `_reloading`: the task resolving a reload; `_reload_again`: a SIGHUP came meanwhile.

    `rebuild` is a `Reload`, or a callable that returns the plan (called on the loop, blocking it).
    """

    def __init__(
        self,
        plan: Plan,
        rebuild: Reload | Callable[[], Plan] | None,
        selflog: SelfLog,
        source_factory: Callable[[Plan], Any] | None = None,
    ) -> None:
        self.plan = plan
        # Builds the run's source instead of the tailer (`docker attach --engine-logs`: the engine's
        # log stream of a container); a `pipeline.Source`.
        self._source_factory = source_factory
        self.stopping = False
        self.next_plan: Plan | None = None
        if rebuild is not None and not isinstance(rebuild, Reload):
            rebuild = Reload(resolve=_nothing, build=_called(rebuild))
        self._rebuild = rebuild  # None: no config file to read again
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self._selflog = selflog
        self._running = LiveRun()
        self._telemetry: Telemetry | None = None
        self._store: CheckpointStore | None = None
        # Our standard streams that are terminals: when one hangs up, SIGHUP means "nobody is left".
        self._terminals = [fd for fd in (0, 1, 2) if _is_terminal(fd)]

    # -- signals -----------------------------------------------------------------------------------
    def request_stop(self, signum: int | None = None) -> None:
        if self.stopping and signum is not None:
            _exit_now(signum, self._running)
        if not self.stopping:
            _guard_budget(self.plan.run.drain_timeout)
        self.stopping = True
        if self._running.pipeline is not None:
            self._running.pipeline.request_stop()

    def request_reload(self) -> None:
        if self._rebuild is None:
            if any(_hung_up(fd) for fd in self._terminals):
                events.emit(Stopping(reason="SIGHUP: our terminal hung up"))
                self.request_stop()
            else:
                events.emit(ConfigErrorEvent(reason="SIGHUP ignored: no --config file to read again"))
            return
        if self.stopping:
            return
        if self._reloading is not None:  # coalesced: read once more when the current one is done
            self._reload_again = True
            return
        self._reloading = asyncio.get_running_loop().create_task(self._reload(self._rebuild))

    async def _reload(self, rebuild: Reload) -> None:
        try:
            while True:
                self._reload_again = False
                self._reload_once(rebuild, await _resolved(rebuild))
                if not self._reload_again or self.stopping:
                    return
        finally:
            self._reloading = None

    def _reload_once(self, rebuild: Reload, resolved: tuple[Any, BaseException | None]) -> None:
        value, error = resolved
        try:
            if error is not None:
                raise error
            if self.stopping:  # the stop wins: no new plan is built or started
                return
            new_plan = rebuild.build(value)
        except ConfigError as exc:
            self._refuse_reload(exc.errors)
            return
        except (FormatError, ValueError) as exc:
            self._refuse_reload([str(exc)])
            return
        self.next_plan = new_plan
        if self._running.pipeline is not None:
            self._running.pipeline.request_stop(
                drain=False
            )  # the next pipeline resumes where this one stopped

    @staticmethod
    def _refuse_reload(errors: list[str]) -> None:
        events.emit(
            ConfigErrorEvent(reason="reload refused; still running the previous settings", errors=errors)
        )

    # -- running -----------------------------------------------------------------------------------
    async def run(self) -> StopOutcome:
        """Run pipelines until SIGTERM/SIGINT; returns the last pipeline's stop deadline and status."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            while True:
                deadline = await self._run_one(self.plan)
                if self.stopping and self._reloading is not None:
                    # Its refusal is still worth a line; not beyond the stop's budget (a stalled mount).
                    await asyncio.wait({self._reloading}, timeout=_left_until(deadline))
                if self.stopping or self.next_plan is None:
                    pipeline = self._running.pipeline
                    short = pipeline is not None and pipeline.stopped_short
                    return StopOutcome(deadline, EXIT_STOPPED_SHORT if short else 0)
                previous, self.plan, self.next_plan = self.plan, self.next_plan, None
                _announce_reload(previous, self.plan)
        finally:
            if self._reloading is not None:  # a resolution still running is not waited for
                self._reloading.cancel()
            if self._telemetry is not None:
                await self._telemetry.stop()

    async def _stop_when_exit_marker_exists(self, path: str) -> None:
        await wait_for_exit_marker(path)
        if not self.stopping:
            events.emit(
                Event.EXIT_MARKER_FOUND,
                path=path,
                reason="the app container stopped: reading every followed file to its end, then exiting",
            )
            self.request_stop()

    async def _run_one(self, plan: Plan) -> float | None:
        run = plan.run
        self._selflog.install(run)
        await self._update_telemetry(plan)
        state_dir = plan.tail_options.state_dir
        # A durable store is read again (as at a restart); an in-memory one is carried over.
        if self._store is None or state_dir is not None or self._store.state_dir is not None:
            self._store = CheckpointStore(state_dir)
        options = plan.tail_options
        if state_dir is None and self._source_factory is None and not reads_stdin(options.include):
            events.emit(
                Event.CHECKPOINTS_OFF,
                reason="--state-dir none: offsets are kept in memory only; after a restart every file "
                "is read again from --start-at",
            )
        running = self._running
        if self._source_factory is not None:
            running.tailer = self._source_factory(plan)
        elif reads_stdin(options.include):
            running.tailer = StdinSource(options)
        else:
            running.tailer = Tailer(options, self._store)
        running.pipeline = Pipeline(
            running.tailer,
            list(plan.sinks),
            plan.parsers,
            plan.pipeline_options,
            observer=self._telemetry.metrics if self._telemetry is not None else None,
        )
        if self._telemetry is not None:  # every counter of this run's inputs and sinks exists at zero
            self._telemetry.metrics.declare(sinks=[sink.name for sink in plan.sinks])
        if self.stopping or self.next_plan is not None:  # a signal came while we were switching pipelines
            running.pipeline.request_stop(drain=self.stopping)
        # Watched per run: a reload may set, change or clear the path.
        exit_marker = (
            asyncio.create_task(self._stop_when_exit_marker_exists(run.exit_when_exists))
            if run.exit_when_exists
            else None
        )
        try:
            await running.pipeline.run()
        finally:
            if exit_marker is not None:
                exit_marker.cancel()
        if state_dir is not None:
            self._store.close()
        return running.pipeline.deadline

    async def _update_telemetry(self, plan: Plan) -> None:
        run = plan.run
        if self._telemetry is not None and self._telemetry.key != telemetry_key(run):
            await self._telemetry.stop()
            self._telemetry = None
        if self._telemetry is None and run.http_addr is not None:
            self._telemetry = Telemetry(run, self._running)
            await self._telemetry.start()


async def _resolved(rebuild: Reload) -> tuple[Any, BaseException | None]:
    """`rebuild.resolve()` in a worker thread: its value, or the refusal it raised."""
    try:
        return await asyncio.to_thread(rebuild.resolve), None
    except (ConfigError, FormatError, ValueError) as exc:
        return None, exc


def _left_until(deadline: float | None) -> float:
    return 0.0 if deadline is None else max(deadline - time.monotonic(), 0.0)


def _nothing() -> None:
    return None


def _called(rebuild: Callable[[], Plan]) -> Callable[[Any], Plan]:
    return lambda _: rebuild()


def _announce_reload(previous: Plan, plan: Plan) -> None:
    before = [p for paths in previous.run.inputs for p in paths]
    after = [p for paths in plan.run.inputs for p in paths]
    events.emit(
        Event.CONFIG_RELOADED,
        inputs_added=[p for p in after if p not in before],
        inputs_removed=[p for p in before if p not in after],
        outputs=[o.type for o in plan.run.outputs],
    )


def _is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _hung_up(fd: int) -> bool:
    """A terminal that hung up fails every terminal request with EIO (one that never was: ENOTTY)."""
    try:
        termios.tcgetattr(fd)
    except termios.error as exc:
        return bool(exc.args) and exc.args[0] == errno.EIO
    except OSError as exc:
        return exc.errno == errno.EIO
    return False


def _exit_now(signum: int, running: LiveRun) -> None:
    """The second stop signal: leave without waiting for the drain. Offsets acknowledged so far are
    durable (a batch is sent only once the previous acknowledgements are), the rest is read again."""
    pipeline = running.pipeline
    events.emit(
        StopForced(
            reason=f"{signal.Signals(signum).name} again: exiting at once; what was in flight is read "
            "again after a restart",
            in_flight_batches=pipeline.stats()["in_flight_batches"] if pipeline is not None else 0,
        )
    )
    _flush_standard_streams()
    os._exit(128 + signum)


def _guard_budget(budget_s: float) -> None:
    """The last guard of the stop budget: a stop still running once --drain-timeout is spent ends
    there. The deadlines inside the stop cannot interrupt code that blocks the event loop itself."""
    timer = threading.Timer(budget_s, _overran, (budget_s,))
    timer.daemon = True  # a stop that ends in time does not wait for it
    timer.start()


def _overran(budget_s: float) -> None:
    events.emit(
        StopForced(
            reason=f"the stop overran --drain-timeout ({budget_s:g}s): exiting now; what was not "
            "committed is read again after a restart"
        )
    )
    _flush_standard_streams()
    os._exit(EXIT_STOPPED_SHORT)


def _flush_standard_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def run_until_exit(main: Coroutine[Any, Any, StopOutcome]) -> int:
    """`asyncio.run(main)`, except that worker threads still busy at the end are waited for only until
    the time `main` returns (the stop's deadline; else SINK_CLOSE_GRACE_S). All that matters is
    committed by then: a thread still running is blocked in an export the stop abandoned (an OTLP/HTTP
    collector that accepted the connection and never answers), which cannot be interrupted, and
    waiting for its timeout would outlast docker stop's grace period. That batch was never
    acknowledged: a restart reads it again. Returns the exit status (`StopOutcome.exit_code`)."""
    loop = asyncio.new_event_loop()
    # Our own default executor (the one asyncio would make), so that its shutdown can be waited for
    # with a bound (loop.shutdown_default_executor joins without one).
    executor = concurrent.futures.ThreadPoolExecutor()
    loop.set_default_executor(executor)
    outcome = StopOutcome(None, 0)
    try:
        outcome = loop.run_until_complete(main)
    finally:
        try:
            remaining = asyncio.all_tasks(loop)
            for task in remaining:
                task.cancel()
            if remaining:
                loop.run_until_complete(asyncio.wait(remaining))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
    joiner = threading.Thread(target=executor.shutdown, name="logsidecar-exit", daemon=True)
    joiner.start()
    deadline = outcome.deadline
    joiner.join(SINK_CLOSE_GRACE_S if deadline is None else max(deadline - time.monotonic(), 0.0))
    if joiner.is_alive():
        # Everything is committed and written; the interpreter would join the stuck thread at exit.
        _flush_standard_streams()
        os._exit(outcome.exit_code)
    return outcome.exit_code
