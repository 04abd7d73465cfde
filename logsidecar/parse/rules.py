"""Format rules: which format specification parses which file (`--format GLOB=SPEC`, or a plain
`--format SPEC` for every file). The text form is parsed here, once, for the settings and the CLI
alike; the pipeline picks a rule per file (`pipeline.parsing.ParserSelector`)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo

from logsidecar.parse import build_parser


@dataclass(frozen=True, slots=True)
class FormatRule:
    """`--format GLOB=SPEC`: files whose path or name matches `pattern` are parsed with `spec`.
    `pattern` None matches every file (a plain `--format SPEC`)."""

    pattern: str | None
    spec: str

    def matches(self, path: str) -> bool:
        if self.pattern is None:
            return True
        return fnmatch.fnmatchcase(path, self.pattern) or fnmatch.fnmatchcase(
            os.path.basename(path), self.pattern
        )


def parse_format_rule(text: str) -> FormatRule:
    """`GLOB=SPEC` or a plain `SPEC`. A spec may itself contain `=` (inside a LogFormat), so the text is
    a rule only when what precedes the first `=` looks like a glob: no `:` and no `%`."""
    head, sep, tail = text.partition("=")
    if sep and head.strip() and ":" not in head and "%" not in head:
        return FormatRule(head.strip(), tail.strip())
    return FormatRule(None, text.strip())


def validate_format_rules(rules: Sequence[FormatRule], *, timezone: tzinfo = UTC) -> None:
    """Build each spec once so a bad directive fails at start-up (raises parse.FormatError)."""
    for rule in rules:
        build_parser(rule.spec, timezone=timezone)
