"""Apache's `%r` (the request line, `METHOD TARGET PROTOCOL`) → OpenTelemetry attributes.

Kept apart from the LogFormat compiler because two writers use it: the record builder
(`access.py`) and the fast-path writers (`fastpath/`), which turn a request line into their output
without building a record.
"""

from __future__ import annotations

import re
from typing import Any

from logsidecar.parse.escape import unescape_log_value
from logsidecar.record import INVALID_UTF8

__all__ = ["COMMON_METHODS", "PROTOCOL_TABLE", "protocol_info", "request_attributes"]

# Methods a writer may handle without the token check (all are HTTP tokens); others take the general path.
COMMON_METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
                  "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK")  # fmt: skip


def protocol_info(text: str) -> tuple[str, str] | None:
    """'HTTP/1.1' → ('http', '1.1'); a protocol without a version → (name, '')."""
    name, _, version = text.partition("/")
    if not name:
        return None
    return name.lower(), version


PROTOCOL_TABLE = {
    p: protocol_info(p) for p in ("HTTP/0.9", "HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/2", "HTTP/3")
}


_METHOD_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
# `NAME/VERSION`. httpd cuts a refused request line after its second space (`GET /a b?x` for
# `GET /a b?x HTTP/1.1`): without this check the `b?x` would pass for the protocol.
_PROTOCOL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*/[0-9A-Za-z.]+")


def request_attributes(line: str) -> dict[str, Any]:
    """A `%r` value (Apache-escaped) → its attributes. `METHOD TARGET [PROTOCOL]` gives
    http.request.method, url.original, url.path, url.query, network.protocol.*; anything else
    (a TLS handshake, a method alone, spaces in the target) is kept whole as apache.request_line."""
    out: dict[str, Any] = {}
    parts = line.split(" ")
    if (
        2 <= len(parts) <= 3
        and _METHOD_TOKEN.fullmatch(parts[0])
        and parts[1]
        and (len(parts) == 2 or parts[2] in PROTOCOL_TABLE or _PROTOCOL.fullmatch(parts[2]))
    ):
        target, ok = unescape_log_value(parts[1])
        out["http.request.method"] = parts[0]
        out["url.original"] = target
        path, sep, query = target.partition("?")
        out["url.path"] = path
        if sep:
            out["url.query"] = query
        if len(parts) == 3:
            protocol = PROTOCOL_TABLE.get(parts[2]) or protocol_info(parts[2])
            if protocol:
                out["network.protocol.name"] = protocol[0]
                if protocol[1]:
                    out["network.protocol.version"] = protocol[1]
    else:
        out["apache.request_line"], ok = unescape_log_value(line)
    if not ok:
        out[INVALID_UTF8] = True
    return out
