"""The pipeline: sources → parser → sinks → acknowledgements → checkpoints.

- `core`: the `Pipeline` (start, the in-flight budget, acknowledgements, stop and drain);
- `parsing`: a read batch → its payload (a parser per file, stamping, the sinks' encoding);
- `lanes`: the way to one sink (batching, concurrent sends, settling, rejection reports).
"""

from logsidecar.parse.rules import FormatRule, parse_format_rule, validate_format_rules
from logsidecar.pipeline.core import (
    COMMIT_RESERVE_S,
    SINK_CLOSE_GRACE_S,
    Pipeline,
    PipelineObserver,
    PipelineOptions,
    Source,
)
from logsidecar.pipeline.parsing import ParserSelector

__all__ = [
    "COMMIT_RESERVE_S",
    "SINK_CLOSE_GRACE_S",
    "FormatRule",
    "ParserSelector",
    "Pipeline",
    "PipelineObserver",
    "PipelineOptions",
    "Source",
    "parse_format_rule",
    "validate_format_rules",
]
