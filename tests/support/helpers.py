"""Small helpers shared by every test layer.

`wait_for` is the one way tests wait: poll a predicate until it holds or a deadline passes, then
fail with a message that says what was awaited. Never a bare sleep as synchronisation.
`wait_for_async` is the same for code running inside an event loop. Then small file helpers:
`append_lines`, `read_lines`, `line_count`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class WaitTimedOut(AssertionError, TimeoutError):
    """What `wait_for` raises: a failed test condition (AssertionError) that is also a timeout, so
    code that catches either one (a harness adding context, a benchmark counting losses) sees it."""


def _describe(predicate: Callable[[], object], message: str | None) -> str:
    return message or getattr(predicate, "__qualname__", None) or repr(predicate)


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | None = None,
) -> T:
    """Call `predicate` until it returns a truthy value, and return that value. Raises
    AssertionError after `timeout` seconds, naming `message` (or the predicate). The predicate is
    evaluated once more after the deadline, so a slow machine never fails a condition that holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            value = predicate()
            if value:
                return value
            raise WaitTimedOut(f"condition not met within {timeout}s: {_describe(predicate, message)}")
        time.sleep(interval)


async def wait_for_async(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | None = None,
) -> T:
    """`wait_for` for coroutines: yields to the event loop between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            value = predicate()
            if value:
                return value
            raise WaitTimedOut(f"condition not met within {timeout}s: {_describe(predicate, message)}")
        await asyncio.sleep(interval)


def append_lines(path: Path, lines: list[str]) -> None:
    """Append each line and a newline to `path` in one write (created when missing)."""
    with path.open("a") as handle:
        handle.write("".join(line + "\n" for line in lines))


def read_lines(path: Path) -> list[bytes]:
    """The complete lines of a file (bytes, without newlines); a partial last line is left out,
    a missing file has no lines."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return data.split(b"\n")[:-1]


def line_count(path: Path) -> int:
    """How many newline-terminated lines `path` holds (0 when it does not exist)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0
