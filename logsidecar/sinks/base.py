"""The sink contract.

A sink receives batches of records and returns from `send` only when the batch is delivered.
Retryable failures (backend down, timeouts, throttling) are retried inside the sink, with backoff,
for as long as it takes (or until `close` is called). A batch the backend rejects for good
(malformed, unauthorised, too large) raises `BatchRejected`: the pipeline counts it, reports it,
and treats the batch as settled so that one poisoned batch cannot stall a file forever.

Sinks never touch checkpoints: the pipeline turns returned `send` calls into acknowledgements.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from logsidecar.record import LogRecord


class BatchRejected(Exception):
    """The backend refused the batch for good; retrying would not help."""

    def __init__(self, reason: str, *, rejected: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejected = rejected


@dataclass(frozen=True, slots=True)
class JsonLines:
    """`count` records already encoded: exactly `record.encode_json_lines` of them (newline-terminated)."""

    data: bytes
    count: int


class Sink(ABC):
    #: Short name used in metrics and logs ("stdout", "otlp").
    name: str = "sink"
    #: True when the sink's output is JSON lines and it takes them pre-encoded (`send_json_lines`):
    #: the pipeline may then write them without building records (see `parse/access_json.py`).
    accepts_json_lines: bool = False

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections; called once before the first `send`."""

    @abstractmethod
    async def send(self, records: Sequence[LogRecord]) -> None:
        """Deliver `records`; return when the backend accepted them (see module docstring)."""

    async def send_json_lines(self, batch: JsonLines) -> None:
        """Deliver pre-encoded records (only called when `accepts_json_lines`)."""
        raise NotImplementedError(f"the {self.name} sink does not take pre-encoded JSON lines")

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources; pending retries give up."""
