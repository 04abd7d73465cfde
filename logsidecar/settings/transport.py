"""What an OTLP transport can reach and carry, checked before anything is sent: endpoints
(`endpoint_problem`, `endpoint_credentials`) and headers (`HeaderName`, `HeaderValue`,
`header_problem`). Pure functions; errors never quote a header value (a secret).
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator

from logsidecar import redact
from logsidecar.settings.units import custom
from logsidecar.sinks.otlp_settings import is_grpc_name

_HEADER_NAME = re.compile(r"[0-9a-z_.\-]+")  # gRPC metadata keys (HTTP tokens accept them too)
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")  # printable ASCII: what gRPC metadata values allow
_BAD_HEADER_VALUE = (
    "the value has a character that HTTP headers and gRPC metadata cannot carry (a control "
    "character such as a newline, or a non-ASCII character); value not shown"
)


def _as_header_name(name: Any) -> str:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name.lower()):
        raise ValueError(
            f"header name {name!r} is not valid: use letters, digits, '-', '_' and '.' "
            "(HTTP headers and gRPC metadata)"
        )
    return name


def _as_header_value(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    if not _HEADER_VALUE.fullmatch(value):
        raise ValueError(_BAD_HEADER_VALUE)
    return value


HeaderName = Annotated[str, BeforeValidator(custom(_as_header_name))]
HeaderValue = Annotated[str, BeforeValidator(custom(_as_header_value))]


# gRPC targets grpcio resolves (`dns:///name:port`, `dns://resolver/name:port`) besides host:port.
_GRPC_SCHEMES = ("http", "https", "dns")


def endpoint_problem(endpoint: str, protocol: str | None) -> str | None:
    """Why no attempt could ever reach `endpoint` with `protocol` (None: grpc), or None: a scheme the
    protocol does not speak, no host, a port outside 1..65535. Found at start-up instead of retried
    forever (`htp:/host:4317`) or dialled on a wrapped-around port (`:99999`)."""
    http = protocol == "http/protobuf"
    name = "OTLP/HTTP" if http else "OTLP/gRPC"
    expected = (
        "must be an http:// or https:// URL, e.g. http://collector:4318"
        if http
        else "must be host:port, an http:// or https:// URL, or a gRPC name (dns:///host:port, "
        "ipv4:addr:port,addr:port), e.g. http://collector:4317"
    )
    shown = redact.redact(endpoint_credentials(endpoint)[0])
    text = endpoint.strip()
    bare = endpoint_credentials(text)[0]
    if not http and is_grpc_name(text) and not text.lower().startswith("dns:"):
        # ipv4:addr:port,addr:port / ipv6:[addr]:port,...: an address list grpc parses itself
        return None if text.partition(":")[2].strip() else f"invalid {name} endpoint {shown!r}: no address"
    if "://" not in text and (http or re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:(?!\d)", bare)):
        # No scheme: a gRPC host:port, unless what precedes the first ':' is not a port (`htp:/x`).
        return f"invalid {name} endpoint {shown!r}: {expected}"
    try:
        parts = urlsplit(text if "://" in text else f"grpc://{text}")
        scheme = parts.scheme.lower()
        if scheme == "dns" and not http:  # dns:[//resolver]/name:port: the target is the path
            parts = urlsplit("grpc://" + parts.path.lstrip("/"))
        elif "://" in text and scheme not in (("http", "https") if http else _GRPC_SCHEMES):
            return f"invalid {name} endpoint {shown!r}: {expected}"
        port = parts.port
    except ValueError:  # a port that is no number or out of range, an unbalanced [ in the host
        match = re.search(r":(\d+)(?:/|$)", text.partition("://")[2] or text)
        if match:
            return f"invalid {name} endpoint {shown!r}: port {match.group(1)} is not in 1..65535"
        return f"invalid {name} endpoint {shown!r}: {expected}"
    if not parts.hostname:
        return f"invalid {name} endpoint {shown!r}: no host; {expected}"
    if port == 0:
        return f"invalid {name} endpoint {shown!r}: port 0 is not in 1..65535"
    return None


def endpoint_credentials(endpoint: str) -> tuple[str, str | None]:
    """(the endpoint without credentials, the credentials `user:password` or None). The userinfo
    of a URL (`http://user:pw@host:4318`) or of a gRPC target without scheme (`user:pw@host:4317`)."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        scheme, rest = "", endpoint
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return endpoint, None
    userinfo, _, host = authority.rpartition("@")
    return f"{scheme}{sep}{host}{slash}{path}", userinfo


def header_problem(key: str, value: str) -> str | None:
    """Why `key: value` cannot be sent as an HTTP header or gRPC metadata, or None. Never quotes
    the value (a secret); a bad value would otherwise be refused at every request, or split the
    header (CR/LF) into another one."""
    try:
        _as_header_name(key)
    except ValueError as exc:
        return str(exc)
    if not _HEADER_VALUE.fullmatch(value):
        return f"header {key!r}: {_BAD_HEADER_VALUE}"
    return None
