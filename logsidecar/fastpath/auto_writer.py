"""The fast-path writer of the `auto` parser: the locked format's writer, with auto's search behind it.

Once `auto` is locked onto an access-log format, that format's writer writes the batch, and the
lines it cannot parse get auto's whole search (`AutoParser.search_rejected`), exactly as
`AutoParser.parse` would give them. Before a lock, or locked onto a format without a writer, the
batch is parsed, stamped and encoded the ordinary way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from logsidecar.parse.base import Parser
from logsidecar.parse.detect import AutoParser
from logsidecar.record import PARSE_ERROR, LogRecord
from logsidecar.stamp import BatchStamp

__all__ = ["AutoWriter"]


class AutoWriter:
    """`write(lines, stamp) -> (encoding, unparsed lines)` for one `AutoParser`."""

    def __init__(
        self,
        auto: AutoParser,
        locked_writer: Callable[[Parser], Callable[..., tuple[Any, int]] | None],
        ordinary: Callable[[list[LogRecord]], Any],
    ) -> None:
        self._auto = auto
        self._locked_writer = locked_writer
        self._ordinary = ordinary

    def write(self, lines: Sequence[bytes], stamp: BatchStamp) -> tuple[Any, int]:
        auto = self._auto
        before, locked = auto.locked_parser()
        direct = self._locked_writer(locked) if locked is not None else None
        if direct is None:
            records = auto.parse(lines)
            stamp.apply(records)
            return self._ordinary(records), sum(PARSE_ERROR in record.attributes for record in records)
        return direct(lines, stamp, partial(auto.search_rejected, lines, before=before, locked=locked))
