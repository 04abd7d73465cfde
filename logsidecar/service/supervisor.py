"""Running the service: pipelines one after another until a stop signal, reloads on SIGHUP, and the
bounded exit.

Stopping (SIGTERM/SIGINT): no more file discovery; every followed file is read to its end, delivered
and committed within `drain_timeout` (8 s); what is left then is named in the last log line (file,
offset where it starts, bytes and lines) and read again after a restart. Closing the outputs and
leaving take at most `pipeline.SINK_CLOSE_GRACE_S` more (8 + 1 s: below docker stop's 10 s): a worker
thread stuck in an abandoned export (a collector that accepted the connection and never answers) is
not waited for (`run_until_exit`).

SIGHUP (with a config file): the new settings are resolved and built first; invalid -> config_error,
the running pipeline goes on untouched. Valid -> the running pipeline stops gracefully (in-flight
batches settle, checkpoints are written) and a new one starts in the same process on the same state
directory, so every file resumes at its committed offset: nothing lost, nothing repeated (an
in-memory checkpoint store, `--state-dir none`, is carried over). Then config_reloaded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from logsidecar import events
from logsidecar.events import Event
from logsidecar.parse.base import FormatError
from logsidecar.pipeline import SINK_CLOSE_GRACE_S, Pipeline
from logsidecar.service.plan import Plan, reads_stdin
from logsidecar.service.telemetry import LiveRun, SelfLog, Telemetry, telemetry_key
from logsidecar.settings.errors import ConfigError
from logsidecar.tail.checkpoints import CheckpointStore
from logsidecar.tail.stdin import StdinSource
from logsidecar.tail.tailer import Tailer


class Supervisor:
    """Runs the plan's pipeline until a stop; on reload, the next plan's on the same state.

    State, changed only on the event loop (signal handlers run there):
    - `stopping`: a stop was requested; the current pipeline drains and `run` returns.
    - `next_plan`: a reload was built and waits for the current pipeline to stop.
    """

    def __init__(
        self,
        plan: Plan,
        rebuild: Callable[[], Plan] | None,
        selflog: SelfLog,
        source_factory: Callable[[Plan], Any] | None = None,
    ) -> None:
        self.plan = plan
        # Builds the run's source instead of the tailer (`docker attach --engine-logs`: the engine's
        # log stream of a container); a `pipeline.Source`.
        self._source_factory = source_factory
        self.stopping = False
        self.next_plan: Plan | None = None
        self._rebuild = rebuild  # None: no config file to read again
        self._selflog = selflog
        self._running = LiveRun()
        self._telemetry: Telemetry | None = None
        self._store: CheckpointStore | None = None

    # -- signals -----------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stopping = True
        if self._running.pipeline is not None:
            self._running.pipeline.request_stop()

    def request_reload(self) -> None:
        if self._rebuild is None:
            events.emit(Event.CONFIG_ERROR, reason="SIGHUP ignored: no --config file to read again")
            return
        try:
            new_plan = self._rebuild()
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
            Event.CONFIG_ERROR, reason="reload refused; still running the previous settings", errors=errors
        )

    # -- running -----------------------------------------------------------------------------------
    async def run(self) -> float | None:
        """Run pipelines until SIGTERM/SIGINT; returns the last pipeline's stop deadline."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            while True:
                deadline = await self._run_one(self.plan)
                if self.stopping or self.next_plan is None:
                    return deadline
                previous, self.plan, self.next_plan = self.plan, self.next_plan, None
                _announce_reload(previous, self.plan)
        finally:
            if self._telemetry is not None:
                await self._telemetry.stop()

    async def _run_one(self, plan: Plan) -> float | None:
        settings = plan.settings
        self._selflog.install(settings)
        await self._update_telemetry(plan)
        state_dir = plan.tail_options.state_dir
        # A durable store is read again (as at a restart); an in-memory one is carried over.
        if self._store is None or state_dir is not None or self._store.state_dir is not None:
            self._store = CheckpointStore(state_dir)
        running = self._running
        options = plan.tail_options
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
        await running.pipeline.run()
        if state_dir is not None:
            self._store.close()
        return running.pipeline.deadline

    async def _update_telemetry(self, plan: Plan) -> None:
        settings = plan.settings
        if self._telemetry is not None and self._telemetry.key != telemetry_key(settings):
            await self._telemetry.stop()
            self._telemetry = None
        if self._telemetry is None and settings.http_addr is not None:
            self._telemetry = Telemetry(settings, self._running)
            await self._telemetry.start()


def _announce_reload(previous: Plan, plan: Plan) -> None:
    before = [p for item in previous.settings.inputs for p in item.paths]
    after = [p for item in plan.settings.inputs for p in item.paths]
    events.emit(
        Event.CONFIG_RELOADED,
        inputs_added=[p for p in after if p not in before],
        inputs_removed=[p for p in before if p not in after],
        outputs=[o.type for o in plan.settings.outputs],
    )


def run_until_exit(main: Coroutine[Any, Any, float | None]) -> None:
    """`asyncio.run(main)`, except that worker threads still busy at the end are waited for only until
    the time `main` returns (the stop's deadline; else SINK_CLOSE_GRACE_S). All that matters is
    committed by then: a thread still running is blocked in an export the stop abandoned (an OTLP/HTTP
    collector that accepted the connection and never answers), which cannot be interrupted, and
    waiting for its timeout would outlast docker stop's grace period. That batch was never
    acknowledged: a restart reads it again."""
    loop = asyncio.new_event_loop()
    # Our own default executor (the one asyncio would make), so that its shutdown can be waited for
    # with a bound (loop.shutdown_default_executor joins without one).
    executor = concurrent.futures.ThreadPoolExecutor()
    loop.set_default_executor(executor)
    deadline: float | None = None
    try:
        deadline = loop.run_until_complete(main)
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
    joiner.join(SINK_CLOSE_GRACE_S if deadline is None else max(deadline - time.monotonic(), 0.0))
    if joiner.is_alive():
        # Everything is committed and written; the interpreter would join the stuck thread at exit.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(0)
