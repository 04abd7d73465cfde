"""Text meant for a person's terminal: control characters escaped, colour only when allowed.

Log lines come from whoever sent Apache a request: a request for `/\\x1b]0;TITLE\\x07` is logged as
that escape sequence, and parsers decode it back into a raw ESC. Written as is, it would set the
operator's window title, move the cursor or worse. So every value that came from a log line, a
file name or an error message goes through `escape_controls` before it reaches pretty output,
`--dry-run` or the readable self-log. JSON output needs nothing: JSON escapes control characters.

Escaped: C0 controls (tab and newline included: one record, one line), DEL, C1 controls, and the
Unicode bidirectional overrides that make text display in another order than it reads
("Trojan Source"). They become `\\xNN` / `\\uNNNN`, like Apache's own escaping.

`NO_COLOR` (https://no-color.org): set to a non-empty value, it disables colour everywhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: object) -> str:
    """`str(text)` with every character that a terminal would act on written as an escape."""
    value = text if isinstance(text, str) else str(text)
    if _UNSAFE.search(value) is None:  # the usual case: one scan, no copy
        return value
    return _UNSAFE.sub(_escape, value)


def colour_allowed(env: Mapping[str, str] | None = None) -> bool:
    """False when NO_COLOR is set to a non-empty value (in `env`, default os.environ)."""
    return not (os.environ if env is None else env).get("NO_COLOR", "")


def click_colour(env: Mapping[str, str] | None = None) -> bool | None:
    """The `color=` argument for click.echo/secho: False under NO_COLOR, else None (click decides:
    styles on a terminal, stripped otherwise)."""
    return None if colour_allowed(env) else False
