"""Secrets out of every message: `redact(text)` is the one function that every message, error,
event field, dry-run and check-config output goes through before anyone can read it.

What it hides:
- URL credentials, with a scheme (`http://user:pw@host`, `https://token@host`) or without one
  (`user:pw@host:4317`, what a gRPC endpoint looks like): shown as `***@host`.
- Every secret the configuration made known with `remember`: header values (and the token of
  `Bearer <token>`-like values), URL credentials, and every value that came from a `${VAR}`
  expansion in the configuration file. A header value or credential is shown as `***`, anywhere;
  a `${VAR}` value as `${VAR}` itself (so a path `${LOGS}/access.log` still reads well), where it
  is a whole word (it may be an ordinary word: "end", "json").

Values shorter than MIN_SECRET_CHARS are not looked for inside other text: replacing every "1" or
"on" would garble every message, and no secret is that short; values shorter than
SUBSTRING_SECRET_CHARS only as whole words. (Config errors still never show a
value from `${VAR}` or a header, whatever its length: see logsidecar.settings.)

The known secrets live in this module (one process, one configuration; a reload adds the new
ones and keeps the old: a message about the previous configuration must stay clean too).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
MIN_SECRET_CHARS = 3
SUBSTRING_SECRET_CHARS = 8  # shorter secrets are looked for as whole words only

# scheme://userinfo@ : everything between // and the last @ before the host is a credential (a
# password may hold a raw @, so the match is greedy up to the last one).
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/'\"<>]+@(?=[^\s/@'\"<>])")
# user:password@host without a scheme (a gRPC target): a name, a colon, anything up to @, a host.
_BARE_USERINFO = re.compile(r"(?<![\w.\-:/@])[\w.\-~%!$&*+=]+:[^\s/'\"<>]*@(?=[\w\[])")

_lock = threading.Lock()
# secret -> (what is shown instead, the pattern that finds it as a whole word, or None: anywhere)
_known: dict[str, tuple[str, re.Pattern[str] | None]] = {}
_ordered: tuple[tuple[str, str, re.Pattern[str] | None], ...] = ()  # longest first


def remember(secret: str, shown: str = MASK, *, whole_word: bool = False) -> None:
    """Hide `secret` from every later `redact`, showing `shown` instead. `whole_word`: only where
    it is not part of a longer word (for values that may be ordinary words: a `${VAR}` holding
    "end" must not turn "sending" into "s${VAR}ing")."""
    global _ordered
    secret = secret.strip()
    if len(secret) < MIN_SECRET_CHARS:
        return
    # A short value is found inside words by chance ("env" in "environment"): whole words only.
    whole_word = whole_word or len(secret) < SUBSTRING_SECRET_CHARS
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(secret)}(?![A-Za-z0-9_])") if whole_word else None
    with _lock:
        current = _known.get(secret)
        if current is not None and (current[1] is None or pattern is not None):
            return  # known already, at least as strictly
        _known[secret] = (current[0] if current else shown, pattern)
        _ordered = tuple(
            (text, shown_as, found)
            for text, (shown_as, found) in sorted(_known.items(), key=lambda item: -len(item[0]))
        )


def remember_header_values(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
    """Header values are secrets (authorization, api keys): the value, and its last word (the
    token of `Bearer <token>` or `Basic <base64>`), which an error may quote alone."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    for _, value in items:
        remember(value)
        words = value.split()
        if len(words) > 1:
            remember(words[-1])


def known() -> tuple[tuple[str, str, bool], ...]:
    """Every secret remembered so far, as (secret, shown instead, whole word only): what another
    process of ours (`logsidecar.runtime`) is given to `remember_all`."""
    return tuple((text, shown, found is not None) for text, shown, found in _ordered)


def remember_all(secrets: Iterable[tuple[str, str, bool]]) -> None:
    """`remember` each of `known()`'s secrets."""
    for secret, shown, whole_word in secrets:
        remember(secret, shown, whole_word=whole_word)


def forget_all() -> None:
    """For tests: a process that starts over."""
    global _ordered
    with _lock:
        _known.clear()
        _ordered = ()


def redact(text: str) -> str:
    """`text` with every known secret and every URL credential hidden."""
    if not text:
        return text
    for secret, shown, pattern in _ordered:
        if secret in text:
            text = text.replace(secret, shown) if pattern is None else pattern.sub(shown, text)
    if "@" in text:
        text = _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)
        text = _BARE_USERINFO.sub(f"{MASK}@", text)
    return text


def redact_value(value: Any) -> Any:
    """`redact` through the values of an event field: strings, and strings inside lists, tuples
    and dicts; anything else that is not a plain number is shown as its redacted text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    return redact(str(value))
