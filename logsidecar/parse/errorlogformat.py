"""ErrorLogFormat strings → items (literals and `%` directives), as httpd reads them
(`server/core.c: parse_errorlog_item`); `errorlog_compiled.py` turns the items into a parser.
"""

from __future__ import annotations

from dataclasses import dataclass

from logsidecar.parse.base import FormatError

__all__ = ["DIRECTIVE_LETTERS", "NEVER_EMPTY", "ErrorItem", "normalize_errorlogformat", "parse_items"]


@dataclass(frozen=True, slots=True)
class ErrorItem:
    """One parsed ErrorLogFormat item: a literal or a `%` directive (as in httpd's
    `ap_errorlog_format_item`)."""

    literal: str | None  # text for literals, None for directives
    directive: str = ""  # the letter: a A e E F i k l L m M n P t T v V
    arg: str | None = None  # the `{...}` argument
    field_sep: bool = False  # starts a new field (a literal starting with a space, or `% `)
    required: bool = False  # `%+x`: httpd drops the whole line when empty
    hyphen: bool = False  # `%-x`: httpd writes `-` when empty
    min_level: int = 0  # `%7x`: only written at this level (debug = 7) or more verbose
    position: int = 0  # index in the format string, for error messages


#: The ErrorLogFormat directive letters httpd 2.4 knows.
DIRECTIVE_LETTERS = frozenset("aAeEFikLlmMnPtTvV")
_ASCII_DIGITS = frozenset("0123456789")
# Directives httpd always writes (never empty): a field made only of these and literals is never dropped.
NEVER_EMPTY = frozenset("PtM")


def _format_error(fmt: str, position: int, message: str) -> FormatError:
    pointer = " " * position + "^"
    return FormatError(f"{message} at position {position} of ErrorLogFormat:\n  {fmt}\n  {pointer}")


def parse_items(fmt: str) -> list[ErrorItem]:
    """Tokenise like httpd's `parse_errorlog_item` / `parse_errorlog_misc_string`: a literal
    ends at `%` or at a non-leading space (so every space starts a new field); `\\ ` is a space
    that does not; `\\n \\r \\t` are control characters; `% ` is an empty field separator."""
    items: list[ErrorItem] = []
    i = 0
    n = len(fmt)
    pending_sep = False
    while i < n:
        start = i
        if fmt[i] != "%":
            field_sep = pending_sep or fmt[i] == " "
            pending_sep = False
            chars: list[str] = []
            at_start = True
            while i < n and fmt[i] != "%" and (fmt[i] != " " or at_start):
                c = fmt[i]
                if c != "\\":
                    if c != " ":
                        at_start = False
                    chars.append(c)
                    i += 1
                    continue
                i += 1
                if i >= n:
                    chars.append("\\")
                    break
                esc = fmt[i]
                chars.append({"n": "\n", "r": "\r", "t": "\t"}.get(esc, esc))
                i += 1
            items.append(ErrorItem(literal="".join(chars), field_sep=field_sep, position=start))
            continue
        i += 1  # past '%'
        if i < n and fmt[i] == " ":
            pending_sep = True
            i += 1
            continue
        if i < n and fmt[i] == "%":
            items.append(ErrorItem(literal="%", field_sep=pending_sep, position=start))
            pending_sep = False
            i += 1
            continue
        arg: str | None = None
        required = hyphen = False
        min_level = 0
        while True:
            if i >= n:
                raise _format_error(fmt, start, "directive runs off the end of the format (missing letter)")
            c = fmt[i]
            if c == "{":
                end = fmt.find("}", i + 1)
                if end < 0:
                    raise _format_error(fmt, i, "'{' without a closing '}'")
                arg = fmt[i + 1 : end]
                i = end + 1
            elif c == "+":
                required = True
                i += 1
            elif c == "-":
                hyphen = True
                i += 1
            elif c in _ASCII_DIGITS:
                j = i
                while j < n and fmt[j] in _ASCII_DIGITS:
                    j += 1
                min_level = int(fmt[i:j])
                i = j
            elif c in DIRECTIVE_LETTERS:
                items.append(
                    ErrorItem(
                        literal=None,
                        directive=c,
                        arg=arg,
                        field_sep=pending_sep,
                        required=required,
                        hyphen=hyphen,
                        min_level=min_level,
                        position=start,
                    )
                )
                pending_sep = False
                i += 1
                break
            else:
                raise _format_error(fmt, i, f"unrecognized ErrorLogFormat directive %{c}")
    return items


def normalize_errorlogformat(text: str) -> str:
    """Accept what users paste: a bare format, a quoted one (httpd.conf quoting: inside the
    quotes `\\"` is a quote, every other backslash stays for the format itself), or a whole
    `ErrorLogFormat "..."` line. The once-per-connection/request forms (`ErrorLogFormat
    connection|request "..."`) describe extra lines, not the error line: rejected."""
    text = text.strip()
    head, _, rest = text.partition(" ")
    if head.lower() == "errorlogformat":
        text = rest.strip()
        keyword = text.partition(" ")[0]
        if keyword.lower() in ("connection", "request"):
            raise FormatError(
                f"ErrorLogFormat {keyword} describes the once-per-{keyword.lower()} extra lines; "
                "give the main ErrorLogFormat (the one without a keyword)"
            )
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        quote = text[0]
        text = text[1:-1].replace("\\" + quote, quote)
    return text
