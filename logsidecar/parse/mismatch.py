"""Why an access-log line does not match its LogFormat: the first field (or separator) that fails.

Each token gets the strict regex of the format up to and including it (compiled on the first
rejected line); the first prefix that does not match names the field to blame.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from logsidecar.parse.fields import FieldSpec
from logsidecar.parse.line_regex import field_guard, field_pattern, literal_text, next_is_text
from logsidecar.parse.logformat import Directive, Literal

__all__ = ["MismatchReasons"]


class MismatchReasons:
    """The reason given to a line the format rejects (`logsidecar.parse_error`)."""

    def __init__(self, tokens: Sequence[Directive | Literal], specs: Sequence[FieldSpec]) -> None:
        self._tokens = tokens
        self._specs = specs
        self._prefix_regexes: list[re.Pattern[str] | None] | None = None

    def reason(self, body: str) -> str:
        if not body:
            return "empty line"
        if self._prefix_regexes is None:
            self._prefix_regexes = self._compile_prefixes()
        field_number = 0
        for index, token in enumerate(self._tokens):
            if isinstance(token, Directive):
                field_number += 1
            prefix = self._prefix_regexes[index]
            last = index == len(self._tokens) - 1
            if (
                prefix is not None
                and (prefix.fullmatch(body.rstrip("\r")) if last else prefix.match(body)) is None
            ):
                if isinstance(token, Directive):
                    return f"does not match LogFormat at field {field_number} ({token.source})"
                following = next((t for t in self._tokens[index:] if isinstance(t, Directive)), None)
                if following is not None:  # a literal separator failed: blame the field it introduces
                    return f"does not match LogFormat at field {field_number + 1} ({following.source})"
                return f"does not match LogFormat: unexpected text after field {field_number}"
        return f"does not match LogFormat: unexpected text after field {field_number}"

    def _compile_prefixes(self) -> list[re.Pattern[str] | None]:
        """For each token, the strict regex of the format up to and including it. The fields before
        it are guarded by what follows them (see `field_pattern`), as in the line regex; the last
        field is not, so a prefix ending at a field blames that field, not the text after it."""
        fragments: list[str] = []
        specs = iter(self._specs)
        out: list[re.Pattern[str] | None] = []
        tokens = list(self._tokens)
        all_specs = list(self._specs)
        for index, token in enumerate(tokens):
            if isinstance(token, Literal):
                fragments.append(re.escape(token.text))
                last = re.escape(token.text)
            else:
                before = literal_text(tokens, index - 1)
                nxt = tokens[index + 1] if index + 1 < len(tokens) else None
                after = None if nxt is None else (nxt.text if isinstance(nxt, Literal) else "")
                spec = next(specs)
                text_follows = next_is_text(tokens, index, all_specs)
                last = field_pattern(spec, before, after, False, False, text_follows)  # type: ignore[arg-type]
                fragments.append(
                    field_pattern(
                        spec,
                        before,
                        after,
                        False,
                        False,
                        text_follows,
                        field_guard(tokens, index, all_specs),
                    )  # type: ignore[arg-type]
                )
            try:
                out.append(re.compile("".join(fragments[:-1]) + last))
            except re.error:
                out.append(None)
        return out
