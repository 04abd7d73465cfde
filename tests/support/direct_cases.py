"""Cases shared by the tests of the direct encoders (tests/unit/test_access_json.py, test_access_otlp.py).

Both test files check the same property: a parser's fast-path writer (`fastpath.writer_for(parser,
JSON_LINES)`, `OTLP_RECORDS`) writes, batch after batch, exactly what parse + `stamp.apply` + the record
encoder writes. This module offers what they both need to draw and compare such batches:

- the custom LogFormats under test and `realistic_lines(fmt, count)`, lines of any tested format
  rendered from the benchmark generator's combined lines (`generate_lines`, re-exported);
- `parser_for(fmt)`: the preset parser when `fmt` is a preset's text, else the compiled format;
- hypothesis strategies: `mutated` (one mutation of a line, from the kinds a test file passes),
  `batch_lines` (realistic, mutated and arbitrary lines) and `stamps` (a BatchStamp for a batch);
- `batch_property` (the PROPERTY settings and `given(data=st.data())`), `draw_pools` (the line pools
  of one `auto` batch), `AUTO_PARSER_PATHS`;
- the comparison: `stamped_records` (parse and stamp: the definition both encoders must meet),
  `outcome` (a result or the exception type raised), `DirectEncoding` (what a test file says about
  its encoding) with `assert_paths_agree` (draw a batch and its stamp, encode it on both paths,
  compare), and `assert_every_line_parses`.

Only the encoding-specific parts (which formats, which mutations, paths and resources, how outputs
are compared) stay in the test files.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logsidecar.parse.access import PRESETS, AccessLogParser, compile_logformat, preset_parser
from logsidecar.record import PARSE_ERROR, LogRecord
from logsidecar.stamp import BatchStamp, uid_prefix
from tests.support.paths import BENCHMARKS

sys.path.insert(0, str(BENCHMARKS))
from generate_logs import generate_lines  # noqa: E402

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def batch_property(test: Callable[..., None]) -> Callable[..., None]:
    """`test(..., data)` as a PROPERTY test drawing interactively from `data` (`st.data()`)."""
    return PROPERTY(given(data=st.data())(test))


# --- custom formats and realistic lines for them -----------------------------------------------------

XFF_FORMAT = '%h %l %u %t "%r" %>s %b %D "%{X-Forwarded-For}i" %L'
ISO_FORMAT = '%a %{%Y-%m-%dT%H:%M:%S}t %{ms}T "%r" %>s %O'
URL_QUERY_FORMAT = '%h %t "%U%q" %>s %b'  # %U%q without %r: url.original is synthesised
METHOD_PATH_FORMAT = "%h %t %H %m %U %>s %B"
METHOD_FORMAT = '%h %t %m "%H" %>s %B %k "%{Host}i"'  # protocol and method without %r or %U
HEXTID_FORMAT = '%v:%p %h %t "%r" %>s %B %{hextid}P'
NO_STATUS_FORMAT = '%h %t "%r" %b "%{Host}i"'  # no %>s: every record gets the default severity
UNQUOTED_REQUEST_FORMAT = "%h %t %>s %b %r"  # %r last and not in quotes: its text may hold a quote
# A quoted user (may hold spaces), %X (its `-` is a value) and conditioned fields (`-` when unmet).
USER_CONN_FORMAT = '%h "%u" %t "%r" %>s %b %X %!200t %404{Referer}i'

QUOTED = r'(?:[^"\\]|\\.)*'  # Apache-escaped text inside quotes
COMBINED_FIELDS = re.compile(
    rf'(?P<h>\S+) (?P<l>\S+) (?P<u>\S+) \[(?P<t>[^\]]+)\] "(?P<r>{QUOTED})" (?P<s>\d+) (?P<b>\S+)'
    rf' "(?P<ref>{QUOTED})" "(?P<ua>{QUOTED})"'
)
MONTHS = {m: n for n, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
GENERATED_PRESETS = ("common", "combined", "vhost_combined")  # generate_lines writes these itself


def _render(fmt: str, fields: dict[str, str], n: int) -> str:
    """One line of `fmt` made of a generated combined line's fields (`n` varies the extra ones)."""
    h, t, r, s, b = fields["h"], fields["t"], fields["r"], fields["s"], fields["b"]
    method, _, rest = r.partition(" ")
    target, _, protocol = rest.partition(" ")
    path, sep, query = target.partition("?")
    if fmt == PRESETS["combinedio"]:
        return f'{h} - - [{t}] "{r}" {s} {b} "{fields["ref"]}" "{fields["ua"]}" {300 + n} {b}'
    if fmt == PRESETS["referer"]:
        return f"{fields['ref']} -> {path}"
    if fmt == PRESETS["agent"]:
        return fields["ua"]
    if fmt == XFF_FORMAT:
        xff = "-" if n % 3 == 0 else f"10.0.{n % 250}.{n % 7}"
        log_id = "-" if n % 4 == 0 else f"ZeRo{n:06d}AAAB"
        return f'{h} - - [{t}] "{r}" {s} {b} {n * 137} "{xff}" {log_id}'
    if fmt == HEXTID_FORMAT:
        size = "0" if b == "-" else b
        return f'www.example.{n % 3}:{443 if n % 2 else 80} {h} [{t}] "{r}" {s} {size} {n * 7919:x}'
    if fmt == NO_STATUS_FORMAT:
        return f'{h} [{t}] "{r}" {b} "www.example.{n % 5}"'
    if fmt == UNQUOTED_REQUEST_FORMAT:
        quoted = r.replace("?", '?q="x"&', 1) if n % 4 == 0 else r  # a raw quote in the target
        return f"{h} [{t}] {s} {b} {quoted}"
    if fmt == URL_QUERY_FORMAT:
        return f'{h} [{t}] "{path}{sep}{query}" {s} {b}'
    if fmt == METHOD_PATH_FORMAT:
        return f"{h} [{t}] {protocol or '-'} {method} {path} {s} {b}"
    if fmt == METHOD_FORMAT:
        return f'{h} [{t}] {method} "{protocol or "-"}" {s} {b} {n % 100} "www.example.{n % 5}"'
    if fmt == USER_CONN_FORMAT:
        user = ["-", "frank", "john doe", "o'neil"][n % 4]
        unmet = f"[{t}]" if s != "200" else "-"
        return (
            f'{h} "{user}" [{t}] "{r}" {s} {b} {"+-X"[n % 3]} {unmet} {fields["ref"] if s == "404" else "-"}'
        )
    if fmt == ISO_FORMAT:
        day, month, rest_t = t.split("/", 2)
        year, hour, minute, second_zone = rest_t.split(":", 3)
        iso = f"{year}-{MONTHS[month]:02d}-{day}T{hour}:{minute}:{second_zone[:2]}"
        return f'{h} {iso} {n % 900} "{r}" {s} {b}'
    raise AssertionError(f"no renderer for {fmt!r}")


def realistic_lines(fmt: str, count: int) -> list[bytes]:
    """`count` lines of `fmt` (a preset's text or a format above) that parse without errors."""
    for name in GENERATED_PRESETS:
        if fmt == PRESETS[name]:
            return list(generate_lines(name, count, seed=7))
    out = []
    for n, line in enumerate(generate_lines("combined", count, seed=7)):
        match = COMBINED_FIELDS.fullmatch(line.decode())
        assert match is not None, line
        out.append(_render(fmt, match.groupdict(), n).encode())
    return out


def parser_for(fmt: str) -> AccessLogParser:
    """The preset's parser (named after the preset) when `fmt` is a preset's text, else `fmt` compiled."""
    for name, text in PRESETS.items():
        if fmt == text:
            return preset_parser(name)
    return compile_logformat(fmt)


def unparsed_bodies(parser: AccessLogParser, lines: Sequence[bytes]) -> list[str]:
    """The bodies of the records of `lines` that carry a parse error."""
    return [r.body for r in parser.parse(lines) if PARSE_ERROR in r.attributes]


def assert_every_line_parses(lines_by_format: Mapping[str, Sequence[bytes]]) -> None:
    """Every line of every format parses (so the direct encoders' fast path is what gets tested)."""
    for fmt, lines in lines_by_format.items():
        assert unparsed_bodies(parser_for(fmt), lines) == [], fmt


# --- mutations -----------------------------------------------------------------------------------------

# Mutations every test file draws from besides its own insertions and replacements.
STRUCTURAL_MUTATIONS = ("remove_field", "size", "empty", "cr", "cut", "bad_time")
QUOTED_FIELD = re.compile(rb'"((?:[^"\\]|\\.)*)"')
# Time fields and texts that match their pattern but are not real instants (flagged, not dropped).
CLF_TIME_TEXT = re.compile(rb"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\]")
ISO_TIME_TEXT = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
BAD_CLF_TIMES = [b"30/Feb/2024:10:00:00 +0000", b"10/Oct/2000:24:00:00 +0000", b"10/Oct/2000:13:55:36",
                 b"10/Oct/2000:13:55:36 +2500", b"10/Oct/2000:13:55:36 0700", b"99/Foo/2000:13:55:36 -0700"]  # fmt: skip
BAD_ISO_TIMES = [b"2024-02-30T10:00:00", b"2000-10-10T24:00:00", b"2000-13-10T10:00:00"]


@st.composite
def mutated(
    draw: st.DrawFn,
    line: bytes,
    inserts: Mapping[str, Sequence[bytes]],
    sizes: Sequence[bytes],
    quoted_values: Mapping[str, st.SearchStrategy[bytes]] | None = None,
) -> bytes:
    """`line` with one mutation, its kind drawn from: a key of `inserts` (insert one of its byte
    strings anywhere), a key of `quoted_values` (a drawn value replaces a quoted field's text, or a
    token when the line has no quoted field), or one of STRUCTURAL_MUTATIONS: remove a field,
    replace a number (or `-`) by one of `sizes` (or append one), empty line, trailing CR, cut, a
    time that is not a real instant."""
    quoted_values = quoted_values or {}
    kind = draw(st.sampled_from([*inserts, *quoted_values, *STRUCTURAL_MUTATIONS]))
    if kind in inserts:
        at = draw(st.integers(0, len(line)))
        return line[:at] + draw(st.sampled_from(inserts[kind])) + line[at:]
    if kind in quoted_values:
        value = draw(quoted_values[kind])
        quoted = list(QUOTED_FIELD.finditer(line))
        if not quoted:  # no quoted field: put the value in place of a token
            tokens = line.split(b" ")
            tokens[draw(st.integers(0, len(tokens) - 1))] = value
            return b" ".join(tokens)
        match = draw(st.sampled_from(quoted))
        return line[: match.start(1)] + value + line[match.end(1) :]
    if kind == "remove_field":
        tokens = line.split(b" ")
        del tokens[draw(st.integers(0, len(tokens) - 1))]
        return b" ".join(tokens)
    if kind == "size":
        tokens = line.split(b" ")
        numeric = [i for i, t in enumerate(tokens) if t.isdigit() or t == b"-"]
        if not numeric:
            return line + b" " + draw(st.sampled_from(sizes))
        tokens[draw(st.sampled_from(numeric))] = draw(st.sampled_from(sizes))
        return b" ".join(tokens)
    if kind == "bad_time":
        for pattern, bad in ((CLF_TIME_TEXT, BAD_CLF_TIMES), (ISO_TIME_TEXT, BAD_ISO_TIMES)):
            match = pattern.search(line)
            if match is not None:
                group = 1 if pattern.groups else 0
                return line[: match.start(group)] + draw(st.sampled_from(bad)) + line[match.end(group) :]
        return line
    if kind == "empty":
        return b""
    if kind == "cr":
        return line + b"\r"
    assert kind == "cut", kind
    return line[: draw(st.integers(0, len(line)))]


@st.composite
def batch_lines(
    draw: st.DrawFn,
    pools: Sequence[Sequence[bytes]],
    mutation: Callable[[bytes], st.SearchStrategy[bytes]],
    arbitrary: st.SearchStrategy[bytes],
    max_lines: int,
) -> list[bytes]:
    """A batch mixing (a) realistic lines from `pools` (half the lines), (b) lines changed by
    `mutation` once or twice (a third), (c) `arbitrary` lines (a sixth)."""
    count = draw(st.integers(1, max_lines))
    lines = []
    for _ in range(count):
        pool = draw(st.sampled_from(pools))
        line = draw(st.sampled_from(pool))
        kind = draw(st.sampled_from(["real", "real", "real", "mutated", "mutated", "bytes"]))
        if kind == "mutated":
            line = draw(mutation(line))
            if draw(st.booleans()):
                line = draw(mutation(line))
        elif kind == "bytes":
            line = draw(arbitrary)
        lines.append(line)
    return lines


@st.composite
def stamps(
    draw: st.DrawFn, count: int, paths: Sequence[str], resources: Sequence[dict[str, Any]]
) -> BatchStamp:
    """A stamp for `count` lines: increasing end offsets (some beyond 32 bits), a path from `paths`,
    a resource from `resources`, one time in four a few truncated lines and, one time in two, the
    path as the writer (a container) sees it."""
    start = draw(st.integers(0, 2**40))
    steps = draw(st.lists(st.integers(1, 70_000), min_size=count, max_size=count))
    ends, offset = [], start
    for step in steps:
        offset += step
        ends.append(offset)
    # Mostly none: a truncated line takes the record path, so many would hide the fast path.
    truncated = (
        draw(st.sets(st.integers(0, count - 1), max_size=3)) if draw(st.integers(0, 3)) == 0 else set()
    )
    file_key = draw(st.sampled_from(["dev:ino:1", "8:1:4242", "é"]))
    return BatchStamp(
        file_key,
        draw(st.sampled_from(paths)),
        uid_prefix(file_key),
        ends,
        truncated,
        draw(st.sampled_from(resources)),
        # `docker attach`: the container's path in log.file.path, the host's in logsidecar.host.path
        draw(st.sampled_from([None, None, "/var/log/apache2/access.log", "/ä/日本.log"])),
    )


# --- comparison ------------------------------------------------------------------------------------------

T = TypeVar("T")


def stamped_records(parser: Any, lines: Sequence[bytes], stamp: BatchStamp) -> tuple[list[LogRecord], int]:
    """The definition the direct encoders must meet, up to encoding: parse, stamp; with the count
    of records that carry a parse error."""
    records: list[LogRecord] = parser.parse(lines)
    stamp.apply(records)
    return records, sum(PARSE_ERROR in r.attributes for r in records)


def outcome(encode: Callable[[], T]) -> T | type[BaseException]:
    """What `encode()` returns, or the type of what it raises (the two paths must agree on both)."""
    try:
        return encode()
    except Exception as exc:  # noqa: BLE001 - compared, not hidden
        return type(exc)


@dataclass(frozen=True)
class DirectEncoding(Generic[T]):
    """One encoding under test: how the direct encoder and the record path (the definition) encode a
    batch with a parser, how stamps for a batch are drawn, and how the two outcomes are compared
    (`assert_same(direct, record, line_count)`)."""

    direct: Callable[[Any, Sequence[bytes], BatchStamp], T]
    record: Callable[[Any, Sequence[bytes], BatchStamp], T]
    stamps: Callable[[int], st.SearchStrategy[BatchStamp]]
    assert_same: Callable[[T | type[BaseException], T | type[BaseException], int], None]


def assert_paths_agree(
    data: st.DataObject,
    lines: st.SearchStrategy[list[bytes]],
    direct_parser: Any,
    record_parser: Any,
    encoding: DirectEncoding[T],
) -> None:
    """Draw a batch from `lines` and a stamp for it; `direct_parser`'s direct encoder and
    `record_parser`'s record path must agree on it (same output, or the same exception type)."""
    batch, stamp = draw_batch(data, lines, encoding.stamps)
    direct = outcome(lambda: encoding.direct(direct_parser, batch, stamp))
    record = outcome(lambda: encoding.record(record_parser, batch, stamp))
    encoding.assert_same(direct, record, len(batch))


def draw_batch(
    data: st.DataObject,
    lines: st.SearchStrategy[list[bytes]],
    stamp_for: Callable[[int], st.SearchStrategy[BatchStamp]],
) -> tuple[list[bytes], BatchStamp]:
    """Draw a batch's lines from `lines`, then a stamp for them from `stamp_for(len(lines))`."""
    drawn = data.draw(lines, label="lines")
    return drawn, data.draw(stamp_for(len(drawn)), label="stamp")


# The paths an `auto` parser is given (it takes a hint from the file name).
AUTO_PARSER_PATHS = [None, "/var/log/apache2/access.log", "/var/log/apache2/error.log"]


def draw_pools(data: st.DataObject, pools: Sequence[list[bytes]]) -> list[list[bytes]]:
    """One to three of `pools` (with repeats) that a batch of an `auto` sequence draws lines from."""
    return data.draw(st.lists(st.sampled_from(pools), min_size=1, max_size=3), label="pools")


# --- lines holding Apache escapes, field by field --------------------------------------------------------

# Each kind of escape httpd writes, and escapes it never writes (a lone backslash, `\x` without two
# hex digits, an unknown letter): the record path keeps those verbatim.
ESCAPES = {
    "quote": b'\\"',
    "backslash": b"\\\\",
    "utf8": b"\\xc3\\xa9",
    "invalid_utf8": b"\\xff\\xfe",
    "cut_utf8": b"\\xc3",
    "newline": b"\\n",
    "tab": b"\\t",
    "lone_backslash": b"\\",
    "x_non_hex": b"\\xzz",
    "x_one_digit": b"\\x4",
    "unknown": b"\\q",
    "dash": b"\\x2d",  # unescapes to `-`, which is a value here, not an absent field
}
# Where in a field's value the escape goes.
ESCAPE_PLACES = {"alone": b"%s", "inside": b"a%sb", "end": b"ab%s"}
# A line of a format with `{field}` for each escapable field (plain text elsewhere), and the
# fields; `target` and `request` are the request line's target and the request line as a whole.
ESCAPE_TEMPLATES: dict[str, tuple[str, ...]] = {
    PRESETS["combined"]: ("logname", "user", "target", "request", "referer", "agent"),
    USER_CONN_FORMAT: ("user", "target", "referer"),
    XFF_FORMAT: ("logname", "user", "target", "xff"),
}
_PLAIN = {"logname": b"ident", "user": b"frank", "referer": b"http://example.com/", "agent": b"curl/8.0",
          "xff": b"10.0.0.9"}  # fmt: skip


def _escape_line(fmt: str, values: Mapping[str, bytes]) -> bytes:
    """A line of `fmt` (a key of ESCAPE_TEMPLATES) with `values` in its escapable fields."""
    get = {**_PLAIN, **values}.get
    request = get("request") or b"GET /p/" + (get("target") or b"x") + b"?q=1 HTTP/1.1"
    time = b"[10/Oct/2000:13:55:36 -0700]"
    if fmt == PRESETS["combined"]:
        return b'10.1.2.3 %s %s %s "%s" 200 2326 "%s" "%s"' % (
            get("logname"), get("user"), time, request, get("referer"), get("agent"),
        )  # fmt: skip
    if fmt == USER_CONN_FORMAT:
        return b'10.1.2.3 "%s" %s "%s" 404 12 + %s %s' % (get("user"), time, request, time, get("referer"))
    assert fmt == XFF_FORMAT, fmt
    return b'10.1.2.3 %s %s %s "%s" 200 5 1234 "%s" ZeRo00001' % (
        get("logname"), get("user"), time, request, get("xff"),
    )  # fmt: skip


def escaped_lines() -> list[tuple[str, str, bytes]]:
    """(format, case id, line) for every escape of ESCAPES at every place of ESCAPE_PLACES in every
    escapable field of each format of ESCAPE_TEMPLATES, and lines with invalid UTF-8 in several
    fields at once (the record flag's place is that of the first)."""
    out = []
    for fmt, fields in ESCAPE_TEMPLATES.items():
        for field_name in fields:
            for escape_name, escape in ESCAPES.items():
                for place_name, place in ESCAPE_PLACES.items():
                    line = _escape_line(fmt, {field_name: place % escape})
                    out.append((fmt, f"{field_name}-{escape_name}-{place_name}", line))
        for first in fields:  # invalid from `first` on, valid escapes before it
            values = {}
            for field_name in fields:
                values[field_name] = (
                    b"v\\xc3\\xa9" if fields.index(field_name) < fields.index(first) else b"i\\xff"
                )
            out.append((fmt, f"invalid-from-{first}", _escape_line(fmt, values)))
    return out
