"""Read batches → payloads: one parser per file, every record stamped, encoded as the sinks take it.

Stamped on every record (see `stamp.py`): `position`, `log.file.path`, `log.file.name`, `log.record.uid`
(stable and unique per line: BLAKE2b of the file identity plus the line's end offset, so a backend can
drop the duplicates of a replay after a crash), `logsidecar.truncated` and the shared `resource`.

Encoded batches instead of records: when the only sink takes them pre-encoded (`accepts_json_lines`:
stdout in JSON; `accepts_otlp_records`: OTLP), a batch travels as its encoding (`JsonLines`,
`OtlpLogRecords`), and a file whose parser can write that encoding directly (access logs,
`parse/direct.py`) is parsed straight into it, byte-for-byte what parsing, stamping and encoding
would give: no LogRecord is built for the common line. Several sinks (stdout and OTLP, or derived
metrics) take records, built once and shared.

Invariant: a payload holds one record (or encoded record) per line read, in order. A parser that
cannot be built, fails, or returns the wrong count, and a record an encoder refuses, never lose a
line: the lines go out raw, flagged `logsidecar.parse_error`.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, tzinfo
from typing import Any

from logsidecar import events
from logsidecar.events import FormatDetected
from logsidecar.fastpath import JSON_LINES, OTLP_RECORDS, ordinary_encoder, writer_for
from logsidecar.parse import build_parser
from logsidecar.parse.base import Parser
from logsidecar.parse.detect import INTEGER_TIME_NOTE, AutoParser, variant_logformat
from logsidecar.parse.rules import FormatRule
from logsidecar.pipeline.parse_watch import EXAMPLE_CHARS, ParseWatch
from logsidecar.record import INVALID_UTF8, PARSE_ERROR, LogRecord, decode_text, utcnow
from logsidecar.redact import redact
from logsidecar.sinks.base import JsonLines, OtlpLogRecords, Payload, Sink
from logsidecar.stamp import BatchStamp, uid_prefix
from logsidecar.tail.options import ReadBatch

#: `PipelineObserver.observe_batch`: path, format, lines, bytes, parsed, unparsed.
ObserveBatch = Callable[[str, str, int, int, int, int], None]


def encoding_for(sinks: Sequence[Sink]) -> str | None:
    """The encoding batches travel in: the only sink's, when it takes them pre-encoded; else None
    (records, built once and shared by every sink)."""
    only = sinks[0] if len(sinks) == 1 else None
    if only is not None and only.accepts_json_lines:
        return JSON_LINES
    if only is not None and only.accepts_otlp_records:
        return OTLP_RECORDS
    return None


# Parsers dropped between two full garbage collections (see `ParserSelector.forget`).
COLLECT_AFTER_FORGOTTEN = 256


class _FileState:
    """What the pipeline keeps per file identity: its parser (they may be stateful) and uid prefix.
    `parser` is None when it could not be built (`parser_error` says why): lines then go out raw."""

    __slots__ = ("announced", "parser", "parser_error", "uid_prefix")

    def __init__(self, parser: Parser | None, uid_prefix: str, parser_error: str = "") -> None:
        self.parser = parser
        self.parser_error = parser_error
        self.uid_prefix = uid_prefix
        self.announced = "auto"  # for `auto`: the format last said (FORMAT_DETECTED)


class ParserSelector:
    """One parser per file identity, chosen by the first matching rule (default: `default_spec`).
    A file's parser is dropped when the tailer releases the file (`forget`, on FILE_DRAINED); at most
    `max_files` are kept in any case, least recently used first out."""

    def __init__(
        self,
        rules: Sequence[FormatRule] = (),
        *,
        default_spec: str = "auto",
        timezone: tzinfo = UTC,
        max_files: int = 1024,
    ) -> None:
        self.rules = tuple(rules)
        self.default_spec = default_spec
        self.timezone = timezone
        self.max_files = max_files
        self._files: OrderedDict[str, _FileState] = OrderedDict()
        self._forgotten = 0  # parsers dropped since the last full collection

    def spec_for(self, path: str) -> str:
        for rule in self.rules:
            if rule.matches(path):
                return rule.spec
        return self.default_spec

    def state_for(self, file_key: str, path: str) -> _FileState:
        state = self._files.get(file_key)
        if state is not None:
            self._files.move_to_end(file_key)
            return state
        spec = self.spec_for(path)
        try:
            state = _FileState(build_parser(spec, timezone=self.timezone, path=path), uid_prefix(file_key))
        except Exception as exc:  # noqa: BLE001 - specs were validated at start-up; never lose lines
            state = _FileState(None, uid_prefix(file_key), f"cannot build parser {spec!r}: {exc!r}")
        self._files[file_key] = state
        if len(self._files) > self.max_files:
            self._files.popitem(last=False)
        return state

    def forget(self, file_key: str) -> None:
        """The tailer released this file: it sends no more lines, so its parser goes."""
        if self._files.pop(file_key, None) is None:
            return
        # A parser's generated code forms reference cycles, freed only by a full collection, which
        # the pipeline's GC tuning makes rare: without this, thousands of short-lived files would
        # pile up as garbage (measured: ~8 KB of RSS per file). The start-up heap is frozen, so a
        # full collection scans only live records: cheap once per COLLECT_AFTER_FORGOTTEN files.
        self._forgotten += 1
        if self._forgotten >= COLLECT_AFTER_FORGOTTEN:
            self._forgotten = 0
            gc.collect()

    def __len__(self) -> int:
        return len(self._files)


class BatchParser:
    """Turns each read batch into the payload every sink is given (see the module docstring)."""

    def __init__(
        self,
        parsers: ParserSelector,
        resource: dict[str, Any],
        encoding: str | None,
        observe_batch: ObserveBatch | None = None,
        path_map: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.parsers = parsers
        # (directory read, the same directory as the writer sees it): `docker attach` (see stamp.py)
        self._path_map = tuple(path_map)
        # One dict shared by every record: sinks must treat it as read-only.
        self._resource = resource
        self._encoding = encoding
        self._observe_batch = observe_batch
        self.parse_watch = ParseWatch(self._explain_unparsed)

    def forget(self, file_key: str) -> None:
        """The tailer released this file (FILE_DRAINED): its parser and its parse watch go."""
        self.parsers.forget(file_key)
        self.parse_watch.forget(file_key)

    def _explain_unparsed(self, path: str, lines: Sequence[bytes]) -> dict[str, Any]:
        """One line of `lines` that does not parse, why, and for `auto` the closest format; with a
        fresh parser of the file's spec (the file's own may be stateful)."""
        spec = self.parsers.spec_for(path)
        parser = build_parser(spec, timezone=self.parsers.timezone, path=path)
        for line, record in zip(lines, parser.parse(lines), strict=True):
            reason = record.attributes.get(PARSE_ERROR)
            if reason is None:
                continue
            text = decode_text(line)[0]
            explained: dict[str, Any] = {
                "format": spec,
                "example": redact(text[:EXAMPLE_CHARS]) + ("..." if len(text) > EXAMPLE_CHARS else ""),
                "reason": str(reason),
            }
            closest = parser.closest(line) if isinstance(parser, AutoParser) else None
            if closest is not None:
                explained["closest_format"], explained["diverged"] = closest
            return explained
        return {"format": spec}

    def _shown_path(self, path: str) -> str | None:
        for read_dir, writer_dir in self._path_map:
            if path.startswith(read_dir + "/"):
                return writer_dir.rstrip("/") + path[len(read_dir) :]
        return None

    def parse(self, batch: ReadBatch) -> Payload:
        state = self.parsers.state_for(batch.file_key, batch.path)
        stamp = BatchStamp(
            batch.file_key,
            batch.path,
            state.uid_prefix,
            batch.end_offsets,
            batch.truncated,
            self._resource,
            self._shown_path(batch.path) if self._path_map else None,
            batch.engine_times_ns,
        )
        encoding = self._encoding
        # The direct writers know no engine times (stamp.py): such batches take the record path.
        direct = None
        if encoding is not None and batch.engine_times_ns is None:
            direct = writer_for(state.parser, encoding)
        if direct is not None:
            try:
                encoded, unparsed = direct(batch.lines, stamp)
            except Exception:  # noqa: BLE001 - a parser bug must not lose lines: take the record path
                pass
            else:
                self._announce(batch, state)
                self.parse_watch.note(batch.file_key, batch.path, batch.lines, unparsed)
                self._observe(batch, state, len(batch.lines), unparsed)
                return self._payload(encoded, len(batch.lines))
        try:
            if state.parser is None:
                raise RuntimeError(state.parser_error)
            records = state.parser.parse(batch.lines)
            if len(records) != len(batch.lines):
                raise RuntimeError(f"parser returned {len(records)} records for {len(batch.lines)} lines")
        except Exception as exc:  # noqa: BLE001 - a parser bug must not lose lines: forward them raw
            reason = state.parser_error if state.parser is None else f"parser failed: {exc!r}"
            records = raw_records(batch.lines, reason=reason)
        stamp.apply(records)
        self._announce(batch, state)
        unparsed = sum(1 for r in records if PARSE_ERROR in r.attributes)
        self.parse_watch.note(batch.file_key, batch.path, batch.lines, unparsed)
        self._observe(batch, state, len(records), unparsed)
        if encoding is None or any(r.resource is not self._resource for r in records):
            return records  # (a record with a resource of its own travels as a record)
        encode = ordinary_encoder(encoding)
        try:
            return self._payload(encode(records), len(records))
        except Exception as exc:  # noqa: BLE001 - odd content an encoder refuses: forward the lines raw
            records = raw_records(batch.lines, reason=f"cannot encode the parsed record: {exc!r}")
            stamp.apply(records)
            return self._payload(encode(records), len(records))

    @staticmethod
    def _announce(batch: ReadBatch, state: _FileState) -> None:
        """`auto` locked onto a format (first, or another one): say which, and for a variant of a
        preset its LogFormat, so it can be given with --format."""
        parser = state.parser
        if not isinstance(parser, AutoParser) or parser.format_name == state.announced:
            return
        state.announced = name = parser.format_name
        logformat = variant_logformat(name)
        note = INTEGER_TIME_NOTE if logformat is not None and name.endswith("+%D") else None
        events.emit(FormatDetected(path=batch.path, format=name, logformat=logformat, note=note))

    def _payload(self, encoded: Any, count: int) -> Payload:
        if self._encoding == JSON_LINES:
            return JsonLines(encoded, count)
        return OtlpLogRecords(encoded, self._resource)

    def _observe(self, batch: ReadBatch, state: _FileState, lines: int, unparsed: int) -> None:
        if self._observe_batch is None:
            return
        fmt = state.parser.format_name if state.parser is not None else "raw"
        self._observe_batch(batch.path, fmt, lines, sum(map(len, batch.lines)), lines - unparsed, unparsed)


def raw_records(lines: Sequence[bytes], *, reason: str) -> list[LogRecord]:
    """The lines as records of their own text, flagged with why they were not parsed."""
    observed = utcnow()
    records = []
    for line in lines:
        text, valid = decode_text(line)
        attributes: dict[str, Any] = {PARSE_ERROR: reason}
        if not valid:
            attributes[INVALID_UTF8] = True
        records.append(LogRecord(body=text, attributes=attributes, observed_timestamp=observed))
    return records
