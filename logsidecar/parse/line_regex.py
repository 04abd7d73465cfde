"""LogFormat fields → line regexes: the strict, fast and lenient regexes of a whole line, and the
pattern of each field in them.

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

from logsidecar.parse.fields import (
    CLF,
    CLF_TIME,
    CONN,
    DURATION,
    HEX,
    NUM,
    NUMBER,
    QUOTED_TEXT,
    RAW,
    REQ,
    STATUS_PAT,
    TEXT,
    TOKEN,
    FieldSpec,
)
from logsidecar.parse.logformat import Directive, Literal, Token

__all__ = [
    "FAST_QUOTED_TEXT",
    "field_guard",
    "field_pattern",
    "field_patterns",
    "line_regex",
    "literal_text",
    "may_backtrack",
    "next_is_text",
]

# Quoted text in the fast regex: anything but a quote (not escape-aware: lines holding `\"` are
# matched again with the strict regex), so a field matched by it holds no quote.
FAST_QUOTED_TEXT = r'[^"]*+'


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
                body = FAST_QUOTED_TEXT
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
        return f"({FAST_QUOTED_TEXT})" if fast else f'(""|{QUOTED_TEXT})'

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
