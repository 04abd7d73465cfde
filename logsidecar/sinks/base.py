"""The sink contract.

A sink receives batches of records and returns from `send` only when the batch is delivered.
Retryable failures (backend down, timeouts, throttling) are retried inside the sink, with backoff,
for as long as it takes (or until `close` is called). So are configuration errors (a wrong token, a
wrong URL): retrying is how the sink notices they were fixed, and the lines must not be lost to them.
Only records the backend rejects for good as malformed (or that a user-set retry limit gave up on)
raise `BatchRejected`, after every other record of the batch was delivered: the pipeline counts
them, reports them with their files and offsets, and treats the batch as settled so that one
poisoned batch cannot stall a file forever.

Sinks never touch checkpoints: the pipeline turns returned `send` calls into acknowledgements.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from logsidecar.record import LogRecord


@dataclass(frozen=True, slots=True)
class RejectedRange:
    """Records `start` to `stop` (excluded) of a batch, in the order sent, of which the backend
    refused `rejected`: all of them, or (`partial`: an OTLP partial success) some, it does not say
    which."""

    start: int
    stop: int
    rejected: int
    reason: str
    partial: bool = False


class BatchRejected(Exception):
    """The backend refused records of the batch for good; retrying would not help. The others were
    delivered. `ranges` says which records (empty: all of them)."""

    def __init__(self, reason: str, *, rejected: int, ranges: Sequence[RejectedRange] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejected = rejected
        self.ranges = tuple(ranges)


@dataclass(frozen=True, slots=True)
class JsonLines:
    """`count` records already encoded: exactly `record.encode_json_lines` of them (newline-terminated)."""

    data: bytes
    count: int

    @staticmethod
    def merge(batches: Sequence[JsonLines]) -> JsonLines:
        if len(batches) == 1:
            return batches[0]
        return JsonLines(b"".join(b.data for b in batches), sum(b.count for b in batches))


@dataclass(frozen=True, slots=True)
class OtlpLogRecords:
    """Records already encoded as OTLP `LogRecord`s (`LogsRequestEncoder.encode_record` of each),
    all with the resource `resource`."""

    records: list[bytes]
    resource: Mapping[str, Any]

    @property
    def count(self) -> int:
        return len(self.records)

    @staticmethod
    def merge(batches: Sequence[OtlpLogRecords]) -> OtlpLogRecords:
        if len(batches) == 1:
            return batches[0]
        groups: dict[int, OtlpLogRecords] = {}  # by resource identity (the pipeline shares one)
        for batch in batches:
            group = groups.get(id(batch.resource))
            if group is None:
                groups[id(batch.resource)] = OtlpLogRecords(list(batch.records), batch.resource)
            else:
                group.records.extend(batch.records)
        if len(groups) != 1:
            raise ValueError("OTLP batches with different resources cannot be merged")
        return next(iter(groups.values()))


#: A batch as a sink takes it: records, or their encoding.
Payload = Sequence[LogRecord] | JsonLines | OtlpLogRecords


@dataclass(frozen=True, slots=True)
class SinkCapabilities:
    """How a sink wants its batches delivered; the pipeline's lane to the sink follows them.
    The defaults suit a sink that writes each batch as it comes, in order (stdout)."""

    #: How long a first batch may wait for more to be merged into one send (0: send at once).
    batch_timeout_s: float = 0.0
    #: Stop merging at this many records (0: no limit). A merged send never exceeds it, unless one
    #: batch read alone is bigger.
    max_batch_records: int = 0
    #: Sends in flight at once; 1 also keeps the batches in the order they were read.
    max_concurrent_sends: int = 1


class Sink(ABC):
    #: Short name used in metrics and logs ("stdout", "otlp").
    name: str = "sink"
    #: How the pipeline batches and sends to this sink (see SinkCapabilities).
    capabilities: SinkCapabilities = SinkCapabilities()
    #: True when the sink takes records pre-encoded as JSON lines (`send_json_lines`) or as OTLP
    #: log records (`send_otlp_records`): when it is the only sink, the pipeline then writes access
    #: logs without building records (see `parse/direct.py`).
    accepts_json_lines: bool = False
    accepts_otlp_records: bool = False

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections; called once before the first `send`."""

    @abstractmethod
    async def send(self, records: Sequence[LogRecord]) -> None:
        """Deliver `records`; return when the backend accepted them (see module docstring)."""

    async def send_json_lines(self, batch: JsonLines) -> None:
        """Deliver pre-encoded records (only called when `accepts_json_lines`)."""
        raise NotImplementedError(f"the {self.name} sink does not take pre-encoded JSON lines")

    async def send_otlp_records(self, batch: OtlpLogRecords) -> None:
        """Deliver pre-encoded records (only called when `accepts_otlp_records`)."""
        raise NotImplementedError(f"the {self.name} sink does not take pre-encoded OTLP records")

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources; pending retries give up."""
