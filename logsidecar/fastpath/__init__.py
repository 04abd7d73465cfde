"""The fast path: batches of lines written straight to wire bytes, without building records.

`writer_for(parser, encoding)` gives the writer of a parser in one output encoding, or None when
the parser has none (then the pipeline parses, stamps and encodes records). A writer is called as
`writer(lines, stamp)` and returns `(encoded, unparsed line count)`: for JSON_LINES the bytes
`record.encode_json_lines` gives, for OTLP_RECORDS the list `encode_otlp_records` gives, of the
parsed and stamped records, byte for byte.

- `access_writer.py`: an access-log parser's writer (batch regex, then the generated encoder);
- `encoder.py`: the writer generated per format and dialect (`DirectEncoder`);
- `json_dialect.py`, `otlp_dialect.py`: the two dialects;
- `auto_writer.py`: the `auto` parser's writer (the locked format's, with auto's search behind).

This package depends on parse/, never the reverse: parsers know nothing of wire encodings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from logsidecar.fastpath.access_writer import AccessWriter
from logsidecar.fastpath.auto_writer import AutoWriter
from logsidecar.fastpath.json_dialect import json_encoder_for
from logsidecar.parse.access import AccessLogParser
from logsidecar.parse.detect import AutoParser
from logsidecar.record import encode_json_lines
from logsidecar.stamp import BatchStamp

__all__ = ["ENCODINGS", "JSON_LINES", "OTLP_RECORDS", "Writer", "ordinary_encoder", "writer_for"]

JSON_LINES: Final = "json_lines"
OTLP_RECORDS: Final = "otlp_records"
ENCODINGS = (JSON_LINES, OTLP_RECORDS)

Writer = Callable[[Sequence[bytes], BatchStamp], tuple[Any, int]]


def ordinary_encoder(encoding: str) -> Callable[[list[Any]], Any]:
    """The record encoder of `encoding` (for lines the fast path does not write). The OTLP side is
    imported on first use: its wire tables cost ~1 MiB a sidecar writing JSON lines never needs."""
    if encoding == JSON_LINES:
        return encode_json_lines
    from logsidecar.encoding.otlp_wire import encode_otlp_records

    return encode_otlp_records


def _direct_encoder(encoding: str, parser: AccessLogParser) -> Any:
    if encoding == JSON_LINES:
        return json_encoder_for(parser)
    from logsidecar.fastpath.otlp_dialect import otlp_encoder_for  # OTLP output only (see above)

    return otlp_encoder_for(parser)


def writer_for(parser: object, encoding: str) -> Writer | None:
    """The fast-path writer of `parser` in `encoding` (JSON_LINES or OTLP_RECORDS), or None."""
    if isinstance(parser, AutoParser):  # cheap to make: the locked format's writer is the one kept
        return AutoWriter(
            parser, lambda locked: writer_for(locked, encoding), ordinary_encoder(encoding)
        ).write
    if not isinstance(parser, AccessLogParser):
        return None
    # Built on first use (generating and compiling its code), kept with the parser's format.
    derived = parser.compiled.derived
    key = f"fastpath.{encoding}"
    writer = derived.get(key)
    if writer is None:
        writer = derived[key] = AccessWriter(
            parser, _direct_encoder(encoding, parser), ordinary_encoder(encoding)
        ).write
    return writer  # type: ignore[no-any-return]
