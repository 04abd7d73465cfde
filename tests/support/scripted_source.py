"""`ScriptedSource`: a test double of the pipeline's source (the Tailer), for pipeline tests whose
batches and timing must be exact: it emits the batches it is given, in order, then waits to be
stopped, and records every acknowledgement (`acks`; `acks_at_stop`, those made before the stop) and
how many emit() calls returned (`emitted`: reading paused by backpressure shows there)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from logsidecar.tail.options import ReadBatch


class ScriptedSource:
    """Test double for the Tailer: emits the given batches in order, then waits to be stopped."""

    def __init__(self, batches: Sequence[ReadBatch]) -> None:
        self.batches = list(batches)
        self.acks: list[tuple[str, int]] = []
        self.emitted = 0  # emit() calls that returned
        self.acks_at_stop: list[tuple[str, int]] | None = None
        self._stopped = asyncio.Event()

    async def run(self, emit: Callable[[ReadBatch], Awaitable[None]]) -> None:
        for batch in self.batches:
            if self._stopped.is_set():
                return
            await emit(batch)
            self.emitted += 1
        await self._stopped.wait()

    def acknowledge(self, file_key: str, offset: int) -> None:
        self.acks.append((file_key, offset))

    async def drain(self, timeout_s: float) -> bool:
        self._stopped.set()  # nothing more to read than the scripted batches
        return True

    async def stop(self) -> None:
        self.acks_at_stop = list(self.acks)
        self._stopped.set()

    def stats(self) -> dict[str, Any]:
        return {}
