"""An emitter of Python source: generated code written as statements and blocks, not f-strings.

The record builder (`access_builder.py`) and the fast-path writers (`fastpath/`) are Python
source generated per format and compiled once. `Emitter` keeps the indentation: `line()` writes
one statement at the current depth, `with emit.block("if x:")` writes the header and indents what
is written inside. Names and values enter the source through `repr()` (`literal`), never as
user text spliced into code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Emitter"]

INDENT = "    "


class Emitter:
    """Lines of Python source at an indentation depth (see the module docstring)."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._depth = 0

    def line(self, *statements: str) -> None:
        """Each statement on its own line at the current depth."""
        for statement in statements:
            self._lines.append(INDENT * self._depth + statement)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        """`header` (ending with a colon), then what the `with` body writes, one level deeper."""
        self.line(header)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def source(self) -> str:
        return "\n".join(self._lines) + "\n"

    def compile(self, function: str, namespace: dict[str, Any], filename: str) -> Callable[..., Any]:
        """Run the source in `namespace` (the generated code's globals) and return `function`."""
        exec(compile(self.source(), filename, "exec"), namespace)  # noqa: S102 - our own generated source
        return namespace[function]  # type: ignore[no-any-return]
