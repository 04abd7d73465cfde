"""What a format compiles to, as text: `logsidecar parse --explain FORMAT`.

For an access-log format: the LogFormat, the batch regex and the strict regex, the generated
record builder, and the generated fast-path writer of each encoding (or why the format has none).
Other formats have no generated code: the text says which parser reads them (and an
ErrorLogFormat's regex). The output is deterministic, so golden files can hold it.
"""

from __future__ import annotations

from logsidecar.fastpath import ENCODINGS
from logsidecar.fastpath.json_dialect import json_encoder_for
from logsidecar.fastpath.otlp_dialect import otlp_encoder_for
from logsidecar.parse.access import AccessLogParser
from logsidecar.parse.base import Parser

__all__ = ["explain"]

_ENCODER_FOR = dict(zip(ENCODINGS, (json_encoder_for, otlp_encoder_for), strict=True))


def explain(spec: str, parser: Parser) -> str:
    """The explanation of `parser`, built from the format specification `spec`."""
    if not isinstance(parser, AccessLogParser):
        text = f"# format {spec}: no generated code; parsed by {type(parser).__name__}\n"
        pattern = getattr(parser, "pattern", None)  # ErrorLogFormatParser: its compiled regex
        if isinstance(pattern, str):
            text += _section("regex", pattern + "\n")
        return text
    compiled = parser.compiled
    parts = [
        f"# format {spec}: {compiled.format_name}\n",
        _section("LogFormat", compiled.logformat + "\n"),
        _section(
            "batch regex (re.MULTILINE; the last group catches a line the fast part rejects)",
            compiled.batch_regex.pattern + "\n",
        ),  # fmt: skip
        _section(
            'strict regex (escape-aware: lines the fast part rejects, lines with \\")',
            compiled.strict_regex.pattern + "\n",
        ),  # fmt: skip
        _section("record builder", compiled.builder_source),
    ]
    for encoding, encoder_for in _ENCODER_FOR.items():
        encoder = encoder_for(parser)
        if encoder is None:
            body = "(none: fields share an attribute or one is computed from two; records are built)\n"
        else:
            body = encoder.source
        parts.append(_section(f"fast-path writer: {encoding}", body))
    return "\n".join(parts)


def _section(title: str, body: str) -> str:
    return f"## {title}\n{body}"
