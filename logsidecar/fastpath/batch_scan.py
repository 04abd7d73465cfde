"""What a batch of access lines holds, found in C over the whole batch before the per-line loop: each
line's offset digits, and which lines hold a backslash or a control character (they need unescaping
from Apache's notation, or escaping in JSON; a control character sends a line to the record path).
The direct writers (`fastpath.encoder`) and the framing check (`fastpath.access_writer`) share one
pass, `escape_marks`."""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from itertools import compress, count
from typing import Any

from logsidecar.stamp import OFFSET_HEX_DIGITS

__all__ = ["CONTROL_BYTE", "escape_marks", "has_control_bytes", "lines_needing_escapes", "offset_hex_list"]


def offset_hex_list(offsets: Sequence[int], encoded: bool = False) -> list[Any]:
    """Every offset as OFFSET_HEX_DIGITS hex digits, one str (bytes when `encoded`) per offset:
    `stamp.offset_hexes` cut per line, in C (one pack, one hex with a separator every 8 bytes, one
    split) instead of a slice and an index sum per line in the generated loop."""
    if not offsets:
        return []
    spaced = struct.pack(f">{len(offsets)}Q", *offsets).hex(" ", OFFSET_HEX_DIGITS // 2)
    return spaced.encode().split(b" ") if encoded else spaced.split(" ")


# A line with a control character may have a bytes row that differs from its str row (str's `\s`
# takes \x1c-\x1f); httpd writes none (it escapes them): such lines take the record path.
CONTROL_BYTE = re.compile(rb"[\x00-\x09\x0b-\x1f]")


# Bytes that need escaping in JSON or unescaping from Apache's notation: control characters and the
# backslash. As a `bytes.translate` deletion table: every other byte goes (the newline stays).
_NOT_MARK = bytes(byte for byte in range(0x20, 0x100) if byte != ord("\\"))


def escape_marks(data: bytes) -> bytes:
    """The newlines, backslashes and control characters of `data`, in order: one C-level pass over
    the batch (the pass the framing check and `lines_needing_escapes` share); a clean batch gives
    its newlines only."""
    return data.translate(None, _NOT_MARK)


def has_control_bytes(marks: bytes) -> bool:
    """True when `marks` (`escape_marks`) hold a control character other than the newline."""
    return bool(marks.translate(None, b"\n\\"))


def lines_needing_escapes(data: bytes, marks: bytes | None = None) -> list[int]:
    """Indices of the lines of `data` (lines joined by newlines) holding a backslash or a control
    character: the lines whose part of `marks` (`escape_marks(data)`, when the caller has them) is
    not empty. No per-line Python loop."""
    if marks is None:
        marks = escape_marks(data)
    return list(compress(count(), marks.split(b"\n")))
