"""What the pipeline stamps on every record of a batch read from one file.

- `position`: `Position(file_key, path, end_offset)`.
- `log.file.path` (the path the line was read from; a rotated file keeps its new name) and `log.file.name`;
  when the file's writer sees it under another path (`docker attach`: a container's volume, read on the
  host), `log.file.path` is the writer's path (`shown_path`) and `logsidecar.host.path` the one read.
- `log.record.uid`: 32 hex digits = the first 8 bytes of BLAKE2b(file_key) followed by the line's end
  offset as 16 hex digits. It is stable (the same line always gets the same uid, across restarts and
  rotation, because file_key is the file's identity, not its path) and unique per line, so a backend
  can drop the duplicates of a replay after a crash.
- `logsidecar.truncated: true` for lines cut at `max_line_bytes`.
- lines read through a container engine's log API (`engine_times_ns`) whose record has no `timestamp`
  (the line has no time of its own, or it did not parse) get the engine's time of the line, flagged
  `logsidecar.timestamp_source: engine`. The direct encoders do not write these: such batches take
  the record path.
- `resource`: one shared, read-only mapping (host.name, service.name ...) for every record.

The attribute order is fixed (parser attributes, then path, name, uid, truncated) because encoders
that write records without building them (`fastpath/json_dialect.py`) must produce the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from logsidecar.record import (
    HOST_PATH,
    LOG_FILE_NAME,
    LOG_FILE_PATH,
    LOG_RECORD_UID,
    TIMESTAMP_FROM_ENGINE,
    TIMESTAMP_SOURCE,
    TRUNCATED,
    LogRecord,
    Position,
)


def uid_prefix(file_key: str) -> str:
    """The file half of `log.record.uid` (see module docstring)."""
    return hashlib.blake2b(file_key.encode(), digest_size=8).hexdigest()


def record_uid(file_key: str, end_offset: int) -> str:
    """`log.record.uid` of the line of `file_key` that ends at `end_offset`."""
    return f"{uid_prefix(file_key)}{end_offset:016x}"


# A line's end offset in `log.record.uid`: 8 bytes, big-endian, as hex digits.
OFFSET_HEX_DIGITS = 16


def offset_hexes(offsets: Sequence[int]) -> str:
    """Every offset as OFFSET_HEX_DIGITS hex digits, concatenated (one pack and one hex for a
    whole batch): line i's are `[i * OFFSET_HEX_DIGITS:(i + 1) * OFFSET_HEX_DIGITS]`."""
    return struct.pack(f">{len(offsets)}Q", *offsets).hex()


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def engine_time(timestamp_ns: int) -> datetime:
    """An engine's timestamp (nanoseconds since the epoch) as a UTC datetime (to the microsecond: what
    a record's times hold), without the float rounding of `datetime.fromtimestamp`."""
    return EPOCH + timedelta(microseconds=timestamp_ns // 1000)


@dataclass(frozen=True, slots=True)
class BatchStamp:
    """The stamp of one batch: `end_offsets[i]` ends line i; `truncated` lists cut lines' indices."""

    file_key: str
    path: str
    uid_prefix: str
    end_offsets: Sequence[int]
    truncated: Collection[int]
    resource: dict[str, Any]
    shown_path: str | None = None  # the path as the writer sees it, when not `path` (see docstring)
    engine_times_ns: Sequence[int] | None = None  # the engine's time of each line (see docstring)

    def apply(self, records: Sequence[LogRecord], indices: Iterable[int] | None = None) -> None:
        """Stamp `records`, which are the batch's lines `indices` (default: all of them, in order)."""
        # The hot loop: keep it to plain stores. Positions are built without a Python __init__.
        path = self.path
        shown = self.shown_path or path
        name = os.path.basename(shown)
        host_path = path if self.shown_path else None
        file_key = self.file_key
        resource = self.resource
        prefix = self.uid_prefix
        offsets = self.end_offsets
        if indices is None:
            hexes = offset_hexes(offsets)
            line_offsets: Iterable[tuple[int, str]] = zip(
                offsets,
                (hexes[at : at + OFFSET_HEX_DIGITS] for at in range(0, len(hexes), OFFSET_HEX_DIGITS)),
                strict=True,
            )
            chosen: Sequence[int] = range(len(offsets))
        else:
            chosen = list(indices)
            line_offsets = ((offsets[i], f"{offsets[i]:016x}") for i in chosen)
        new_position = tuple.__new__
        for record, (offset, offset_hex) in zip(records, line_offsets, strict=True):
            attributes = record.attributes
            attributes[LOG_FILE_PATH] = shown
            attributes[LOG_FILE_NAME] = name
            if host_path is not None:
                attributes[HOST_PATH] = host_path
            attributes[LOG_RECORD_UID] = prefix + offset_hex
            record.position = new_position(Position, (file_key, path, offset))
            if record.resource:
                record.resource = {**resource, **record.resource}
            else:
                record.resource = resource
        if self.truncated:
            where = {index: n for n, index in enumerate(chosen)}
            for index in self.truncated:
                if index in where:
                    records[where[index]].attributes[TRUNCATED] = True
        if self.engine_times_ns is not None:
            times = self.engine_times_ns
            for record, index in zip(records, chosen, strict=True):
                if record.timestamp is None:
                    record.timestamp = engine_time(times[index])
                    record.attributes[TIMESTAMP_SOURCE] = TIMESTAMP_FROM_ENGINE

    def json_uid_head(self) -> str:
        """The JSON text of the stamped attributes up to the uid's offset digits:
        `,"log.file.path":…,"log.file.name":…[,"logsidecar.host.path":…],"log.record.uid":"<prefix>`."""
        dumps = orjson.dumps
        shown = self.shown_path or self.path
        host = f",{dumps(HOST_PATH).decode()}:{dumps(self.path).decode()}" if self.shown_path else ""
        return (
            f",{dumps(LOG_FILE_PATH).decode()}:{dumps(shown).decode()}"
            f",{dumps(LOG_FILE_NAME).decode()}:{dumps(os.path.basename(shown)).decode()}"
            f'{host},{dumps(LOG_RECORD_UID).decode()}:"{self.uid_prefix}'
        )

    def json_resource(self) -> str:
        return orjson.dumps(self.resource, option=orjson.OPT_NON_STR_KEYS).decode()
