"""Apache's log escaping, undone.

Since httpd 2.0.46 `ap_escape_logitem` writes `"` and `\\` as `\\"` and `\\\\`, the whitespace
controls as C escapes (`\\b \\n \\r \\t \\v`; `\\f` is accepted too), and every other
non-printable or non-ASCII byte as `\\xhh`. `unescape_log_value` inverts that faithfully: the
`\\xhh` bytes are put back as bytes and the result decoded as UTF-8. Each byte sequence that is not
UTF-8 becomes U+FFFD (the replacement character, as a browser decodes it) and the caller is told, so
it can flag the record with `logsidecar.invalid_utf8`.

Why U+FFFD and not `\\xhh` text: the value must say one thing. Left as `\\xfc`, an invalid byte would
read exactly like a client that sent a backslash followed by `xfc` (which Apache logs as `\\\\xfc`
and we decode to `\\xfc`): two different requests, one attribute. With U+FFFD a backslash in a
decoded value is always a backslash that was sent, and a control character always one that was
sent. Nothing is lost: the record's body keeps the line exactly as Apache wrote it, escapes included.

Invariants: a value without a backslash is returned unchanged (callers test for `\\` first, so the
common case costs nothing); an unknown escape such as `\\q` or a dangling `\\` is kept verbatim.
"""

from __future__ import annotations

import re

__all__ = ["unescape_log_value"]

_SIMPLE = {"b": "\b", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "f": "\f", '"': '"', "\\": "\\"}
_SIMPLE_BYTES = {k.encode(): v.encode() for k, v in _SIMPLE.items()}

_ESCAPE_TEXT = re.compile(r'\\([bnrtvf"\\])')
_ESCAPE_BYTES = re.compile(rb'\\(x[0-9A-Fa-f]{2}|[bnrtvf"\\])')


def _text_replacement(match: re.Match[str]) -> str:
    return _SIMPLE[match.group(1)]


def _bytes_replacement(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    if len(code) == 3:  # xhh
        return bytes((int(code[1:], 16),))
    return _SIMPLE_BYTES[code]


def unescape_log_value(value: str) -> tuple[str, bool]:
    """Undo Apache's escaping in one field value; return (text, was_valid_utf8)."""
    if "\\" not in value:
        return value, True
    if "\\x" not in value:
        # No byte escapes: a text-level substitution cannot produce invalid UTF-8.
        return _ESCAPE_TEXT.sub(_text_replacement, value), True
    raw = _ESCAPE_BYTES.sub(_bytes_replacement, value.encode("utf-8", "surrogateescape"))
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), False
