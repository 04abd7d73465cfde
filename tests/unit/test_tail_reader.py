"""Line framing and the FileReader: table-driven cases plus a hypothesis state machine that appends,
reads in arbitrary chunk sizes and flushes partial lines against a reference model."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Coroutine
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from logsidecar.tail.identity import Inode
from logsidecar.tail.reader import FileReader, Framed, LineFramer


def frame(chunks: list[bytes], max_line_bytes: int = 10) -> Framed:
    framer = LineFramer(max_line_bytes)
    out = Framed()
    offset = 0
    for chunk in chunks:
        framer.feed(chunk, offset, out)
        offset += len(chunk)
    return out


@pytest.mark.parametrize(
    ("chunks", "lines", "ends", "truncated"),
    [
        ([b"a\nbb\n"], [b"a", b"bb"], [2, 5], set()),
        ([b"a", b"b\nc"], [b"ab"], [3], set()),  # partial line waits for its newline
        ([b"\n\n"], [b"", b""], [1, 2], set()),  # genuine empty lines are kept
        ([b"0123456789abc\nx\n"], [b"0123456789", b"x"], [14, 16], {0}),
        ([b"0123456", b"789abc", b"def\nx\n"], [b"0123456789", b"x"], [17, 19], {0}),
        ([b"\x00\x00\x00\nok\n"], [b"ok"], [7], set()),  # a NUL-only line is dropped
        ([b"a\x00b\n"], [b"ab"], [4], set()),
        ([b"\xff\xfe\n"], [b"\xff\xfe"], [3], set()),  # bytes are bytes
        ([b"0123456789\n"], [b"0123456789"], [11], set()),  # exactly max_line_bytes: not truncated
    ],
)
def test_framing(chunks: list[bytes], lines: list[bytes], ends: list[int], truncated: set[int]) -> None:
    out = frame(chunks)
    assert (out.lines, out.end_offsets, out.truncated) == (lines, ends, truncated)


def test_nul_runs_are_counted_once_across_chunk_boundaries() -> None:
    out = frame([b"a\x00\x00", b"\x00\x00b\n\x00c\n"])
    assert (out.lines, out.nul_runs, out.nul_bytes) == ([b"ab", b"c"], 2, 5)


def test_flushed_partial_line_rest_becomes_a_new_line() -> None:
    framer = LineFramer(100)
    out = Framed()
    framer.feed(b"abc", 0, out)
    assert framer.flush_partial(out, 3)
    framer.feed(b"def\n", 3, out)
    assert (out.lines, out.end_offsets) == ([b"abc", b"def"], [3, 7])


def test_flushed_overlong_line_rest_is_skipped_to_its_newline() -> None:
    framer = LineFramer(4)
    out = Framed()
    framer.feed(b"abcdefgh", 0, out)
    assert framer.flush_partial(out, 8)
    framer.feed(b"ijk\nz\n", 8, out)
    assert (out.lines, out.end_offsets, out.truncated) == ([b"abcd", b"z"], [8, 14], {0})


def reference(content: bytes, end: int, flush_points: list[int], max_line_bytes: int) -> Framed:
    """The framing rules written the slow, obvious way (see reader.py's docstring)."""
    out = Framed()
    start = 0
    while True:
        newline = content.find(b"\n", start, end)
        segment_end = newline if newline >= 0 else end
        skip_rest = False
        for point in flush_points:
            if not (start < point <= segment_end) or (newline >= 0 and point > newline) or skip_rest:
                continue
            pending = content[start:point].replace(b"\x00", b"")
            if not pending:
                continue
            if len(pending) > max_line_bytes:
                out.truncated.add(len(out.lines))
                out.lines.append(pending[:max_line_bytes])
                out.end_offsets.append(point)
                skip_rest = True
            else:
                out.lines.append(pending)
                out.end_offsets.append(point)
                start = point
        if newline < 0:
            return out
        raw = content[start:newline]
        line = raw.replace(b"\x00", b"")
        if not skip_rest and not (b"\x00" in raw and not line):
            if len(line) > max_line_bytes:
                out.truncated.add(len(out.lines))
                line = line[:max_line_bytes]
            out.lines.append(line)
            out.end_offsets.append(newline + 1)
        start = newline + 1


def run_sync(coroutine: Coroutine[Any, Any, int]) -> int:
    """Drive a coroutine that never suspends (FileReader's inline small reads)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return int(done.value)
    raise AssertionError("coroutine suspended")


class ReaderMachine(RuleBasedStateMachine):
    MAX_LINE = 6

    def __init__(self) -> None:
        super().__init__()
        handle, self.path = tempfile.mkstemp(prefix="reader-sm-")
        os.close(handle)
        self.content = bytearray()
        self.flush_points: list[int] = []
        fd = os.open(self.path, os.O_RDONLY)
        self.reader = FileReader(
            fd=fd,
            path=self.path,
            file_key="k",
            inode=Inode(0, 0),
            fingerprint=b"",
            offset=0,
            max_line_bytes=self.MAX_LINE,
            fingerprint_bytes=16,
        )
        self.out = Framed()

    @rule(
        data=st.binary(max_size=20).map(
            lambda b: bytes(c % 4 for c in b).translate(bytes.maketrans(b"\x00\x01\x02\x03", b"\x00\na\xff"))
        )
    )
    def append(self, data: bytes) -> None:
        with open(self.path, "ab") as f:
            f.write(data)
        self.content += data

    @rule(max_bytes=st.integers(min_value=1, max_value=30))
    def read(self, max_bytes: int) -> None:
        self.reader.stat_size()
        run_sync(self.reader.read_once(max_bytes, self.out))

    @rule()
    def flush_partial(self) -> None:
        self.flush_points.append(self.reader.scan_offset)
        self.reader.flush_partial(self.out)

    @invariant()
    def matches_reference(self) -> None:
        expected = reference(bytes(self.content), self.reader.scan_offset, self.flush_points, self.MAX_LINE)
        assert (self.out.lines, self.out.end_offsets, self.out.truncated) == (
            expected.lines,
            expected.end_offsets,
            expected.truncated,
        )
        assert self.reader.read_offset <= self.reader.scan_offset

    def teardown(self) -> None:
        self.reader.close()
        os.unlink(self.path)


ReaderMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
test_reader_matches_reference_model = ReaderMachine.TestCase
