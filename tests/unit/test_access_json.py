"""The direct JSON-lines path (`parse/access_json.py`) against its definition.

For every batch, `encode_json_lines(lines, stamp)` of a parser must be byte-for-byte
`record.encode_json_lines` of `parse(lines)` stamped with `stamp.apply`, apart from the value of
`observed_timestamp` (one `utcnow()` per batch on each path, normalised here), and its unparsed count
must be the number of those records with `logsidecar.parse_error`. Checked with hypothesis over every
access preset and a few custom LogFormats (realistic lines, mutated lines, arbitrary bytes), through
the `auto` parser over sequences of batches (its lock must end where `parse` leaves it), and at the
pipeline level with the real StdoutSink writing into memory.

Test double: `ScriptedSource` stands in for the Tailer (as in test_pipeline.py): it emits exactly the
batches a test gives and records the acknowledgements.
"""

from __future__ import annotations

import asyncio
import io
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logsidecar.parse import build_parser
from logsidecar.parse.access import PRESETS, AccessLogParser, compile_logformat, preset_parser
from logsidecar.parse.access_json import json_encoder_for, lines_needing_escapes
from logsidecar.parse.detect import AutoParser
from logsidecar.pipeline import ParserSelector, Pipeline, PipelineOptions
from logsidecar.record import PARSE_ERROR, encode_json_lines
from logsidecar.sinks.stdout import StdoutFormat, StdoutSink
from logsidecar.stamp import BatchStamp, uid_prefix
from logsidecar.tail.options import ReadBatch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from generate_logs import generate_lines  # noqa: E402

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- formats and realistic lines for them ----------------------------------------------------------

XFF_FORMAT = '%h %l %u %t "%r" %>s %b %D "%{X-Forwarded-For}i" %L'
ISO_FORMAT = '%a %{%Y-%m-%dT%H:%M:%S}t %{ms}T "%r" %>s %O'
URL_QUERY_FORMAT = '%h %t "%U%q" %>s %b'  # %U%q without %r: url.original is synthesised
METHOD_PATH_FORMAT = "%h %t %H %m %U %>s %B"
METHOD_FORMAT = '%h %t %m "%H" %>s %B %k "%{Host}i"'  # protocol and method without %r or %U

CUSTOM_FORMATS = (XFF_FORMAT, ISO_FORMAT, URL_QUERY_FORMAT, METHOD_PATH_FORMAT, METHOD_FORMAT)

QUOTED = r'(?:[^"\\]|\\.)*'  # Apache-escaped text inside quotes
COMBINED_FIELDS = re.compile(
    rf'(?P<h>\S+) (?P<l>\S+) (?P<u>\S+) \[(?P<t>[^\]]+)\] "(?P<r>{QUOTED})" (?P<s>\d+) (?P<b>\S+)'
    rf' "(?P<ref>{QUOTED})" "(?P<ua>{QUOTED})"'
)
MONTHS = {m: n for n, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


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
    day, month, rest_t = t.split("/", 2)
    year, hour, minute, second_zone = rest_t.split(":", 3)
    iso = f"{year}-{MONTHS[month]:02d}-{day}T{hour}:{minute}:{second_zone[:2]}"
    if fmt == ISO_FORMAT:
        return f'{h} {iso} {n % 900} "{r}" {s} {b}'
    if fmt == URL_QUERY_FORMAT:
        return f'{h} [{t}] "{path}{sep}{query}" {s} {b}'
    if fmt == METHOD_PATH_FORMAT:
        return f"{h} [{t}] {protocol or '-'} {method} {path} {s} {b}"
    if fmt == METHOD_FORMAT:
        return f'{h} [{t}] {method} "{protocol or "-"}" {s} {b} {n % 100} "www.example.{n % 5}"'
    raise AssertionError(f"no renderer for {fmt!r}")


def _realistic_lines(fmt: str, count: int = 150) -> list[bytes]:
    for name in ("common", "combined", "vhost_combined"):
        if fmt == PRESETS[name]:
            return list(generate_lines(name, count, seed=7))
    out = []
    for n, line in enumerate(generate_lines("combined", count, seed=7)):
        match = COMBINED_FIELDS.fullmatch(line.decode())
        assert match is not None, line
        out.append(_render(fmt, match.groupdict(), n).encode())
    return out


ALL_FORMATS = [*PRESETS.values(), *CUSTOM_FORMATS]
FORMAT_IDS = [*PRESETS, "xff", "iso_time", "url_query", "method_path", "method"]
REALISTIC = {fmt: _realistic_lines(fmt) for fmt in ALL_FORMATS}


def _parser(fmt: str) -> AccessLogParser:
    for name, text in PRESETS.items():
        if fmt == text:
            return preset_parser(name)
    return compile_logformat(fmt)


# Parsers live across examples, so their caches (request lines, times, JSON pieces) get hits and
# evictions as they would in a long run. Two per format: the paths share no cache.
DIRECT_PARSERS = {fmt: _parser(fmt) for fmt in ALL_FORMATS}
RECORD_PARSERS = {fmt: _parser(fmt) for fmt in ALL_FORMATS}

# --- mutations ---------------------------------------------------------------------------------------

INSERTS = {
    "quote": [b'"', b' "', b'" "'],
    "escape": [b'\\"', b"\\", b"\\\\", b"\\x41", b"\\xe9", b"\\xc3\\xa9", b"\\xff", b"\\n", b"\\t"],
    # Every control byte but the newline (lines never hold one), and DEL (not a JSON escape).
    "control": [bytes([byte]) for byte in range(0x20) if byte != 0x0A] + [b"\x1b[31m", b"\x7f"],
    "invalid_utf8": [b"\xff", b"\xc3", b"\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"],
    "unicode": ["é".encode(), "日本語".encode(), "\u2028".encode(), "\U0001f600".encode(), "\ufeff".encode()],
    "separator": [b" ", b"-", b"[", b"]", b":"],
}
SIZES = [b"0", b"007", b"00", b"1" * 25, b"9" * 19, b"9" * 18, "١٢٣".encode(), "１２".encode(), b"-", b"-1"]


@st.composite
def mutated(draw: st.DrawFn, line: bytes) -> bytes:
    kind = draw(st.sampled_from([*INSERTS, "remove_field", "size", "empty", "cr", "cut"]))
    if kind in INSERTS:
        at = draw(st.integers(0, len(line)))
        return line[:at] + draw(st.sampled_from(INSERTS[kind])) + line[at:]
    if kind == "remove_field":
        tokens = line.split(b" ")
        del tokens[draw(st.integers(0, len(tokens) - 1))]
        return b" ".join(tokens)
    if kind == "size":
        tokens = line.split(b" ")
        numeric = [i for i, t in enumerate(tokens) if t.isdigit() or t == b"-"]
        if not numeric:
            return line + b" " + draw(st.sampled_from(SIZES))
        tokens[draw(st.sampled_from(numeric))] = draw(st.sampled_from(SIZES))
        return b" ".join(tokens)
    if kind == "empty":
        return b""
    if kind == "cr":
        return line + b"\r"
    return line[: draw(st.integers(0, len(line)))]


@st.composite
def batch_lines(draw: st.DrawFn, pools: Sequence[Sequence[bytes]], max_lines: int = 24) -> list[bytes]:
    """A batch mixing (a) realistic lines from `pools`, (b) mutations of them, (c) arbitrary bytes."""
    count = draw(st.integers(1, max_lines))
    lines = []
    for _ in range(count):
        pool = draw(st.sampled_from(pools))
        line = draw(st.sampled_from(pool))
        kind = draw(st.sampled_from(["real", "real", "real", "mutated", "mutated", "bytes"]))
        if kind == "mutated":
            line = draw(mutated(line))
            if draw(st.booleans()):
                line = draw(mutated(line))
        elif kind == "bytes":
            line = draw(st.binary(max_size=60).filter(lambda b: b"\n" not in b))
        lines.append(line)
    return lines


PATHS = ["/var/log/apache2/access.log", '/logs/ü/acc"ess\\.log', "other_vhosts_access.log", "x"]
RESOURCES = [
    {"service.name": "apache-httpd", "host.name": "web-1"},
    {},
    {"k": 'é"\\\x01', "n": 3, "f": 1.5, "b": True, "l": ["a", "b"]},
]


@st.composite
def stamps(draw: st.DrawFn, count: int) -> BatchStamp:
    """A stamp for `count` lines: random increasing end offsets, a random truncated index set."""
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
        draw(st.sampled_from(PATHS)),
        uid_prefix(file_key),
        ends,
        truncated,
        draw(st.sampled_from(RESOURCES)),
    )


# --- comparison --------------------------------------------------------------------------------------

OBSERVED = re.compile(rb'^(\{"timestamp":(?:null|"[^"]*"),"observed_timestamp":)"[^"]*"', re.MULTILINE)


def normalised(data: bytes) -> bytes:
    """`data` with every record's observed_timestamp replaced by a fixed value."""
    return OBSERVED.sub(rb'\1"OBSERVED"', data)


def record_path(parser: Any, lines: Sequence[bytes], stamp: BatchStamp) -> tuple[bytes, int]:
    """The definition: parse, stamp, encode."""
    records = parser.parse(lines)
    stamp.apply(records)
    return encode_json_lines(records), sum(PARSE_ERROR in r.attributes for r in records)


def outcome(encode: Callable[[], tuple[bytes, int]]) -> tuple[bytes, int] | type[BaseException]:
    """What `encode()` returns, or the type of what it raises (the two paths must agree on both)."""
    try:
        return encode()
    except Exception as exc:  # noqa: BLE001 - compared, not hidden
        return type(exc)


def assert_same_output(
    direct: tuple[bytes, int] | type[BaseException],
    ordinary: tuple[bytes, int] | type[BaseException],
    lines: int,
) -> None:
    assert isinstance(direct, tuple), direct
    assert isinstance(ordinary, tuple), ordinary
    data, unparsed = direct
    expected, expected_unparsed = ordinary
    assert data.count(b"\n") == lines
    assert normalised(data) == normalised(expected)
    assert unparsed == expected_unparsed
    # One observed_timestamp per batch on the direct path too.
    assert len(set(re.findall(rb'"observed_timestamp":"([^"]*)"', data))) <= 1


# --- 1. access parsers --------------------------------------------------------------------------------


def test_json_encoder_is_declined_exactly_for_formats_that_synthesise_or_share_keys() -> None:
    declined = {fmt for fmt in ALL_FORMATS if json_encoder_for(_parser(fmt)) is None}
    # referer has %U without %r (url.original = %U%q), as do the two custom %U formats.
    assert declined == {PRESETS["referer"], URL_QUERY_FORMAT, METHOD_PATH_FORMAT}


def test_realistic_lines_parse_without_errors_so_the_fast_path_is_exercised() -> None:
    for fmt in ALL_FORMATS:
        records = _parser(fmt).parse(REALISTIC[fmt])
        assert [r.body for r in records if PARSE_ERROR in r.attributes] == [], fmt


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=FORMAT_IDS)
@PROPERTY
@given(data=st.data())
def test_access_direct_json_lines_equal_parse_stamp_encode(fmt: str, data: st.DataObject) -> None:
    lines = data.draw(batch_lines([REALISTIC[fmt]]), label="lines")
    stamp = data.draw(stamps(len(lines)), label="stamp")
    direct = outcome(lambda: DIRECT_PARSERS[fmt].encode_json_lines(lines, stamp))
    ordinary = outcome(lambda: record_path(RECORD_PARSERS[fmt], lines, stamp))
    assert_same_output(direct, ordinary, len(lines))


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=FORMAT_IDS)
def test_access_direct_json_lines_equal_parse_stamp_encode_on_a_large_clean_batch(fmt: str) -> None:
    lines = REALISTIC[fmt]
    stamp = BatchStamp(
        "k", PATHS[0], uid_prefix("k"), [100 * (i + 1) for i in range(len(lines))], set(), RESOURCES[0]
    )
    direct = _parser(fmt).encode_json_lines(lines, stamp)
    assert_same_output(direct, record_path(_parser(fmt), lines, stamp), len(lines))
    assert direct[1] == 0


def test_access_direct_json_lines_of_an_empty_batch_is_empty() -> None:
    stamp = BatchStamp("k", PATHS[0], uid_prefix("k"), [], set(), {})
    assert preset_parser("combined").encode_json_lines([], stamp) == (b"", 0)


# --- 2. auto, over sequences of batches ----------------------------------------------------------------


def _json_lines() -> list[bytes]:
    out = []
    for n, line in enumerate(generate_lines("combined", 40, seed=11)):
        out.append(orjson.dumps({"message": line.decode(), "status": 200 + n, "level": "info", "n": n}))
    out += [b'{"msg": "unterminated', b"{}", b'{"a": [1, 2, {"b": null}]}', b"[1, 2]"]
    return out


AUTO_POOLS = [
    list(generate_lines("combined", 120, seed=3)),
    list(generate_lines("common", 60, seed=4)),
    list(generate_lines("vhost_combined", 40, seed=5)),
    list(generate_lines("error", 60, seed=6)),
    _json_lines(),
]


@PROPERTY
@given(data=st.data())
def test_auto_direct_json_lines_equal_parse_stamp_encode_over_batch_sequences(data: st.DataObject) -> None:
    """Batch by batch, and the lock (`format_name`) after each batch, equal; a line no candidate
    parses gets the verdict (format and reason) of the format the whole batch locks onto."""
    path = data.draw(st.sampled_from([None, "/var/log/apache2/access.log", "/var/log/apache2/error.log"]))
    direct_auto = AutoParser(path=path)
    record_auto = AutoParser(path=path)
    batches = data.draw(st.integers(1, 5), label="batches")
    for _ in range(batches):
        pools = data.draw(st.lists(st.sampled_from(AUTO_POOLS), min_size=1, max_size=3), label="pools")
        lines = data.draw(batch_lines(pools, max_lines=16), label="lines")
        stamp = data.draw(stamps(len(lines)), label="stamp")
        direct = outcome(lambda: direct_auto.encode_json_lines(lines, stamp))  # noqa: B023
        ordinary = outcome(lambda: record_path(record_auto, lines, stamp))  # noqa: B023
        assert direct_auto.format_name == record_auto.format_name
        assert_same_output(direct, ordinary, len(lines))


@PROPERTY
@given(data=st.data())
def test_auto_direct_json_lines_equal_byte_for_byte_when_every_line_parses(data: st.DataObject) -> None:
    """Realistic lines only (every line parses as some format): full byte equality, lock included."""
    direct_auto = AutoParser()
    record_auto = AutoParser()
    for _ in range(data.draw(st.integers(1, 5), label="batches")):
        pools = data.draw(st.lists(st.sampled_from(AUTO_POOLS[:4]), min_size=1, max_size=3), label="pools")
        lines = data.draw(
            st.lists(st.sampled_from([line for pool in pools for line in pool]), min_size=1, max_size=16)
        )
        stamp = data.draw(stamps(len(lines)), label="stamp")
        direct = direct_auto.encode_json_lines(lines, stamp)
        assert_same_output(direct, record_path(record_auto, lines, stamp), len(lines))
        assert direct_auto.format_name == record_auto.format_name


def test_a_line_with_a_size_beyond_64_bits_is_still_written_as_one_json_line() -> None:
    lines = [b'127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1111111111111111111111111']
    stamp = BatchStamp("k", PATHS[0], uid_prefix("k"), [10], set(), {})
    data, _ = preset_parser("common").encode_json_lines(lines, stamp)
    assert data.count(b"\n") == 1


COMBINED_LINE = next(iter(generate_lines("combined", 1, seed=1)))
ERROR_LINE = next(iter(generate_lines("error", 1, seed=1)))


def test_auto_direct_verdict_of_an_unparsable_line_is_that_of_the_final_lock() -> None:
    direct_auto, record_auto = AutoParser(), AutoParser()
    stamp = BatchStamp("k", PATHS[0], uid_prefix("k"), [10], set(), {})
    direct_auto.encode_json_lines([COMBINED_LINE], stamp)
    record_path(record_auto, [COMBINED_LINE], stamp)
    assert direct_auto.format_name == record_auto.format_name == "combined"
    lines = [ERROR_LINE, b"garbage", COMBINED_LINE]
    stamp = BatchStamp("k", PATHS[0], uid_prefix("k"), [20, 30, 40], set(), {})
    direct = direct_auto.encode_json_lines(lines, stamp)
    ordinary = record_path(record_auto, lines, stamp)
    assert direct_auto.format_name == record_auto.format_name == "combined"
    assert normalised(direct[0]) == normalised(ordinary[0])


# --- 3. the pipeline -------------------------------------------------------------------------------------


class ScriptedSource:
    """Test double for the Tailer: emits the given batches in order, then waits to be stopped."""

    def __init__(self, batches: Sequence[ReadBatch]) -> None:
        self.batches = list(batches)
        self.acks: list[tuple[str, int]] = []
        self._stopped = asyncio.Event()

    async def run(self, emit: Callable[[ReadBatch], Awaitable[None]]) -> None:
        for batch in self.batches:
            await emit(batch)
        await self._stopped.wait()

    def acknowledge(self, file_key: str, offset: int) -> None:
        self.acks.append((file_key, offset))

    async def stop(self) -> None:
        self._stopped.set()

    def stats(self) -> dict[str, Any]:
        return {}


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


RESOURCE = {"service.name": "apache-httpd", "host.name": "test-host"}


def _pipeline_batches() -> list[ReadBatch]:
    """Two files (access: combined then mutated lines; a common-format one), several batches each."""
    combined = list(generate_lines("combined", 300, seed=21))
    common = list(generate_lines("common", 100, seed=22))
    mutated_lines = [
        combined[0][:20] + b'\\"' + combined[0][20:],
        b"",
        combined[1] + b"\r",
        combined[2].replace(b"HTTP/", b"HT\\x41TP/"),
        b"\xff\xfe not utf-8",
        combined[3] + b"\x01",
        "é unparsable".encode(),
    ]
    batches: list[ReadBatch] = []
    offsets = {"a": 0, "b": 0}

    def add(key: str, path: str, lines: list[bytes], truncated: set[int] | None = None) -> None:
        ends = []
        for line in lines:
            offsets[key] += len(line) + 1
            ends.append(offsets[key])
        batches.append(ReadBatch(key, path, lines, ends, truncated or set()))

    add("a", "/var/log/apache2/access.log", combined[:100])
    add("b", "/var/log/apache2/ssl_access.log", common[:50])
    add("a", "/var/log/apache2/access.log", combined[100:200] + mutated_lines, {3})
    add("b", "/var/log/apache2/ssl_access.log", common[50:] + [b"garbage"])
    add("a", "/var/log/apache2/access.log", combined[200:])
    return batches


def _run_pipeline(batches: Sequence[ReadBatch], sink: Any) -> ScriptedSource:
    async def scenario() -> ScriptedSource:
        source = ScriptedSource(batches)
        pipeline = Pipeline(
            source, [sink], ParserSelector(), PipelineOptions(resource=RESOURCE, tune_gc=False)
        )
        task = asyncio.create_task(pipeline.run())
        await until(lambda: pipeline.acknowledgements == len(batches) or task.done())
        if task.done():
            task.result()  # the pipeline stopped early: raise why
        pipeline.request_stop()
        await task
        return source

    return asyncio.run(scenario())


def test_pipeline_stdout_json_writes_the_record_path_bytes_and_acknowledges_every_batch() -> None:
    batches = _pipeline_batches()
    stream = io.BytesIO()
    sink = StdoutSink(StdoutFormat.JSON, stream=stream)
    assert sink.accepts_json_lines
    source = _run_pipeline(batches, sink)
    # The record path, by definition: one auto parser per file, parse, stamp, encode.
    parsers: dict[str, AutoParser] = {}
    expected = b""
    for batch in batches:
        parser = parsers.setdefault(batch.file_key, build_parser("auto", path=batch.path))  # type: ignore[arg-type]
        stamp = BatchStamp(
            batch.file_key,
            batch.path,
            uid_prefix(batch.file_key),
            batch.end_offsets,
            batch.truncated,
            RESOURCE,
        )
        expected += record_path(parser, batch.lines, stamp)[0]
    assert normalised(stream.getvalue()) == normalised(expected)
    assert source.acks == [(batch.file_key, batch.end_offsets[-1]) for batch in batches]


def test_pipeline_acknowledgements_are_the_same_on_the_direct_and_the_record_path() -> None:
    batches = _pipeline_batches()
    direct = _run_pipeline(batches, StdoutSink(StdoutFormat.JSON, stream=io.BytesIO()))
    records_stream = io.BytesIO()
    record_sink = StdoutSink(StdoutFormat.JSON, stream=records_stream)
    record_sink.accepts_json_lines = False  # the same sink taking records: the record path
    by_records = _run_pipeline(batches, record_sink)
    assert direct.acks == by_records.acks
    assert records_stream.getvalue().count(b"\n") == sum(len(b.lines) for b in batches)


def test_pipeline_forwards_a_line_with_a_size_beyond_64_bits_instead_of_stopping() -> None:
    line = b'127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1111111111111111111111111'
    batch = ReadBatch("a", "/var/log/apache2/access.log", [line], [len(line) + 1])
    stream = io.BytesIO()
    source = _run_pipeline([batch], StdoutSink(StdoutFormat.JSON, stream=stream))
    assert source.acks == [("a", len(line) + 1)]
    assert stream.getvalue().count(b"\n") == 1


# --- 4. lines_needing_escapes ---------------------------------------------------------------------------

ESCAPE_ALPHABET = st.sampled_from(
    [b"a", b" ", b'"', b"\\", b"\t", b"\x00", b"\x1f", b"\x7f", "é".encode(), b"\r"]
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.one_of(
            st.lists(ESCAPE_ALPHABET, max_size=12).map(b"".join),
            st.binary(max_size=20).filter(lambda b: b"\n" not in b),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_lines_needing_escapes_are_exactly_those_with_a_backslash_or_a_control_byte(
    lines: list[bytes],
) -> None:
    data = b"\n".join(lines)
    text = data.decode("utf-8", "surrogateescape")
    expected = [i for i, line in enumerate(lines) if b"\\" in line or any(byte < 0x20 for byte in line)]
    assert lines_needing_escapes(data, text) == expected
