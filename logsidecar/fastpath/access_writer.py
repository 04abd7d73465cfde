"""The fast-path writer of one access-log parser in one encoding: a batch of lines to wire bytes.

The batch regex runs over the whole batch (over its bytes for a bytes-rows dialect and an ASCII
batch, else over its text); when every line gives one row, the generated `DirectEncoder` writes
the fast lines and the slow ones are parsed, stamped and encoded the ordinary way. A batch that
cannot be framed that way (a line holding a newline, a fast match running across a newline,
undecodable text for a str dialect, a format the encoder declines) takes the ordinary path whole.
Either way the output is byte-for-byte `ordinary(stamp.apply(parse(lines)))`.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Sequence
from typing import Any

from logsidecar.fastpath.batch_scan import escape_marks
from logsidecar.fastpath.encoder import DirectEncoder, SlowParse
from logsidecar.parse.access import AccessLogParser
from logsidecar.record import PARSE_ERROR, LogRecord, utcnow
from logsidecar.stamp import BatchStamp

__all__ = ["AccessWriter", "reparse_unparsed"]


class AccessWriter:
    """`write(lines, stamp, slow_parse=None) -> (encoding, unparsed lines)` for one parser."""

    def __init__(
        self,
        parser: AccessLogParser,
        encoder: DirectEncoder | None,
        ordinary: Callable[[list[LogRecord]], Any],
    ) -> None:
        self._parser = parser
        self._compiled = parser.compiled
        self._encoder = encoder
        self._ordinary = ordinary
        self._bytes_regex: re.Pattern[bytes] | None | bool = False  # False: not compiled yet

    def write(
        self, lines: Sequence[bytes], stamp: BatchStamp, slow_parse: SlowParse | None = None
    ) -> tuple[Any, int]:
        """The encoding of the parsed, stamped batch, and how many lines did not parse. `slow_parse`
        re-parses the lines this parser left unparsed (the `auto` parser passes its own search)."""
        encoder = self._encoder
        compiled = self._compiled
        observed = utcnow()
        data = b"\n".join(lines)
        text: str | None = None
        rows: list[tuple[Any, ...] | None] = []
        # The framing check counts the newlines of the marks (a few bytes per line), not of the batch.
        marks = escape_marks(data) if encoder is not None else b""
        framed = bool(lines) and marks.count(b"\n") == len(lines) - 1
        if encoder is not None and framed:
            bytes_regex = self._bytes_batch_regex() if encoder.dialect.bytes_rows and data.isascii() else None
            if bytes_regex is not None:
                rows = bytes_regex.findall(data)
            elif not encoder.dialect.bytes_rows:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                else:
                    rows = compiled.batch_regex.findall(text)
        if encoder is None or not framed or len(rows) != len(lines):
            records = self._parser.parse(lines)
            if slow_parse is not None:
                reparse_unparsed(records, slow_parse)
            stamp.apply(records)
            return self._ordinary(records), sum(PARSE_ERROR in r.attributes for r in records)

        def slow(indices: list[int]) -> list[LogRecord]:
            exact_row = compiled.exact_row
            bodies = [lines[i].decode("utf-8") for i in indices]
            # A bytes row may differ from the str row on a line with \x1c-\x1f (str's \s takes
            # them): such lines are slow lines, matched again here as the str batch regex would
            # (no match ran across a newline, so matching the line alone gives its batch row).
            if text is None:
                text_rows = [compiled.batch_regex.findall(body)[0] for body in bodies]
            else:
                text_rows = [rows[i] for i in indices]
            picked = [
                exact_row(body) if '\\"' in body else row for row, body in zip(text_rows, bodies, strict=True)
            ]
            records = compiled.build_rows(picked, bodies, observed)
            if slow_parse is not None:
                reparse_unparsed(records, slow_parse, indices)
            return records

        gc_was_enabled = gc.isenabled()
        if gc_was_enabled:  # as in `AccessLogParser.parse`: no cycles are made, skip the rescans
            gc.disable()
        try:
            return encoder.encode(data, text, lines, rows, observed, stamp, slow, marks)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _bytes_batch_regex(self) -> re.Pattern[bytes] | None:
        """The batch regex over bytes, for ASCII batches (where it matches exactly what the str one
        matches); None when the pattern itself is not ASCII (a literal like `é` in the LogFormat)."""
        if self._bytes_regex is False:
            pattern = self._compiled.batch_regex.pattern
            self._bytes_regex = re.compile(pattern.encode(), re.MULTILINE) if pattern.isascii() else None
        return self._bytes_regex  # type: ignore[return-value]


def reparse_unparsed(
    records: list[LogRecord], slow_parse: SlowParse, indices: Sequence[int] | None = None
) -> None:
    """Give the lines `records` left unparsed to `slow_parse` (in place). `indices` are the batch
    indices of `records` (default: 0..n-1)."""
    unparsed = [n for n, record in enumerate(records) if PARSE_ERROR in record.attributes]
    if not unparsed:
        return
    where = list(indices) if indices is not None else list(range(len(records)))
    observed = records[unparsed[0]].observed_timestamp
    for n, record in zip(unparsed, slow_parse([where[n] for n in unparsed]), strict=True):
        record.observed_timestamp = observed
        records[n] = record
