"""mod_log_config LogFormat strings → tokens (`Literal` text and `Directive`s).

Responsibility: understand a LogFormat string exactly as httpd does (`parse_log_item` and
`parse_log_misc_string` in mod_log_config.c). `fields.py` describes, for every directive, the
regex that matches what httpd writes, how the captured text is converted and which attribute it
becomes; `line_regex.py` joins those into line regexes; `access.py` turns that into a fast batch
parser. Nothing here touches log lines.

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

The meaning of each directive (and what httpd writes for it) is in `fields.py`, the regexes built
from it in `line_regex.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from logsidecar.parse.base import FormatError

__all__ = [
    "ARGUMENT_CHOICES",
    "DIRECTIVE_NAMES",
    "Directive",
    "Literal",
    "NEEDS_ARGUMENT",
    "Token",
    "normalize_format_text",
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
