"""An image's build history (`docker history`) as steps: the instruction and its arguments, in both
builders' records.

Classic builder: `/bin/sh -c #(nop)  VOLUME [/x]`, `/bin/sh -c #(nop) WORKDIR /x`,
`/bin/sh -c #(nop)  ENV K=v`, `/bin/sh -c #(nop) COPY file:<hash> in /dest `, a shell RUN as
`/bin/sh -c <script>`, an exec-form RUN as its words; a RUN under build args starts `|N K=v ... `.
BuildKit: `VOLUME [/x]`, `WORKDIR /x`, `ENV K=v`, `COPY src /dest # buildkit`,
`RUN |N K=v /bin/sh -c <script> # buildkit`. Anything else (a squashed or imported image, an empty
record) is an "UNKNOWN" step: the history cannot tell what it did.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

_ARGS_PREFIX = re.compile(r"^\|(\d+)\s+")
_KEYWORDS = ("VOLUME", "WORKDIR", "ENV", "ARG", "COPY", "ADD", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE",
             "USER", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD", "MAINTAINER")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Step:
    number: int  # 1-based, oldest first
    text: str  # the record as the engine keeps it
    instruction: str  # VOLUME, WORKDIR, ENV, COPY, ADD, RUN, ... or UNKNOWN
    argument: str  # the rest: a script for RUN (shell form), the words for an exec-form RUN
    shell: bool = False  # a RUN through /bin/sh -c
    build_args: dict[str, str] = field(default_factory=dict)


def _build_args(text: str) -> tuple[dict[str, str], str]:
    match = _ARGS_PREFIX.match(text)
    if not match:
        return {}, text
    count = int(match.group(1))
    rest = text[match.end() :]
    values: dict[str, str] = {}
    for _ in range(
        count
    ):  # K=v tokens, space separated (values with spaces are rare; kept whole when quoted)
        token, _, rest = rest.partition(" ")
        key, _, value = token.partition("=")
        values[key] = value
    return values, rest


def parse_step(number: int, text: str) -> Step:
    raw = text.strip()
    body = raw.removesuffix("# buildkit").strip()
    if body.startswith("/bin/sh -c #(nop)"):
        body = body[len("/bin/sh -c #(nop)") :].strip()
    elif body.startswith("RUN "):
        body = body[4:].strip()
        args, body = _build_args(body)
        return _run(number, raw, body, args)
    keyword = body.split(" ", 1)[0]
    if keyword in _KEYWORDS:
        return Step(number, raw, keyword, body[len(keyword) :].strip())
    if not body:
        return Step(number, raw, "UNKNOWN", "")
    args, body = _build_args(body)
    return _run(number, raw, body, args)


def _run(number: int, raw: str, body: str, args: dict[str, str]) -> Step:
    for shell in ("/bin/sh -c ", "/bin/bash -c ", "sh -c "):
        if body.startswith(shell):
            return Step(number, raw, "RUN", body[len(shell) :], shell=True, build_args=args)
    return Step(number, raw, "RUN", body, shell=False, build_args=args)


def volume_paths(argument: str) -> list[str]:
    """`[/a /b]` (classic) or `["/a","/b"]` / `[/a]` (BuildKit) or `/a /b`."""
    inner = argument.strip().removeprefix("[").removesuffix("]")
    return [p.strip().strip('"') for p in re.split(r"[\s,]+", inner) if p.strip().strip('"')]


def env_pairs(argument: str) -> dict[str, str]:
    """`K=v K2="v 2"`, or the old `K v` form."""
    try:
        words = shlex.split(argument)
    except ValueError:
        return {}
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(w.partition("=")[::2] for w in words if "=" in w)


def copy_destination(argument: str) -> str | None:
    """The destination of a COPY/ADD record: classic `file:<hash> in /dest`, BuildKit `src... /dest`."""
    if " in " in argument:
        return argument.rsplit(" in ", 1)[1].strip() or None
    words = [w for w in argument.split() if not w.startswith("--")]
    return words[-1] if len(words) >= 2 else None
