"""The direct JSON-lines path (`fastpath/json_dialect.py`) against its definition.

For every batch, `encode_json_lines(lines, stamp)` of a parser must be byte-for-byte
`record.encode_json_lines` of `parse(lines)` stamped with `stamp.apply`, apart from the value of
`observed_timestamp` (one `utcnow()` per batch on each path, normalised here), and its unparsed count
must be the number of those records with `logsidecar.parse_error`. Checked with hypothesis over every
access preset and a few custom LogFormats (realistic lines, mutated lines, arbitrary bytes), through
the `auto` parser over sequences of batches (its lock must end where `parse` leaves it), and at the
pipeline level with the real StdoutSink writing into memory.

Test double: `ScriptedSource` (tests/support/scripted_source.py) stands in for the Tailer: it emits
exactly the batches a test gives and records the acknowledgements.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsidecar.fastpath import JSON_LINES, writer_for
from logsidecar.fastpath.access_writer import AccessWriter
from logsidecar.fastpath.batch_scan import (
    escape_marks,
    has_control_bytes,
    lines_needing_escapes,
    offset_hex_list,
)
from logsidecar.fastpath.encoder import PIECE_CACHE_MAX
from logsidecar.fastpath.json_dialect import json_encoder_for
from logsidecar.parse import build_parser
from logsidecar.parse.access import PRESETS, preset_parser
from logsidecar.parse.detect import AutoParser
from logsidecar.pipeline import ParserSelector, Pipeline, PipelineOptions
from logsidecar.record import encode_json_lines, utcnow
from logsidecar.sinks.stdout import StdoutFormat, StdoutSink
from logsidecar.stamp import OFFSET_HEX_DIGITS, BatchStamp, offset_hexes, uid_prefix
from logsidecar.tail.options import ReadBatch
from tests.support import direct_cases
from tests.support.helpers import wait_for_async
from tests.support.scripted_source import ScriptedSource

# --- formats, realistic lines, parsers ---------------------------------------------------------------

CUSTOM_FORMATS = (
    direct_cases.XFF_FORMAT,
    direct_cases.ISO_FORMAT,
    direct_cases.URL_QUERY_FORMAT,
    direct_cases.METHOD_PATH_FORMAT,
    direct_cases.METHOD_FORMAT,
    direct_cases.UNQUOTED_REQUEST_FORMAT,
    direct_cases.USER_CONN_FORMAT,
)
ALL_FORMATS = [*PRESETS.values(), *CUSTOM_FORMATS]
FORMAT_IDS = [
    *PRESETS,
    "xff",
    "iso_time",
    "url_query",
    "method_path",
    "method",
    "unquoted_request",
    "user_conn",
]
REALISTIC = {fmt: direct_cases.realistic_lines(fmt, 150) for fmt in ALL_FORMATS}

# Parsers live across examples, so their caches (request lines, times, JSON pieces) get hits and
# evictions as they would in a long run. Two per format: the paths share no cache.
DIRECT_PARSERS = {fmt: direct_cases.parser_for(fmt) for fmt in ALL_FORMATS}
RECORD_PARSERS = {fmt: direct_cases.parser_for(fmt) for fmt in ALL_FORMATS}

# --- mutations, batches, direct_cases.stamps ----------------------------------------------------------------------

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
ARBITRARY_LINES = st.binary(max_size=60).filter(lambda b: b"\n" not in b)


def json_mutation(line: bytes) -> st.SearchStrategy[bytes]:
    """One insertion (quotes, escapes, control bytes, invalid UTF-8, unicode, separators), size
    replacement or structural change of `line`."""
    return direct_cases.mutated(line, INSERTS, SIZES)


def json_batch_lines(pools: Sequence[Sequence[bytes]], max_lines: int = 24) -> st.SearchStrategy[list[bytes]]:
    return direct_cases.batch_lines(pools, json_mutation, ARBITRARY_LINES, max_lines)


PATHS = ["/var/log/apache2/access.log", '/logs/ü/acc"ess\\.log', "other_vhosts_access.log", "x"]
RESOURCES: list[dict[str, Any]] = [
    {"service.name": "apache-httpd", "host.name": "web-1"},
    {},
    {"k": 'é"\\\x01', "n": 3, "f": 1.5, "b": True, "l": ["a", "b"]},
]


def json_stamps(count: int) -> st.SearchStrategy[BatchStamp]:
    return direct_cases.stamps(count, PATHS, RESOURCES)


# --- comparison --------------------------------------------------------------------------------------

OBSERVED = re.compile(rb'^(\{"timestamp":(?:null|"[^"]*"),"observed_timestamp":)"[^"]*"', re.MULTILINE)


def normalised(data: bytes) -> bytes:
    """`data` with every record's observed_timestamp replaced by a fixed value."""
    return OBSERVED.sub(rb'\1"OBSERVED"', data)


def record_path(parser: Any, lines: Sequence[bytes], stamp: BatchStamp) -> tuple[bytes, int]:
    """The definition: parse, stamp, encode."""
    records, unparsed = direct_cases.stamped_records(parser, lines, stamp)
    return encode_json_lines(records), unparsed


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


def direct_path(parser: Any, lines: Sequence[bytes], stamp: BatchStamp) -> tuple[bytes, int]:
    return writer_for(parser, JSON_LINES)(lines, stamp)


JSON = direct_cases.DirectEncoding(direct_path, record_path, json_stamps, assert_same_output)


# --- 1. access parsers --------------------------------------------------------------------------------


def test_realistic_lines_parse_without_errors_so_the_fast_path_is_exercised() -> None:
    direct_cases.assert_every_line_parses(REALISTIC)


def test_json_encoder_is_declined_exactly_for_formats_that_synthesise_or_share_keys() -> None:
    declined = {fmt for fmt in ALL_FORMATS if json_encoder_for(direct_cases.parser_for(fmt)) is None}
    # referer has %U without %r (url.original = %U%q), as do the two custom %U formats.
    assert declined == {PRESETS["referer"], direct_cases.URL_QUERY_FORMAT, direct_cases.METHOD_PATH_FORMAT}


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=FORMAT_IDS)
@direct_cases.batch_property
def test_access_direct_json_lines_equal_parse_stamp_encode(fmt: str, data: st.DataObject) -> None:
    direct_cases.assert_paths_agree(
        data, json_batch_lines([REALISTIC[fmt]]), DIRECT_PARSERS[fmt], RECORD_PARSERS[fmt], JSON
    )


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=FORMAT_IDS)
def test_access_direct_json_lines_equal_parse_stamp_encode_on_a_large_clean_batch(fmt: str) -> None:
    lines = REALISTIC[fmt]
    stamp = BatchStamp(
        "k", PATHS[0], uid_prefix("k"), [100 * (i + 1) for i in range(len(lines))], set(), RESOURCES[0]
    )
    direct = writer_for(direct_cases.parser_for(fmt), JSON_LINES)(lines, stamp)
    assert_same_output(direct, record_path(direct_cases.parser_for(fmt), lines, stamp), len(lines))
    assert direct[1] == 0


ESCAPED = direct_cases.escaped_lines()


@pytest.mark.parametrize(
    ("fmt", "line"), [(f, line) for f, _, line in ESCAPED], ids=[i for _, i, _ in ESCAPED]
)
def test_access_direct_json_line_with_escapes_equals_parse_stamp_encode(fmt: str, line: bytes) -> None:
    """Each escape kind at each place of each escapable field, between clean lines."""
    lines = [*REALISTIC[fmt][:2], line, REALISTIC[fmt][2]]
    stamp = BatchStamp("k", PATHS[0], uid_prefix("k"), [100, 200, 300, 400], set(), RESOURCES[0])
    direct = direct_path(DIRECT_PARSERS[fmt], lines, stamp)
    assert_same_output(direct, record_path(RECORD_PARSERS[fmt], lines, stamp), len(lines))


def test_escaped_lines_the_record_builder_reads_from_their_row_are_not_sent_to_the_record_path() -> None:
    """Lines holding escapes are written by the escaped loop (the slow-path callback is not asked
    for them) unless their row is not the record builder's."""
    fmt = PRESETS["combined"]
    cases = [(i, line) for f, i, line in ESCAPED if f == fmt]
    lines = [line for _, line in cases]
    parser = direct_cases.parser_for(fmt)
    encoder = json_encoder_for(parser)
    assert encoder is not None
    text = b"\n".join(lines).decode()
    asked: list[int] = []

    def slow(indices: list[int]) -> list[Any]:
        asked.extend(indices)
        return parser.parse([lines[i] for i in indices])

    stamp = BatchStamp("k", PATHS[0], uid_prefix("k"), list(range(1, len(lines) + 1)), set(), {})
    encoder.encode(
        b"\n".join(lines), text, lines, parser.compiled.batch_regex.findall(text), utcnow(), stamp, slow
    )
    sent = {cases[i][0] for i in asked}
    # Exactly the lines the record path cannot read a row from either (the strict regex rejects
    # them: a lone backslash before a closing quote escapes it).
    expected = {i for i, line in cases if parser.compiled.exact_row(line.decode()) is None}
    assert 0 < len(expected) < len(cases) / 10
    assert sent == expected


def test_access_direct_json_lines_of_an_empty_batch_is_empty() -> None:
    stamp = BatchStamp("k", PATHS[0], uid_prefix("k"), [], set(), {})
    assert writer_for(preset_parser("combined"), JSON_LINES)([], stamp) == (b"", 0)


# --- 2. auto, over sequences of batches ----------------------------------------------------------------


def _json_lines() -> list[bytes]:
    out = []
    for n, line in enumerate(direct_cases.generate_lines("combined", 40, seed=11)):
        out.append(orjson.dumps({"message": line.decode(), "status": 200 + n, "level": "info", "n": n}))
    out += [b'{"msg": "unterminated', b"{}", b'{"a": [1, 2, {"b": null}]}', b"[1, 2]"]
    return out


AUTO_POOLS = [
    list(direct_cases.generate_lines("combined", 120, seed=3)),
    list(direct_cases.generate_lines("common", 60, seed=4)),
    list(direct_cases.generate_lines("vhost_combined", 40, seed=5)),
    list(direct_cases.generate_lines("error", 60, seed=6)),
    _json_lines(),
]


@direct_cases.PROPERTY
@given(data=st.data())
def test_auto_direct_json_lines_equal_parse_stamp_encode_over_batch_sequences(data: st.DataObject) -> None:
    """Batch by batch, and the lock (`format_name`) after each batch, equal; a line no candidate
    parses gets the verdict (format and reason) of the format the whole batch locks onto."""
    path = data.draw(st.sampled_from(direct_cases.AUTO_PARSER_PATHS))
    direct_auto = AutoParser(path=path)
    record_auto = AutoParser(path=path)
    batches = data.draw(st.integers(1, 5), label="batches")
    for _ in range(batches):
        pools = direct_cases.draw_pools(data, AUTO_POOLS)
        direct_cases.assert_paths_agree(
            data, json_batch_lines(pools, max_lines=16), direct_auto, record_auto, JSON
        )
        assert direct_auto.format_name == record_auto.format_name


@direct_cases.PROPERTY
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
        stamp = data.draw(json_stamps(len(lines)), label="stamp")
        direct = writer_for(direct_auto, JSON_LINES)(lines, stamp)
        assert_same_output(direct, record_path(record_auto, lines, stamp), len(lines))
        assert direct_auto.format_name == record_auto.format_name


def test_a_line_with_a_size_beyond_64_bits_is_still_written_as_one_json_line() -> None:
    lines = [b'127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1111111111111111111111111']
    stamp = BatchStamp("k", PATHS[0], uid_prefix("k"), [10], set(), {})
    data, _ = writer_for(preset_parser("common"), JSON_LINES)(lines, stamp)
    assert data.count(b"\n") == 1


COMBINED_LINE = next(iter(direct_cases.generate_lines("combined", 1, seed=1)))
ERROR_LINE = next(iter(direct_cases.generate_lines("error", 1, seed=1)))


def test_auto_direct_verdict_of_an_unparsable_line_is_that_of_the_final_lock() -> None:
    direct_auto, record_auto = AutoParser(), AutoParser()
    stamp = BatchStamp("k", PATHS[0], uid_prefix("k"), [10], set(), {})
    writer_for(direct_auto, JSON_LINES)([COMBINED_LINE], stamp)
    record_path(record_auto, [COMBINED_LINE], stamp)
    assert direct_auto.format_name == record_auto.format_name == "combined"
    lines = [ERROR_LINE, b"garbage", COMBINED_LINE]
    stamp = BatchStamp("k", PATHS[0], uid_prefix("k"), [20, 30, 40], set(), {})
    direct = writer_for(direct_auto, JSON_LINES)(lines, stamp)
    ordinary = record_path(record_auto, lines, stamp)
    assert direct_auto.format_name == record_auto.format_name == "combined"
    assert normalised(direct[0]) == normalised(ordinary[0])


# --- 3. the pipeline -------------------------------------------------------------------------------------


RESOURCE = {"service.name": "apache-httpd", "host.name": "test-host"}


def _pipeline_batches() -> list[ReadBatch]:
    """Two files (access: combined then mutated lines; a common-format one), several batches each."""
    combined = list(direct_cases.generate_lines("combined", 300, seed=21))
    common = list(direct_cases.generate_lines("common", 100, seed=22))
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
        await wait_for_async(lambda: pipeline.acknowledgements == len(batches) or task.done(), interval=0.001)
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
    expected = [i for i, line in enumerate(lines) if b"\\" in line or any(byte < 0x20 for byte in line)]
    assert lines_needing_escapes(data) == expected
    marks = escape_marks(data)
    assert marks.count(b"\n") == len(lines) - 1  # what the framing check counts
    assert has_control_bytes(marks) == any(byte < 0x20 for line in lines for byte in line)


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=40))
def test_offset_hex_list_is_offset_hexes_cut_per_line(offsets: list[int]) -> None:
    hexes = offset_hexes(offsets)
    expected = [hexes[at : at + OFFSET_HEX_DIGITS] for at in range(0, len(hexes), OFFSET_HEX_DIGITS)]
    assert offset_hex_list(offsets) == expected
    assert offset_hex_list(offsets, encoded=True) == [digits.encode() for digits in expected]


def test_request_cache_stays_bounded_and_lines_after_its_clearing_are_written_the_same() -> None:
    # 2.5 x the bound of distinct request lines, then the first ones again (evicted by then).
    fmt = PRESETS["combined"]
    distinct = [
        f'10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /item/{n}?q={n % 7} HTTP/1.1" 200 {n} "-" "ua"'.encode()
        for n in range(PIECE_CACHE_MAX * 5 // 2)
    ]
    lines = distinct + distinct[:50]
    stamp = BatchStamp("k", PATHS[0], uid_prefix("k"), [100 * (i + 1) for i in range(len(lines))], set(), {})
    parser = direct_cases.parser_for(fmt)
    encoder = json_encoder_for(parser)
    assert encoder is not None
    direct = AccessWriter(parser, encoder, encode_json_lines).write(lines, stamp)
    assert_same_output(direct, record_path(direct_cases.parser_for(fmt), lines, stamp), len(lines))
    sizes = encoder.request_cache_sizes()
    assert sizes and all(0 < size <= PIECE_CACHE_MAX for size in sizes)
