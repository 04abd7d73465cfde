"""`logsidecar tail --dry-run`: what `tail` would follow and how it would parse it, without doing it.

For the effective settings: each input pattern and the files it matches now, the format each file gets
(the rule that chose it; for `auto`, the format detected on its last lines), and the last few complete
lines of each file parsed field by field. Nothing is forwarded, no checkpoint is read or written, no
file is watched: the files are only opened read-only and read from their end, under the same
file-opening policy as `tail` (`tail.open_policy`): a FIFO, device or directory is never opened (so a
FIFO cannot hang the dry run), and a refused symlink is shown with the reason.

Exit status (returned by `report`): 0 when at least one file would be followed, 1 when none matches
or every match is refused.
Colour only on a terminal (click strips styles otherwise), never under NO_COLOR. Control characters
from the files (names, lines, values) are escaped: a log line must not drive the operator's terminal.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

import click

from logsidecar.parse import build_parser
from logsidecar.pipeline import FormatRule, ParserSelector
from logsidecar.record import FORMAT, PARSE_ERROR, LogRecord
from logsidecar.redact import redact
from logsidecar.service.plan import reads_stdin, tail_options
from logsidecar.settings.model import Settings
from logsidecar.settings.units import format_duration
from logsidecar.tail.discovery import PathMatcher, static_base
from logsidecar.tail.open_policy import FilePolicy, Refused
from logsidecar.terminal import click_colour
from logsidecar.terminal import escape_controls as safe

_READ_STEP = 64 * 1024


def last_lines(fd: int, count: int, max_line_bytes: int) -> tuple[list[bytes], bool]:
    """The last `count` complete lines of the open file `fd` (without their newline), and whether the
    file ends with an unfinished line (which `tail` would hold back until its newline or the flush
    delay)."""
    size = os.fstat(fd).st_size
    limit = min(size, (count + 1) * max_line_bytes)
    data = b""
    while len(data) < limit and data.count(b"\n") <= count:
        step = min(_READ_STEP, limit - len(data))
        data = os.pread(fd, step, size - len(data) - step) + data
    unfinished = bool(data) and not data.endswith(b"\n")
    lines = data.split(b"\n")
    lines.pop()  # the unfinished line, or b"" after the last newline
    if len(data) < size and lines:
        lines.pop(0)  # may be the end of a line cut by the read window
    return [line.removesuffix(b"\r") for line in lines[-count:]], unfinished


def _value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value) if isinstance(value, str) and (not value or value != value.strip()) else str(value)


def _detection_notes(parser: Any, sample: list[bytes]) -> list[str]:
    """What `auto` chose, or why it chose nothing, and how to pin or fix it."""
    from logsidecar.parse.detect import INTEGER_TIME_NOTE, variant_logformat

    name = parser.format_name
    logformat = variant_logformat(name)
    if logformat is not None:
        notes = [
            f"the {name.split('+')[0]} preset with {name.split('+', 1)[1]} appended: LogFormat {logformat}"
        ]
        if name.endswith("+%D"):
            notes.append(INTEGER_TIME_NOTE)
        return notes
    if name != "auto":
        return []
    if not sample:
        return ["the format is detected on the first complete line"]
    notes = ["hint: no known format matches these lines."]
    closest = parser.closest(sample[-1])
    if closest is not None:
        notes.append(f"closest: {closest[0]}, which {closest[1]}.")
    notes.append(
        "Give the LogFormat your server writes: --format 'logformat:<the LogFormat string of your "
        "CustomLog>', or --format error/json/raw (raw forwards each line as it is)."
    )
    return notes


def _fields(record: LogRecord) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if record.timestamp is not None:
        rows.append(("timestamp", _value(record.timestamp)))
    if record.severity_text:
        rows.append(("severity", f"{record.severity_text} ({int(record.severity_number)})"))
    rows.extend(
        (key, _value(value)) for key, value in sorted(record.attributes.items()) if key != PARSE_ERROR
    )
    return rows


def _say(text: str = "", *, err: bool = False, nl: bool = True, **style: Any) -> None:
    """One piece of the report; colour as click decides (terminal or not), never under NO_COLOR;
    secrets (`logsidecar.redact`) hidden: a log line may quote a token or a URL with credentials."""
    click.secho(redact(text), err=err, nl=nl, color=click_colour(), **style)


def _paint(text: str, **style: Any) -> str:
    return click.style(text, **style) if click_colour() is None else text


def report(settings: Settings, *, lines: int) -> int:
    """Print the dry run for `settings`; returns the exit status. Everything that comes from the
    files (names, lines, parsed values) is terminal-safe: `escape_controls`."""
    options = tail_options(settings)
    rules, default_spec = settings.format_rules()
    if reads_stdin(options.include):
        # A pipe cannot be peeked at without taking its lines from the real run.
        _say("Inputs", bold=True)
        _say(f"  -  ->  standard input, read to its end (format {safe(default_spec)}); no checkpoint")
        _say("Dry run: standard input was not read; nothing forwarded.")
        return 0
    timezone = settings.tzinfo()
    selector = ParserSelector(
        [FormatRule(g, s) for g, s in rules], default_spec=default_spec, timezone=timezone
    )
    files: list[str] = []
    policy = FilePolicy(
        options.follow_symlinks, (static_base(p) for p in PathMatcher(options.include).include)
    )
    _say("Inputs", bold=True)
    for pattern in options.include:
        matched = PathMatcher((pattern,), options.exclude).scan()
        note = f"{len(matched)} file{'' if len(matched) == 1 else 's'}" if matched else "no file matches"
        _say(f"  {safe(pattern)}  ->  " + (note if matched else _paint(note, fg="yellow")))
        files.extend(path for path in matched if path not in files)
    if options.exclude:
        _say(f"  excluded: {safe(', '.join(options.exclude))}")
    if not files:
        _say("No file matches; nothing would be followed.", fg="red", err=True)
        return 1
    followed = [path for path in files if _report_file(path, policy, selector, settings, lines)]
    _say()
    _say(
        f"{len(followed)} file{'' if len(followed) == 1 else 's'} would be followed"
        + (f" ({len(files) - len(followed)} refused)" if len(followed) < len(files) else "")
        + ". Dry run: nothing forwarded, no checkpoint touched."
    )
    return 0 if followed else 1


def _not_followed(prefix: str, failed: str, error: Refused | OSError) -> bool:
    """Print why a step of opening a file failed (`failed`: what an OSError stopped); False when
    the file-opening policy refused the file, True when it was only an I/O error."""
    if isinstance(error, Refused):
        _say(f"{prefix}refused, never followed: {safe(error.detail)}", fg="red")
        return False
    _say(f"{prefix}{failed}: {error.strerror}", fg="red")
    return True


def _report_file(
    path: str, policy: FilePolicy, selector: ParserSelector, settings: Settings, count: int
) -> bool:
    """Print what `tail` would do with `path`; False when the file-opening policy refuses it."""
    _say()
    shown = safe(path)
    try:
        stat = policy.inspect(path)
    except (Refused, OSError) as exc:
        return _not_followed(f"{shown}: ", "cannot stat", exc)
    _say(shown, bold=True, nl=False)
    _say(f"  ({stat.st_size} bytes)")
    if settings.ignore_older is not None and time.time() - stat.st_mtime > settings.ignore_older:
        _say(
            f"  skipped: not modified for more than {format_duration(settings.ignore_older)} (ignore_older)",
            fg="yellow",
        )
        return True
    spec = selector.spec_for(path)
    try:
        fd, _ = policy.open_file(path)
    except (Refused, OSError) as exc:
        return _not_followed(f"  format: {safe(spec)}; ", "cannot read", exc)
    try:
        sample, unfinished = last_lines(fd, count, settings.max_line_bytes)
    except OSError as exc:
        return _not_followed(f"  format: {safe(spec)}; ", "cannot read", exc)
    finally:
        os.close(fd)
    parser = build_parser(spec, timezone=selector.timezone, path=path)
    records = parser.parse(sample) if sample else []
    if spec == "auto":
        detected = parser.format_name if parser.format_name != "auto" else "none detected yet"
        _say(f"  format: auto -> {_paint(safe(detected), fg='cyan')}")
        for note in _detection_notes(parser, sample):
            _say(f"    {safe(note)}", fg="yellow")
    else:
        _say(f"  format: {_paint(safe(spec), fg='cyan')}")
    if not sample:
        _say("  (no complete line yet)")
    for number, (line, record) in enumerate(zip(sample, records, strict=True), start=1):
        _say(f"  line -{len(sample) - number + 1}: {safe(line.decode('utf-8', 'replace'))}")
        error = record.attributes.get(PARSE_ERROR)
        if error is not None:
            _say(
                f"    not parsed ({safe(record.attributes.get(FORMAT, spec))}): {safe(error)}; forwarded raw",
                fg="red",
            )
            continue
        rows = [(safe(key), safe(value)) for key, value in _fields(record)]
        width = max((len(key) for key, _ in rows), default=0)
        for key, value in rows:
            _say(f"    {_paint(key.ljust(width), fg='green')}  {value}")
    if unfinished:
        _say("  (the file ends with an unfinished line: held until its newline)")
    return True
