"""`logsidecar parse`: one-shot parsing of files or stdin to JSON lines.

Reads each FILE (or `-`, stdin) in binary and frames lines on b"\\n" as `tail` does (`LineFramer`:
a line longer than --max-line-bytes is cut there and flagged `logsidecar.truncated`, NUL runs are
dropped; memory stays bounded by --max-line-bytes plus one read chunk). A trailing b"\\r" is
dropped; a last line without a newline is still parsed. Lines are parsed in batches with a fresh
parser per file (so `auto` detects per file, by name and content) and written as one JSON record
per line to stdout (`record.encode_json_lines`, one write per batch). stderr gets: a progress bar
only when stderr is a terminal and the input is a regular file, one message per unreadable file,
and a summary line (lines, parsed, unparsed = records flagged `logsidecar.parse_error`, truncated).

Exit codes: 0 all inputs read; 1 some input could not be read (the others are still parsed);
2 usage error, e.g. an invalid --format (the message points at the bad directive); 3 there were
lines and not one parsed (the message shows the first, why, and for `auto` the closest format).
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import BinaryIO

import click

from logsidecar.cli import verbosity
from logsidecar.cli.params import SIZE, TIMEZONE, output_format_option
from logsidecar.parse import FORMAT_NAMES, FormatError, Parser, build_parser
from logsidecar.record import PARSE_ERROR, TRUNCATED, LogRecord, encode_json_lines
from logsidecar.redact import redact
from logsidecar.settings.units import DEFAULT_TIMEZONE
from logsidecar.tail.reader import Framed, LineFramer
from logsidecar.terminal import colour_allowed, escape_controls

READ_CHUNK_BYTES = 1 << 20
DEFAULT_BATCH_LINES = 4096
DEFAULT_MAX_LINE_BYTES = 1 << 20  # as `tail --max-line-bytes`
EXIT_NOTHING_PARSED = 3


@dataclass(slots=True)
class ParseTotals:
    """What the summary line reports."""

    files: int = 0
    lines: int = 0
    unparsed: int = 0
    truncated: int = 0
    unreadable: int = 0
    first_unparsed: LogRecord | None = None  # shown when nothing parsed

    @property
    def parsed(self) -> int:
        return self.lines - self.unparsed


def iter_line_batches(
    stream: BinaryIO,
    batch_lines: int,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_bytes: Callable[[int], object] | None = None,
) -> Iterator[tuple[list[bytes], set[int]]]:
    """Frame `stream` into lists of at most `batch_lines` lines (no b"\\n", trailing b"\\r"
    dropped), each with the indices of its lines cut at `max_line_bytes`. Framing is `tail`'s
    (`LineFramer`), so memory stays bounded by `max_line_bytes` plus one read chunk whatever the
    input, e.g. a file without any newline. Uses read1 so that a pipe's lines come out as soon as
    they arrive."""
    read = getattr(stream, "read1", stream.read)
    framer = LineFramer(max_line_bytes)
    offset = 0
    while True:
        chunk = read(READ_CHUNK_BYTES)
        if not chunk:
            break
        if on_bytes is not None:
            on_bytes(len(chunk))
        framed = Framed()
        framer.feed(chunk, offset, framed)
        offset += len(chunk)
        yield from _batches(framed, batch_lines)
    framed = Framed()
    if framer.flush_partial(framed, offset):  # a last line without its newline
        yield from _batches(framed, batch_lines)


def _batches(framed: Framed, batch_lines: int) -> Iterator[tuple[list[bytes], set[int]]]:
    lines = framed.lines
    for start in range(0, len(lines), batch_lines):
        batch = lines[start : start + batch_lines]
        truncated = {i - start for i in framed.truncated if start <= i < start + len(batch)}
        yield [line[:-1] if line.endswith(b"\r") else line for line in batch], truncated


def _is_regular_file(stream: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both OSError and ValueError
        return False


def _parse_stream(
    stream: BinaryIO,
    parser: Parser,
    out: BinaryIO,
    totals: ParseTotals,
    framing: tuple[int, int],
    label: str,
    encode: Callable[[list[LogRecord]], bytes] = encode_json_lines,
) -> None:
    """`framing`: (batch_lines, max_line_bytes); `encode`: records to output bytes."""
    batch_lines, max_line_bytes = framing
    show_progress = sys.stderr.isatty() and _is_regular_file(stream)
    if not show_progress:
        for batch, truncated in iter_line_batches(stream, batch_lines, max_line_bytes):
            _emit(parser.parse(batch), truncated, out, totals, encode)
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    size = os.fstat(stream.fileno()).st_size
    with Progress(
        TextColumn("{task.description}", markup=False),  # a file name is not rich markup
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr, no_color=not colour_allowed()),
        transient=True,
    ) as progress:
        task = progress.add_task(escape_controls(label), total=size)
        advance = lambda n: progress.advance(task, n)  # noqa: E731
        for batch, truncated in iter_line_batches(stream, batch_lines, max_line_bytes, on_bytes=advance):
            _emit(parser.parse(batch), truncated, out, totals, encode)


def _emit(
    records: list[LogRecord],
    truncated: set[int],
    out: BinaryIO,
    totals: ParseTotals,
    encode: Callable[[list[LogRecord]], bytes] = encode_json_lines,
) -> None:
    for index in truncated:
        records[index].attributes[TRUNCATED] = True
    totals.lines += len(records)
    totals.truncated += len(truncated)
    unparsed = sum(1 for r in records if PARSE_ERROR in r.attributes)
    if unparsed and totals.first_unparsed is None:
        totals.first_unparsed = next(r for r in records if PARSE_ERROR in r.attributes)
    totals.unparsed += unparsed
    try:
        out.write(encode(records))
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:  # a full disk, /dev/full: our output, not the file being read
        raise OutputError(exc) from exc


class OutputError(Exception):
    """Writing the records to stdout failed (not reading the input)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause.strerror or str(cause))


def _build(format_spec: str, timezone: tzinfo, path: str | None) -> Parser:
    return build_parser(format_spec, timezone=timezone, path=path)


@click.command("parse")
@click.option(
    "--format",
    "-f",
    "format_spec",
    default="auto",
    show_default=True,
    help=f"Format specification: {', '.join(FORMAT_NAMES)}.",
)
@click.option(
    "--timezone",
    "timezone",
    type=TIMEZONE,
    default=DEFAULT_TIMEZONE,
    show_default=True,
    help="Zone for times written without an offset (the error log): local (TZ, else /etc/localtime; "
    "as `tail`), UTC, +02:00, Europe/Paris ...",
)
@click.option(
    "--batch-lines",
    type=click.IntRange(1, 1_000_000),
    default=DEFAULT_BATCH_LINES,
    show_default=True,
    help="Lines parsed and written per batch.",
)
@click.option(
    "--max-line-bytes",
    type=SIZE,
    default="1MiB",
    show_default=True,
    help="Longer lines are cut here and flagged logsidecar.truncated (as `tail` does).",
)
@click.option(
    "--explain",
    "explain_spec",
    metavar="FORMAT",
    default=None,
    help="Print what FORMAT compiles to (its regexes and generated Python source) and exit.",
)
@output_format_option(default="json")
@click.argument("files", nargs=-1)
def command(
    format_spec: str,
    timezone: tzinfo,
    batch_lines: int,
    max_line_bytes: int,
    explain_spec: str | None,
    output_format: str,
    files: tuple[str, ...],
) -> None:
    """Parse FILE... (or - for stdin; no FILE means stdin) and print one JSON record per line
    (-o text: one readable line per record, as `tail` prints them on a terminal). A summary line
    goes to stderr (-q: none).

    Exit status: 0 when every input was read; 1 when an input could not be read or the output not
    written; 2 for invalid options; 3 when there were lines and not one of them parsed (every record
    is still printed, flagged logsidecar.parse_error; the message says why and which format came
    closest).

    \b
    Examples:
      logsidecar parse /var/log/apache2/access.log
      logsidecar parse -o text --format combined access.log
      logsidecar parse --format 'logformat:%h %l %u %t "%r" %>s %b %D' access.log > records.jsonl
      zcat access.log.2.gz | logsidecar parse -
      logsidecar parse --explain combined
    """
    encode = encode_json_lines if output_format == "json" else _pretty_encoder()
    if explain_spec is not None:
        try:
            parser = _build(explain_spec, timezone, None)
        except FormatError as exc:
            raise click.BadParameter(str(exc), param_hint="'--explain'") from None
        from logsidecar.fastpath.explain import explain  # both dialects' code: only for --explain

        click.echo(explain(explain_spec, parser), nl=False)
        return
    try:
        _build(format_spec, timezone, None)  # validate once, before any output
    except FormatError as exc:
        raise click.BadParameter(str(exc), param_hint="'--format'") from None

    out = click.get_binary_stream("stdout")
    totals = ParseTotals()
    framing = (batch_lines, max_line_bytes)
    started = time.perf_counter()
    try:
        for name in files or ("-",):
            path = None if name == "-" else name
            parser = _build(format_spec, timezone, path)
            if path is None:
                totals.files += 1
                _parse_stream(click.get_binary_stream("stdin"), parser, out, totals, framing, "stdin", encode)
                continue
            try:
                stream = open(path, "rb")  # noqa: SIM115 - closed in the finally below
            except OSError as exc:
                totals.unreadable += 1
                click.echo(
                    f"logsidecar parse: cannot read {escape_controls(path)}: {exc.strerror or exc}", err=True
                )
                continue
            totals.files += 1
            try:
                _parse_stream(stream, parser, out, totals, framing, os.path.basename(path), encode)
            except OSError as exc:
                if isinstance(exc, BrokenPipeError):
                    raise
                totals.unreadable += 1
                click.echo(
                    f"logsidecar parse: error reading {escape_controls(path)}: {exc.strerror or exc}",
                    err=True,
                )
            finally:
                stream.close()
    except (BrokenPipeError, OutputError) as exc:
        from logsidecar.sinks.stdout import silence_stdout

        # The reader went away (`| head`: quietly) or our output cannot be written (said): stdout
        # points at /dev/null from here, so the interpreter's final flush does not fail again.
        silence_stdout()
        if isinstance(exc, OutputError):
            click.echo(f"logsidecar parse: error writing the output (stdout): {exc}", err=True)
        sys.exit(1)

    elapsed = time.perf_counter() - started
    if verbosity() < 0:
        if totals.unreadable:
            sys.exit(1)
        return
    rate = f", {totals.lines / elapsed:,.0f} lines/s" if elapsed > 0 and totals.lines else ""
    click.echo(
        f"logsidecar parse: {totals.lines} lines, {totals.parsed} parsed, {totals.unparsed} unparsed"
        + (f", {totals.truncated} truncated" if totals.truncated else "")
        + f" ({totals.files} file{'s' if totals.files != 1 else ''}, {elapsed:.2f}s{rate})",
        err=True,
    )
    if totals.unreadable:
        sys.exit(1)
    if totals.first_unparsed is not None and totals.parsed == 0:
        click.echo(_nothing_parsed(format_spec, totals.first_unparsed), err=True)
        sys.exit(EXIT_NOTHING_PARSED)


def _nothing_parsed(format_spec: str, example: LogRecord) -> str:
    """Why no line parsed: an example, its reason, the closest format (for auto), and the fix."""
    body = example.body if isinstance(example.body, str) else str(example.body)
    shown = escape_controls(redact(body[:200]) + ("..." if len(body) > 200 else ""))
    why = escape_controls(example.attributes[PARSE_ERROR])
    if format_spec == "auto":
        from logsidecar.parse.detect import AutoParser

        closest = AutoParser().closest(body.encode())
        if closest is not None:
            why += f"; closest: {closest[0]}, which {closest[1]}"
    return (
        f"logsidecar parse: no line parsed with --format {escape_controls(format_spec)}\n"
        f"  first line: {shown}\n"
        f"  why: {why}\n"
        "  fix: give the LogFormat your server writes, --format 'logformat:<the LogFormat string of "
        "your CustomLog>' (or --format error, json, raw)"
    )


def _pretty_encoder() -> Callable[[list[LogRecord]], bytes]:
    from logsidecar.sinks.stdout import encode_pretty

    colour = sys.stdout.isatty() and colour_allowed()
    return lambda records: encode_pretty(records, colour=colour)
