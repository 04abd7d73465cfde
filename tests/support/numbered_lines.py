"""Numbered Apache lines for tests that follow a log and count what arrives: line `n` of an access
or error log, distinct for every n (its number is in the path and the size), valid for its format."""

from __future__ import annotations

ACCESS = '127.0.0.1 - - [28/Nov/2026:03:00:{s:02d} +0000] "GET /p/{n} HTTP/1.1" 200 {n} "-" "curl/8"'
ERROR = "[Sat Nov 28 03:00:{s:02d}.000001 2026] [core:error] [pid 7] AH00037: failure {n}"


def access_line(n: int) -> str:
    return ACCESS.format(s=n % 60, n=n)


def error_line(n: int) -> str:
    return ERROR.format(s=n % 60, n=n)
