"""Group commit: flush requests served by one thread, so a caller never waits for the disk.

Invariants:
- Every request made before a flush starts is served by it (one flush for all of them); a request
  made while a flush runs is served by the next one. The future a request returns is done once a
  flush that started after the request has ended, with that flush's result.
- The future is running when handed out, so a waiter's `cancel()` cannot void it for the others.
- A flush that raises (a bug) is reported through `on_crash` and its requesters get False: none is
  left waiting. After `stop()` no request is taken; what was requested before it is served.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future


class GroupCommit:
    """Flush requests served by one thread, started at the first request: every request made before
    a flush starts is served by it, requests made while it runs by the next one."""

    def __init__(self, flush: Callable[[], bool], on_crash: Callable[[Exception], None], name: str) -> None:
        self._flush = flush
        self._on_crash = on_crash
        self._name = name
        self._wake = threading.Condition()
        self._next_flush: Future[bool] | None = None  # the flush the thread runs next, shared
        self._thread: threading.Thread | None = None
        self._stopping = False

    def request(self) -> Future[bool] | None:
        """The future of the next flush (done once it has ended, with its result); None after `stop()`."""
        with self._wake:
            if self._stopping:
                return None
            if self._next_flush is None:
                self._next_flush = Future()
                self._next_flush.set_running_or_notify_cancel()  # a waiter's cancel() cannot void it
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                    self._thread.start()
                self._wake.notify()
            return self._next_flush

    def stop(self) -> None:
        """Serve what was requested, then end the thread."""
        with self._wake:
            self._stopping = True
            thread, self._thread = self._thread, None
            self._wake.notify()
        if thread is not None:
            thread.join()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while self._next_flush is None and not self._stopping:
                    self._wake.wait()
                if self._next_flush is None:
                    return
                current, self._next_flush = self._next_flush, None
            written = False
            try:
                written = self._flush()
            except Exception as error:  # noqa: BLE001 - a bug here must not leave requesters waiting
                self._on_crash(error)
            finally:
                current.set_result(written)
