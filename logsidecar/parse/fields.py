"""What each LogFormat directive means: its field kind, the regex fragment of what httpd writes
for it, how its text is converted and which attribute(s) it fills (`FieldSpec`, `compile_fields`).

What httpd writes, per directive (mod_log_config.c, mod_logio.c): `ap_escape_logitem` escapes `"`,
`\\` and non-printable/non-ASCII bytes in the text directives, never spaces (`%u`, `%U`, `%f`,
headers, notes, env can hold them); `%a %A %p %P %s %b %B %D %T %k %X %L %I %O %S`, times and
mod_ssl's values are not escaped. Any directive is `-` when its status condition is not met (the
CLF time, strftime times and `%q` take `-` then); `%b` and `%^FB` write `-` for nothing, `%B` `0`;
`%D %T` can be negative. A line ends with `\n` (a literal `\r` in the format is allowed before it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from logsidecar.parse.base import FormatError
from logsidecar.parse.logformat import Directive, Token

__all__ = [
    "CLF",
    "CLF_TIME",
    "CONN",
    "HEX",
    "NUM",
    "NUMBER",
    "QUOTED_TEXT",
    "RAW",
    "REQ",
    "STATUS_PAT",
    "TEXT",
    "TOKEN",
    "FieldSpec",
    "bounded_duration",
    "bounded_int",
    "compile_fields",
    "header_attribute",
    "strftime_regex",
]


# Regex fragments. Quoted free text: unrolled, escape-aware, single line.
# Possessive: the text can only end at a quote, so giving characters back never helps, and
# not backtracking keeps a long line of backslashes linear.
QUOTED_TEXT = r'[^"\\\n]*+(?:\\.[^"\\\n]*+)*+'
CLF_TIME = r"\[([^\]\n]*+)\]"
NUMBER = "-|[0-9]+"

_STRFTIME_PATTERNS = {
    "a": "[A-Za-z]+", "A": "[A-Za-z]+", "b": "[A-Za-z]+", "B": "[A-Za-z]+", "h": "[A-Za-z]+",
    "C": "[0-9][0-9]", "d": "[0-9][0-9]", "D": "[0-9][0-9]/[0-9][0-9]/[0-9][0-9]", "e": "[ 0-9][0-9]",
    "F": "-?[0-9]+-[0-9][0-9]-[0-9][0-9]", "g": "[0-9][0-9]", "G": "-?[0-9]+", "H": "[0-9][0-9]",
    "I": "[0-9][0-9]", "j": "[0-9]{3}", "k": "[ 0-9][0-9]", "l": "[ 0-9][0-9]", "m": "[0-9][0-9]",
    "M": "[0-9][0-9]", "n": r"\n", "p": "[A-Za-z]*", "P": "[A-Za-z]*", "R": "[0-9][0-9]:[0-9][0-9]",
    "s": "-?[0-9]+", "S": "[0-9][0-9]", "t": r"\t", "T": "[0-9][0-9]:[0-9][0-9]:[0-9][0-9]",
    "u": "[0-9]", "U": "[0-9][0-9]", "V": "[0-9][0-9]", "w": "[0-9]", "W": "[0-9][0-9]",
    "y": "[0-9][0-9]", "Y": "-?[0-9]+", "z": "[+-][0-9][0-9]:?[0-9][0-9]|Z", "Z": "[A-Za-z0-9+-]*",
    "%": "%",
    # The C locale's (httpd's unless a module calls setlocale): %c %x %X %r as glibc writes them.
    "c": "[A-Za-z]+ [A-Za-z]+ [ 0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9] -?[0-9]+",
    "x": "[0-9][0-9]/[0-9][0-9]/[0-9][0-9]", "X": "[0-9][0-9]:[0-9][0-9]:[0-9][0-9]",
    "r": "[0-9][0-9]:[0-9][0-9]:[0-9][0-9] [A-Za-z]*",
}  # fmt: skip


# Variable-width pieces and the characters they continue with: possessive unless what follows may
# start with one of those.
_VARIABLE_PIECES = {
    "[A-Za-z]+": "[A-Za-z]", "[A-Za-z]*": "[A-Za-z]", "-?[0-9]+": "[0-9]", "[A-Za-z0-9+-]*": "[A-Za-z0-9+-]",
}  # fmt: skip
_UNBOUNDED = re.compile(r"(?<!\\)[*+]|\{[0-9]*,\}")


def strftime_regex(fmt: str) -> str:
    """A regex (no groups) matching what C strftime writes for `fmt`, built so that its match never
    depends on backtracking across pieces: a variable-width piece is possessive unless a piece of
    fixed width that may start like it follows (`%Y%m`: the year gives back the month's digits,
    a bounded amount). A conversion glibc does not know it copies as it is (`%Q`); one followed by
    literal text is taken to end at that text, one at the end of the format to end where the field
    does (the LogFormat compiler guards each field with what follows it)."""
    pieces: list[tuple[str, bool]] = []  # (regex, is a conversion)
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            code = fmt[i + 1]
            if code in "EO" and i + 2 < len(fmt):  # %Ey, %Od ...: locale alternatives
                code = fmt[i + 2]
                i += 1
            i += 2
            known = _STRFTIME_PATTERNS.get(code)
            if known is not None:
                pieces.append((known, True))
            elif i >= len(fmt):
                pieces.append((r"[^\n]*?", True))
            elif fmt[i] != "%":
                pieces.append((f"[^{re.escape(fmt[i])}\\n]*+", True))
            else:
                pieces.append((re.escape("%" + code), False))
        else:
            pieces.append((re.escape(ch), False))
            i += 1
    out: list[str] = []
    for index, (piece, _) in enumerate(pieces):
        first = _VARIABLE_PIECES.get(piece)
        if first is not None and index + 1 < len(pieces):
            following, conversion = pieces[index + 1]
            # A literal is escaped text: `\\-` is `-`. Any conversion counts as one that may overlap.
            overlaps = conversion or re.fullmatch(first, following.replace("\\", "")) is not None
            if not overlaps or _UNBOUNDED.search(following):
                piece += "+"
        out.append(f"(?:{piece})")
    return "".join(out)


def header_attribute(name: str, response: bool = False) -> str:
    """OTel attribute for a request/response header: lowercase name, `_` kept as is."""
    lowered = name.strip().lower()
    if not response:
        if lowered == "user-agent":
            return "user_agent.original"
        return f"http.request.header.{lowered}"
    return f"http.response.header.{lowered}"


# Value kinds (how access.py converts the captured text).
# VALUE: text where `-` is a value, not an absence (%X writes `-` for "connection closed").
# USER: %u, which httpd writes as `""` for an empty user name (a user named `""` is `\"\"`).
STR, INT, HEXINT, STATUS, REQUEST, DURATION, PROTOCOL, QUERY, TIME, VALUE, USER = (
    "str", "int", "hexint", "status", "request", "duration", "protocol", "query", "time", "value", "user",
)  # fmt: skip
# Pattern kinds.
TOKEN, TEXT, NUM, STATUS_PAT, CLF, REQ, CONN, HEX, RAW = (
    "token", "text", "number", "status", "clf", "request", "conn", "hex", "raw",
)  # fmt: skip


@dataclass(slots=True)
class FieldSpec:
    """One directive's meaning. `keys` are the attributes it fills (REQUEST/PROTOCOL fill
    several); empty `keys` means the value is matched but not recorded (a duplicate)."""

    directive: Directive
    kind: str
    pattern_kind: str
    keys: tuple[str, ...]
    fallback: str | None = None
    priority: int = 1
    scale: float = 1.0  # DURATION: seconds per unit
    time_kind: str = ""  # TIME: clf | strftime | sec | msec | usec | msec_frac | usec_frac
    time_format: str = ""  # TIME strftime format
    time_end: bool = False
    raw_pattern: str = ""  # RAW pattern kind: the regex
    escapable: bool = True  # value may carry Apache \-escapes
    extra: dict[str, str] = field(default_factory=dict)


_REQUEST_KEYS = ("http.request.method", "url.original", "url.path", "url.query",
                 "network.protocol.name", "network.protocol.version")  # fmt: skip
_PROTOCOL_KEYS = ("network.protocol.name", "network.protocol.version")


def _spec_for(d: Directive) -> FieldSpec:  # noqa: C901 - one table, read top to bottom
    name, arg = d.name, d.argument
    if name == "a":
        if arg == "c":
            return FieldSpec(d, STR, TOKEN, ("network.peer.address",), "apache.peer_address", escapable=False)
        return FieldSpec(d, STR, TOKEN, ("client.address",), "apache.remote_ip", priority=0, escapable=False)
    if name == "h":
        if arg == "c":
            return FieldSpec(d, STR, TOKEN, ("apache.peer_host",), None, escapable=False)
        return FieldSpec(d, STR, TOKEN, ("client.address",), "apache.remote_host", escapable=False)
    if name == "A":
        return FieldSpec(d, STR, TOKEN, ("network.local.address",), None, escapable=False)
    if name in "bB":
        return FieldSpec(d, INT, NUM, ("http.response.body.size",), None, escapable=False)
    if name == "C":
        return FieldSpec(d, STR, TEXT, (f"apache.cookie.{arg}",))
    if name == "D":
        return FieldSpec(
            d, DURATION, NUM, ("http.server.request.duration",), None, priority=0, scale=1e-6, escapable=False
        )
    if name == "T":
        unit = (arg or "s").lower()
        scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6}[unit]
        prio = {"us": 0, "ms": 1, "s": 2}[unit]
        return FieldSpec(
            d,
            DURATION,
            NUM,
            ("http.server.request.duration",),
            None,
            priority=prio,
            scale=scale,
            escapable=False,
        )
    if name == "e":
        return FieldSpec(d, STR, TEXT, (f"apache.env.{arg}",))
    if name == "f":
        return FieldSpec(d, STR, TEXT, ("apache.filename",))
    if name == "H":
        return FieldSpec(d, PROTOCOL, TOKEN, _PROTOCOL_KEYS, None, priority=2)
    if name == "i":
        assert arg is not None
        return FieldSpec(d, STR, TEXT, (header_attribute(arg),))
    if name == "k":
        return FieldSpec(d, INT, NUM, ("apache.keepalive_requests",), escapable=False)
    if name == "l":
        return FieldSpec(d, STR, TOKEN, ("apache.remote_logname",))
    if name == "L":
        return FieldSpec(d, STR, TOKEN, ("apache.request_log_id",), escapable=False)
    if name == "m":
        return FieldSpec(d, STR, TOKEN, ("http.request.method",), None, priority=2)
    if name == "n":
        return FieldSpec(d, STR, TEXT, (f"apache.note.{arg}",))
    if name == "o":
        assert arg is not None
        return FieldSpec(d, STR, TEXT, (header_attribute(arg, response=True),))
    if name == "p":
        if arg and arg.lower() == "local":
            return FieldSpec(d, INT, NUM, ("network.local.port",), escapable=False)
        if arg and arg.lower() == "remote":
            return FieldSpec(d, INT, NUM, ("client.port",), escapable=False)
        return FieldSpec(d, INT, NUM, ("server.port",), escapable=False)
    if name == "P":
        if arg and arg[0] == "h" and arg.lower() == "hextid":  # httpd: hex only for a lowercase 'h'
            return FieldSpec(d, HEXINT, HEX, ("thread.id",), escapable=False)
        if arg and arg.lower() in ("tid", "hextid"):
            return FieldSpec(d, INT, NUM, ("thread.id",), escapable=False)
        return FieldSpec(d, INT, NUM, ("process.pid",), escapable=False)
    if name == "q":
        return FieldSpec(d, QUERY, TEXT, ("url.query",), "apache.url_query", priority=2)
    if name == "r":
        return FieldSpec(d, REQUEST, REQ, _REQUEST_KEYS, None, priority=0)
    if name == "R":
        return FieldSpec(d, STR, TEXT, ("apache.handler",))
    if name == "s":
        if d.modifier == ">":
            return FieldSpec(
                d,
                STATUS,
                STATUS_PAT,
                ("http.response.status_code",),
                "apache.original_status_code",
                priority=0,
                escapable=False,
            )
        return FieldSpec(
            d,
            STATUS,
            STATUS_PAT,
            ("http.response.status_code",),
            "apache.original_status_code",
            escapable=False,
        )
    if name == "t":
        return _time_spec(d)
    if name == "u":
        return FieldSpec(d, USER, TOKEN, ("user.name",))
    if name == "U":
        return FieldSpec(d, STR, TEXT, ("url.path",), "apache.url_path", priority=2)
    if name == "v":
        return FieldSpec(d, STR, TEXT, ("server.address",), "apache.canonical_server_name")
    if name == "V":
        return FieldSpec(d, STR, TEXT, ("server.address",), "apache.server_name", priority=2)
    if name == "X":
        # `-` is "closed after the response", a value; only a status condition makes it an absence.
        return FieldSpec(
            d, STR if d.conditions else VALUE, CONN, ("apache.connection_status",), escapable=False
        )
    if name == "I":
        return FieldSpec(d, INT, NUM, ("apache.bytes_received",), escapable=False)
    if name == "O":
        return FieldSpec(d, INT, NUM, ("apache.bytes_sent",), escapable=False)
    if name == "S":
        return FieldSpec(d, INT, NUM, ("apache.bytes_transferred",), escapable=False)
    # mod_ssl's values are written as they are, not escaped: a DN's `\,` must stay as it is.
    if name == "x":
        if arg == "SSL_CIPHER":
            return FieldSpec(d, STR, TOKEN, ("tls.cipher",), f"apache.ssl.{arg}", escapable=False)
        return FieldSpec(d, STR, TEXT, (f"apache.ssl.{arg}",), escapable=False)
    if name == "c":
        if arg == "cipher":
            return FieldSpec(d, STR, TOKEN, ("tls.cipher",), f"apache.ssl.{arg}", escapable=False)
        return FieldSpec(d, STR, TEXT, (f"apache.ssl.{arg}",), escapable=False)
    if name == "^ti":
        return FieldSpec(d, STR, TEXT, (f"apache.request_trailer.{(arg or '').lower()}",))
    if name == "^to":
        return FieldSpec(d, STR, TEXT, (f"apache.response_trailer.{(arg or '').lower()}",))
    if name == "^FB":  # mod_logio: microseconds from the request to the first byte of the response
        return FieldSpec(d, DURATION, NUM, ("apache.time_to_first_byte",), None, scale=1e-6, escapable=False)
    raise FormatError(f"unsupported LogFormat directive {d.source!r}")  # unreachable: tokenize validated


def _time_spec(d: Directive) -> FieldSpec:
    arg = d.argument
    # As httpd's log_request_time: no argument, `{}`, `{begin}`, `{end}`, `{begin:}` and `{end:}` all
    # write the CLF time (`end` at the end of the request).
    end = arg is not None and (arg == "end" or arg.startswith("end:"))
    body = (arg or "").removeprefix("begin:").removeprefix("end:")
    if body in ("", "begin", "end"):
        return FieldSpec(d, TIME, CLF, (), time_kind="clf", time_end=end, escapable=False)
    if body == "%s":  # strftime's epoch seconds: Python's strptime has no %s
        body = "sec"
    if body in ("sec", "msec", "usec", "msec_frac", "usec_frac"):
        return FieldSpec(d, TIME, NUM, (), time_kind=body, time_end=end, escapable=False)
    return FieldSpec(
        d, TIME, RAW, (), time_kind="strftime", time_format=body, time_end=end,
        raw_pattern=strftime_regex(body), escapable=False,
    )  # fmt: skip


def compile_fields(tokens: list[Token]) -> list[FieldSpec]:
    """Field specs in format order, with attribute-name collisions resolved: the directive
    with the best priority (then the earliest) keeps the OTel key; the others take their
    Apache fallback key or, for pure duplicates, record nothing."""
    specs = [_spec_for(t) for t in tokens if isinstance(t, Directive)]
    claimed: set[str] = set()
    for spec in sorted(specs, key=lambda s: (s.priority, s.directive.position)):
        if not spec.keys:
            continue
        if claimed.isdisjoint(spec.keys):
            claimed.update(spec.keys)
        elif spec.fallback and spec.fallback not in claimed:
            claimed.add(spec.fallback)
            spec.keys = (spec.fallback,)
            if spec.kind in (PROTOCOL, QUERY):
                spec.kind = STR
        else:
            spec.keys = ()
    return specs


_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)


def bounded_int(text: str, base: int = 10) -> int | str:
    """An integer field's value. Beyond 64 bits (what OTLP and JSON encoders take) the digits are
    kept as text, so one absurd line cannot make a batch unencodable."""
    try:
        value = int(text, base)
    except ValueError:  # beyond Python's int/str conversion limit (4300 digits)
        return text
    return value if _INT64_MIN <= value <= _INT64_MAX else text


def bounded_duration(text: str, divisor: int) -> float | str:
    """A duration field's value in seconds (`text` in units of 1/divisor s); beyond 64 bits the
    digits are kept as text, as `bounded_int` does (a float would turn them into `inf`)."""
    value = bounded_int(text)
    return value / divisor if isinstance(value, int) else value
