"""mod_log_config LogFormat strings → tokens → one compiled line regex plus per-field semantics.

Responsibility: understand a LogFormat string exactly as httpd does (`parse_log_item` and
`parse_log_misc_string` in mod_log_config.c) and describe, for every directive, the regex that
matches what httpd writes, how the captured text is converted and which attribute it becomes.
`access.py` turns that description into a fast batch parser; nothing here touches log lines.

Accepted input (`normalize_format_text`): a bare format (`%h %l "%r"`), a quoted one with
httpd.conf escaping (`"%h \\"%r\\""`, optionally followed by a nickname; a quoted string counts as
httpd.conf quoting only when it holds `\\"` or is followed by a nickname, so `"%r"` keeps its
quotes), or a pasted directive line (`LogFormat "..." nickname`, `CustomLog logs/access.log "..."`).

Tokenizer rules (as httpd 2.4.x `parse_log_item`): `%%` is a literal percent; after `%` come, in any
order, `!` (toggles the negation), `<` / `>` (original / final request), comma-separated status
codes (conditions; any number, as httpd) and `{argument}`, then one directive letter (`^ti`, `^to`
and mod_logio's `^FB` are three characters). The `%p`, `%P` and `%T` arguments are
case-insensitive, as in httpd. In literal text `\\\\`,
`\\n`, `\\t`, `\\r` are escapes; any other backslash is kept. Invalid directives raise
`FormatError` with the format shown and a caret under the bad directive.

What httpd writes, per directive (mod_log_config.c, mod_logio.c): `ap_escape_logitem` escapes `"`,
`\\` and non-printable/non-ASCII bytes in the text directives, never spaces (`%u`, `%U`, `%f`,
headers, notes, env can hold them); `%a %A %p %P %s %b %B %D %T %k %X %L %I %O %S`, times and
mod_ssl's values are not escaped. Any directive is `-` when its status condition is not met (the
CLF time, strftime times and `%q` take `-` then); `%b` and `%^FB` write `-` for nothing, `%B` `0`;
`%D %T` can be negative. A line ends with `\n` (a literal `\r` in the format is allowed before it).

Regex invariants: every field pattern is confined to one line (never matches `\\n`); quoted
free-text fields use an unrolled escape-aware pattern (`[^"\\\\]*(?:\\\\.[^"\\\\]*)*`) that cannot
backtrack catastrophically; the lenient variant (tried only on lines the strict one rejects)
matches quoted text lazily so that unescaped quotes written by third-party tools still parse.
Linear time (issue 13): a field whose pattern could match in more than one way is atomic and
guarded by what follows it (`field_pattern`, `field_guard`): it takes its first match that the next
literal and the start of the next field accept, and is never re-entered, so every regex makes one
forward pass over a line, matching or not. Ambiguous neighbours (two free-text fields separated by a
space) are therefore split where the first separator followed by a plausible next field is, not
wherever the rest of the line would fit; digits are `[0-9]`, never `\\d` (which takes `７`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from logsidecar.parse.base import FormatError

__all__ = [
    "ARGUMENT_CHOICES",
    "DIRECTIVE_NAMES",
    "Directive",
    "FieldSpec",
    "Literal",
    "compile_fields",
    "field_guard",
    "field_pattern",
    "line_regex",
    "literal_text",
    "may_backtrack",
    "NEEDS_ARGUMENT",
    "next_is_text",
    "header_attribute",
    "normalize_format_text",
    "strftime_regex",
    "tokenize",
]


@dataclass(frozen=True, slots=True)
class Literal:
    text: str
    position: int


@dataclass(frozen=True, slots=True)
class Directive:
    """One `%...` item. `name` is the letter(s) (`h`, `s`, `i`, `^ti`)."""

    name: str
    argument: str | None
    position: int
    source: str  # the directive as written, e.g. '%>s' or '%400,501{User-agent}i'
    modifier: str = ""  # '<', '>' or ''
    conditions: tuple[int, ...] = ()
    negated: bool = False


Token = Literal | Directive

# Directive letters httpd knows: mod_log_config's, mod_logio's (%I %O %S) and mod_ssl's
# (%{VAR}x for SSL variables, %{name}c for its older cipher items), as Debian's ssl_request.log uses.
_LETTERS = set("aAbBCDefhHiklLmnopPqrRstTuUvVXIOScx")
_ASCII_DIGITS = frozenset("0123456789")  # str.isdigit() also takes `７`
#: Every directive the compiler knows (its letters, and the three-character ones), in table order;
#: NEEDS_ARGUMENT and ARGUMENT_CHOICES say which take a `{...}`.
DIRECTIVE_NAMES = (*sorted(_LETTERS), "^ti", "^to", "^FB")
NEEDS_ARGUMENT = {"C": "cookie name", "e": "variable name", "i": "header name", "n": "note name",
                   "o": "header name", "^ti": "trailer name", "^to": "trailer name",
                   "x": "SSL variable name", "c": "SSL item name"}  # fmt: skip
ARGUMENT_CHOICES = {
    "p": ("canonical", "local", "remote"),
    "P": ("pid", "tid", "hextid"),
    "T": ("s", "ms", "us"),
}


def _caret_message(fmt: str, position: int, message: str) -> str:
    return f"{message}\n  {fmt}\n  {' ' * position}^"


def normalize_format_text(text: str) -> str:
    """Strip a pasted `LogFormat`/`CustomLog` line or httpd.conf quoting down to the format."""
    text = text.strip()
    words = _conf_words(text)
    if words and words[0][0].lower() in ("logformat", "customlog") and not words[0][1]:
        directive = words[0][0].lower()
        args = words[1:]
        if directive == "customlog":
            args = args[1:]  # skip the file / pipe
        if not args:
            raise FormatError(f"{words[0][0]} line has no format string: {text!r}")
        return args[0][0]
    # A quoted string is httpd.conf quoting only when it shows it: `\"` escapes inside, or a
    # nickname after it. Otherwise (`"%r"`) the quotes are part of the format.
    if (
        text.startswith('"')
        and words
        and words[0][1]
        and ('\\"' in text or (len(words) == 2 and "%" not in words[1][0]))
    ):
        return words[0][0]
    return text


def _conf_words(text: str) -> list[tuple[str, bool]]:
    """Split like httpd's ap_getword_conf: (word, was_quoted). Inside quotes only `\\<quote>`
    is an escape (the backslash is dropped); everything else is kept for the format parser."""
    words: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        quote = text[i] if text[i] in "\"'" else ""
        if quote:
            i += 1
            out: list[str] = []
            while i < n and text[i] != quote:
                if text[i] == "\\" and i + 1 < n and text[i + 1] == quote:
                    out.append(quote)
                    i += 2
                else:
                    out.append(text[i])
                    i += 1
            i += 1  # closing quote (or end)
            words.append(("".join(out), True))
        else:
            start = i
            while i < n and not text[i].isspace():
                i += 1
            words.append((text[start:i], False))
    return words


def tokenize(fmt: str) -> list[Token]:
    """Split a LogFormat string into literals and directives, validating each directive."""
    tokens: list[Token] = []
    literal: list[str] = []
    literal_start = 0
    i, n = 0, len(fmt)

    def flush(at: int) -> None:
        nonlocal literal_start
        if literal:
            tokens.append(Literal("".join(literal), literal_start))
            literal.clear()
        literal_start = at

    while i < n:
        ch = fmt[i]
        if ch == "\\":
            nxt = fmt[i + 1] if i + 1 < n else ""
            mapped = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}.get(nxt)
            if mapped is not None:
                literal.append(mapped)
                i += 2
            else:
                literal.append("\\")
                i += 1
            continue
        if ch != "%":
            literal.append(ch)
            i += 1
            continue
        if i + 1 < n and fmt[i + 1] == "%":
            literal.append("%")
            i += 2
            continue
        flush(i)
        directive, i = _parse_directive(fmt, i)
        tokens.append(directive)
        literal_start = i
    flush(i)
    return tokens


def _parse_directive(fmt: str, start: int) -> tuple[Directive, int]:
    i, n = start + 1, len(fmt)
    negated, modifier, argument = False, "", None
    conditions: list[int] = []
    while True:
        if i >= n:
            raise FormatError(
                _caret_message(fmt, start, f"incomplete LogFormat directive {fmt[start:]!r} at end of format")
            )
        ch = fmt[i]
        if ch == "!":
            negated = not negated  # httpd toggles: `%!!200s` is `%200s`
            i += 1
        elif ch in "<>":
            modifier = ch
            i += 1
        elif ch == ",":
            i += 1
        elif ch in _ASCII_DIGITS:
            j = i
            while j < n and fmt[j] in _ASCII_DIGITS:
                j += 1
            conditions.append(int(fmt[i:j]))
            i = j
        elif ch == "{":
            close = fmt.find("}", i + 1)
            if close < 0:
                raise FormatError(
                    _caret_message(
                        fmt, start, f"unclosed '{{' in LogFormat directive starting {fmt[start:]!r}"
                    )
                )
            argument = fmt[i + 1 : close]
            i = close + 1
        elif ch == "^":
            name = fmt[i + 1 : i + 3]
            if name not in ("ti", "to", "FB"):
                raise FormatError(
                    _caret_message(
                        fmt,
                        start,
                        f"invalid LogFormat directive {fmt[start : i + 3]!r}: '%^' must be followed by 'ti', 'to' or 'FB'",
                    )
                )
            return _validated(fmt, start, "^" + name, argument, modifier, conditions, negated, i + 3), i + 3
        else:
            if ch not in _LETTERS:
                raise FormatError(
                    _caret_message(
                        fmt,
                        start,
                        f"invalid LogFormat directive {fmt[start : i + 1]!r}: unknown directive letter {ch!r}",
                    )
                )
            return _validated(fmt, start, ch, argument, modifier, conditions, negated, i + 1), i + 1


def _validated(
    fmt: str, start: int, name: str, argument: str | None, modifier: str,
    conditions: list[int], negated: bool, end: int,
) -> Directive:  # fmt: skip
    source = fmt[start:end]
    if name in NEEDS_ARGUMENT and not argument:
        raise FormatError(
            _caret_message(
                fmt,
                start,
                f"invalid LogFormat directive {source!r}: %{name} needs a {{{NEEDS_ARGUMENT[name]}}}",
            )
        )
    choices = ARGUMENT_CHOICES.get(name)
    # httpd compares these case-insensitively (`%{MS}T`); an empty argument is the default.
    if choices and argument and argument.lower() not in choices:
        raise FormatError(
            _caret_message(
                fmt,
                start,
                f"invalid LogFormat directive {source!r}: %{{{argument}}}{name} must be one of {', '.join(choices)}",
            )
        )
    # Status conditions are not range-checked: httpd takes any number (one that is no status
    # simply never matches, and the field is then `-`).
    return Directive(name, argument, start, source, modifier, tuple(conditions), negated)


# --- field semantics -------------------------------------------------------------------------

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


def field_pattern(
    spec: FieldSpec,
    before: str,
    after: str | None,
    lenient: bool,
    fast: bool = False,
    next_is_text: bool = False,
    guard: str | None = None,
) -> str:
    """The capture pattern for one field. `before`/`after` are the adjacent literal texts
    (`after` None when the field ends the format, '' when another directive follows).

    Three flavours: strict (exact for what httpd writes, escape-aware, never crosses a newline),
    lenient (quoted text matched lazily, for logs with unescaped quotes) and fast (for the batch
    regex: single-character negations such as `[^"]*+`, which sre scans several times faster
    than a character set; not escape-aware and may cross a newline, so callers re-check lines
    holding `\\"` with the strict regex and detect line-spanning matches by counting). Fast fields
    are possessive, and a free-text field ended by a literal never crosses a newline: otherwise a
    line that does not match scans (and backtracks over) the rest of the batch, quadratic in the
    batch size (vhost_combined's leading `%v:` parsed garbage at ~600 lines/s that way).

    `guard` (see `field_guard`) is what must follow the field. Given one, a field whose pattern
    could match in more than one way is made atomic: it takes its first match (in the pattern's
    own order: shortest for a lazy one, longest for a greedy one) that the guard accepts, and
    is never re-entered when something later fails. That keeps every line, matching or not, one
    forward pass: without it, k fields that can each end at any of n separators cost O(n^k)
    (issue 13: one 16 KB line of spaces took 2 s with two unquoted headers before `%l %u`)."""
    pattern = _field_pattern(spec, before, after, lenient, fast, next_is_text)
    if spec.directive.conditions:
        # httpd writes `-` for a directive whose status condition is not met. The other patterns
        # take it already (a token, a number's absence, free text); the CLF time is then captured
        # with its brackets (`parse_clf_time` takes both forms).
        if spec.pattern_kind == CLF:
            pattern = r"(-|\[[^\]\n]*+\])"
        elif spec.pattern_kind == RAW or spec.directive.name == "q":
            pattern = f"(-|{pattern[1:-1]})"
    if guard is not None and may_backtrack(pattern):
        return f"(?>{pattern}(?={guard}))"
    return pattern


# A character class or an escape (one character to the quantifier check), and a quantifier.
_ATOM = re.compile(r"\\.|\[\^?\]?(?:\\.|[^\]])*\]")
_QUANTIFIER = re.compile(r"(?:[*+?]|\{[0-9,]*\})[+?]?")


def may_backtrack(pattern: str) -> bool:
    """Whether a regex can match the same text in more than one way, i.e. holds an alternation or
    a quantifier that is neither possessive nor of a fixed count (`{3}`)."""
    bare = _ATOM.sub("x", pattern)
    for group_open in ("(?:", "(?>", "(?!", "(?=", "(?<!", "(?<="):
        bare = bare.replace(group_open, "(")
    if "|" in bare:
        return True
    return any(
        not (q.group().endswith("+") and len(q.group()) > 1) and not re.fullmatch(r"\{[0-9]+\}", q.group())
        for q in _QUANTIFIER.finditer(bare)
    )


def field_guard(tokens: list[Token], index: int, specs: list[FieldSpec]) -> str:
    """A regex for what must follow the directive at `index`: the literal after it and how the
    next field can start (`\\r?$` at the end of the line)."""
    following = index + 1
    if following >= len(tokens):
        return r"\r?$"
    token = tokens[following]
    if isinstance(token, Literal):
        return re.escape(token.text) + _field_start(tokens, following + 1, specs)
    return _field_start(tokens, following, specs)


def _field_start(tokens: list[Token], index: int, specs: list[FieldSpec]) -> str:
    """A regex for how the field at `index` starts ('' when it could start with anything)."""
    if index >= len(tokens):
        return r"\r?$"
    token = tokens[index]
    if isinstance(token, Literal):
        return re.escape(token.text)
    spec = next(s for s in specs if s.directive is token)
    start, may_be_empty = _start_class(spec)
    if start is None:
        return ""
    if may_be_empty:
        return f"(?:{start}|{field_guard(tokens, index, specs)})"
    return start


_START_CLASSES = {NUM: "[0-9-]", STATUS_PAT: "[0-9-]", CONN: "[-+X]", HEX: "[0-9A-Fa-f-]", CLF: r"\["}


_CLASS_ESCAPE_OR_QUANTIFIER = re.compile(r"(\\.|\[\^?\]?(?:\\.|[^\]])*\])|([*+])([+?]?)")
# A guard looks this far at most into a variable-width piece: what it costs per position is bounded.
_GUARD_REACH = 32


def _capped(pattern: str) -> str:
    """`pattern` with every unbounded repetition capped at _GUARD_REACH, for use in a guard."""

    def cap(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(1)
        low = "1" if match.group(2) == "+" else "0"
        return f"{{{low},{_GUARD_REACH}}}{match.group(3)}"

    return _CLASS_ESCAPE_OR_QUANTIFIER.sub(cap, pattern)


def _start_class(spec: FieldSpec) -> tuple[str | None, bool]:
    """(a class for the first character of what the field matches, or None when any, and whether
    it may match nothing)."""
    dash = "-" if spec.directive.conditions else ""  # the `-` of an unmet status condition
    if spec.directive.name == "q":
        return f"[?{dash}]", True
    if spec.pattern_kind == TOKEN and not spec.escapable:  # escapable ones may be quoted, empty
        return r"\S", False
    if spec.pattern_kind == RAW:  # the whole time, so that text before it stops at a time only
        start: str | None = _capped(spec.raw_pattern)
    else:
        start = _START_CLASSES.get(spec.pattern_kind)
    if start is not None and dash:
        start = f"(?:{start}|-)"
    return start, False


def _field_pattern(
    spec: FieldSpec, before: str, after: str | None, lenient: bool, fast: bool, next_is_text: bool
) -> str:
    kind = spec.pattern_kind
    quoted = before.endswith('"') and (after or "").startswith('"')
    if spec.directive.name == "q":
        # httpd writes '?query' or nothing; the query itself has no raw whitespace.
        return r'((?:\?(?:[^\s"\\]|\\.)*)?)'
    if kind in (TEXT, REQ):
        if after == "" and next_is_text:
            # Two free-text fields with nothing between them are ambiguous anyway; letting both
            # float would make a non-matching line cost O(n^2). The later field takes it all.
            return "()"
        if lenient:
            body = r"[^\n]*" if after is None else r"[^\n]*?"
        elif fast:
            if quoted:
                body = r'[^"]*+'
            elif after is None:
                body = r".*"
            elif after:
                body = f"[^{re.escape(after[0])}\\n]*+"
            else:
                body = r".*?"
        elif quoted:
            body = QUOTED_TEXT
        elif after is None:
            body = r"[^\n]*+"
        elif after:
            body = f"[^{re.escape(after[0])}\\n]*+"
        else:
            body = r"[^\n]*?"
        return f"({body})"  # %r is captured whole: a cached split in Python beats nested groups
    if kind == TOKEN and quoted and spec.escapable:
        # A quoted token-like field (`"%u"`): httpd escapes its quotes, not its spaces; an empty
        # user name it writes as `""` (so `""""` here).
        if lenient:
            return r"([^\n]*?)"
        return r'([^"]*+)' if fast else f'(""|{QUOTED_TEXT})'

    if kind == TOKEN and spec.directive.name == "u" and not fast and after and after[0] == " ":
        # httpd does not escape spaces, and a Basic-auth user name may hold some ("john doe"): the
        # strict pattern lets the user run up to the literal that follows it. The fast pattern
        # stays a token; a line with such a user is one it rejects and the strict one re-matches.
        # Not `- x`: that is how a vhost_combined line (one field more) would read as combined.
        return r"(-|(?!- )[^ \n](?:[^\n]*?[^ \n])??)"
    if kind == TOKEN:
        # Tokens stay `\S+` even when lenient: many lazy fields would backtrack polynomially.
        # Possessive when the next literal starts with a space: the token cannot run into it.
        if after and after[0] == " ":
            return r"([^ ]++)" if fast else r"([^ \n]++)"
        if after is None or (after and after[0].isspace()):
            return r"(\S++)"
        return r"(\S+?)" if not after else r"(\S+)"
    if kind == NUM:
        if spec.kind == DURATION:  # end - start on the wall clock: negative after a clock step back
            return r"(-|-?[0-9]+)"
        return f"({NUMBER})"
    if kind == STATUS_PAT:
        return r"([0-9]{3}|-)"
    if kind == CLF:
        return r"\[([^\]]*+)\]" if fast else CLF_TIME
    if kind == CONN:
        return r"([-+X])"
    if kind == HEX:
        return r"(-|[0-9A-Fa-f]+)"
    if kind == RAW:
        return f"({spec.raw_pattern})"
    raise AssertionError(kind)


def line_regex(tokens: list[Token], specs: list[FieldSpec], lenient: bool, fast: bool = False) -> str:
    """The whole-line regex body (no anchors): literals escaped, one capture per field."""
    patterns = iter(field_patterns(tokens, specs, lenient, fast))
    return "".join(re.escape(t.text) if isinstance(t, Literal) else next(patterns) for t in tokens)


def field_patterns(
    tokens: list[Token], specs: list[FieldSpec], lenient: bool, fast: bool = False
) -> list[str]:
    """Each field's capture pattern, in field order (see `field_pattern`)."""
    out: list[str] = []
    spec_iter = iter(specs)
    for index, token in enumerate(tokens):
        if isinstance(token, Literal):
            continue
        before = literal_text(tokens, index - 1)
        if index + 1 < len(tokens):
            nxt = tokens[index + 1]
            after: str | None = nxt.text if isinstance(nxt, Literal) else ""
        else:
            after = None
        out.append(
            field_pattern(
                next(spec_iter),
                before,
                after,
                lenient,
                fast,
                next_is_text(tokens, index, specs),
                field_guard(tokens, index, specs),
            )  # fmt: skip
        )
    return out


def next_is_text(tokens: list[Token], index: int, specs: list[FieldSpec]) -> bool:
    """Whether the token after `index` is a free-text directive (TEXT or REQ pattern)."""
    if index + 1 >= len(tokens) or not isinstance(tokens[index + 1], Directive):
        return False
    nxt = tokens[index + 1]
    spec = next(s for s in specs if s.directive is nxt)
    return spec.pattern_kind in (TEXT, REQ) and spec.directive.name != "q"


def literal_text(tokens: list[Token], index: int) -> str:
    """The text of the literal at `index` ('' when out of range or a directive)."""
    if 0 <= index < len(tokens):
        token = tokens[index]
        if isinstance(token, Literal):
            return token.text
    return ""
