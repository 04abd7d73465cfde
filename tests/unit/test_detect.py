"""`auto` format detection: by file name and content, per file, following format changes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logsidecar.parse import build_parser
from logsidecar.parse.detect import (
    ACCESS_CANDIDATES,
    DEFAULT_CANDIDATES,
    NO_MATCH,
    VARIANTS,
    AutoParser,
    candidate_order,
)
from logsidecar.record import FORMAT, PARSE_ERROR

COMMON = b'127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
COMBINED = b'127.0.0.1 - - [28/Nov/2026:02:09:06 +0000] "GET / HTTP/1.1" 200 3 "-" "curl/7.88.1"'
COMBINED_IO = (
    b'::1 - - [28/Nov/2026:02:09:06 +0000] "GET /x HTTP/1.1" 404 236 "http://a/" "curl/7.88.1" 87 420'
)
VHOST = (
    b'www.example.com:80 127.0.0.1 - - [28/Nov/2026:02:09:06 +0000] "GET / HTTP/1.1" 200 3 "-" "curl/7.88.1"'
)
ERROR_24 = (
    b"[Sat Nov 28 02:09:07.644871 2026] [authz_core:error] [pid 12683:tid 12707] [client ::1:49896] "
    b"AH01630: client denied by server configuration: /tmp/errlab/htdocs/denied/x"
)
ERROR_22 = b"[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration: /x"
JSON = b'{"time": "2024-01-02T03:04:05Z", "level": "info", "msg": "hi"}'
SSL_REQUEST = b'[10/Oct/2000:13:55:36 -0700] 1.2.3.4 TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 "GET / HTTP/1.1" 123'
GARBAGE = b"Segmentation fault (core dumped)"


def formats(records):
    return [r.attributes[FORMAT] for r in records]


def test_name_hints_reorder_the_candidates():
    assert candidate_order(None) == DEFAULT_CANDIDATES
    assert candidate_order("/var/log/apache2/error.log")[0] == "error"
    access_first = candidate_order("/var/log/httpd/access_log")[: len(ACCESS_CANDIDATES)]
    assert access_first == ACCESS_CANDIDATES
    # the presets in their order, each preceded by its variants (`preset+<fields>`)
    assert [c for c in access_first if "+" not in c] == ["vhost_combined", "combinedio", "combined", "common"]
    for n, name in enumerate(access_first):
        if "+" in name:
            assert access_first.index(name.split("+")[0]) > n
    vhost_first = (*(v for v in VARIANTS if v.startswith("vhost_combined+")), "vhost_combined")
    assert candidate_order("/var/log/apache2/other_vhosts_access.log")[: len(vhost_first)] == vhost_first
    assert candidate_order("/var/log/httpd/ssl_request_log")[0] == "ssl_request"
    assert candidate_order("/logs/app.log") == DEFAULT_CANDIDATES
    for path in ("/x/error.log", "/x/access.log", "/x/ssl_request_log", "/x/other"):
        assert sorted(candidate_order(path)) == sorted(DEFAULT_CANDIDATES)


def test_closest_names_the_format_and_the_field_a_line_diverged_at():
    parser = AutoParser(path="/x/access.log")
    assert parser.closest(COMBINED + b" 0.123") == ("combinedio", "does not match LogFormat at field 11 (%O)")
    assert parser.closest(COMMON.replace(b" 200 ", b" OK ")) == (
        "common",
        "does not match LogFormat at field 6 (%>s)",
    )
    assert parser.closest(b"hello world") is None  # nothing is close to that
    assert parser.closest(COMBINED) is None  # it parses


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (COMMON, "common"),
        (COMBINED, "combined"),
        (COMBINED_IO, "combinedio"),
        (VHOST, "vhost_combined"),
        (ERROR_24, "error"),
        (ERROR_22, "error"),
        (JSON, "json"),
        (SSL_REQUEST, "ssl_request"),
        (COMBINED + b" 1234", "combined+%D"),
        (COMBINED + b' "203.0.113.7, 10.0.0.1"', 'combined+"%{X-Forwarded-For}i"'),
        (COMMON + b" 1234", "common+%D"),
        (COMMON + b" 310 2516", "common+%I %O"),
        (VHOST + b" 1234", "vhost_combined+%D"),
    ],
)
def test_content_decides_the_format(line, expected):
    parser = AutoParser()
    [record] = parser.parse([line])
    assert record.attributes[FORMAT] == expected
    assert PARSE_ERROR not in record.attributes
    assert parser.format_name == expected


def test_content_wins_over_a_misleading_name():
    parser = AutoParser(path="/var/log/apache2/error.log")
    records = parser.parse([COMBINED, COMBINED])
    assert formats(records) == ["combined", "combined"]
    assert parser.format_name == "combined"


def test_locks_onto_the_first_format_and_keeps_it():
    parser = AutoParser(path="/var/log/apache2/error.log")
    assert parser.format_name == "auto"
    parser.parse([ERROR_24])
    assert parser.format_name == "error"
    records = parser.parse([ERROR_24, ERROR_22, ERROR_24])
    assert formats(records) == ["error", "error", "error"]


def test_format_change_mid_file_keeps_parsing_and_moves_the_lock():
    parser = AutoParser(path="/var/log/apache2/access.log")
    first = parser.parse([COMBINED, COMBINED])
    assert formats(first) == ["combined", "combined"]
    second = parser.parse([COMBINED, VHOST, VHOST])
    assert formats(second) == ["combined", "vhost_combined", "vhost_combined"]
    assert all(PARSE_ERROR not in r.attributes for r in second)
    assert parser.format_name == "vhost_combined"


def test_mixed_lines_in_one_batch_each_get_their_format():
    records = AutoParser().parse([ERROR_24, COMBINED, JSON, COMMON, GARBAGE, ERROR_22])
    assert formats(records) == ["error", "combined", "json", "common", "error", "error"]
    assert [PARSE_ERROR in r.attributes for r in records] == [False, False, False, False, True, False]


def test_unmatched_line_before_any_lock_is_flagged_auto():
    parser = AutoParser()
    [record] = parser.parse([GARBAGE])
    assert record.attributes == {FORMAT: "auto", PARSE_ERROR: NO_MATCH}
    assert record.body == GARBAGE.decode()
    assert parser.format_name == "auto"


def test_unmatched_line_after_lock_keeps_the_locked_parsers_reason():
    parser = AutoParser()
    parser.parse([COMBINED])
    [record] = parser.parse([b"127.0.0.1 - - [not a time] oops"])
    assert record.attributes[FORMAT] == "combined"
    assert record.attributes[PARSE_ERROR].startswith("does not match LogFormat")
    assert parser.format_name == "combined"


def test_garbage_continuation_lines_do_not_move_the_lock():
    parser = AutoParser(path="/var/log/apache2/error.log")
    records = parser.parse([ERROR_24, GARBAGE, b"  at line 2", b""])
    assert formats(records) == ["error"] * 4
    assert parser.format_name == "error"


def test_one_observed_timestamp_per_batch_and_order_kept():
    lines = [VHOST, ERROR_24, GARBAGE, JSON, COMBINED]
    records = AutoParser().parse(lines)
    assert [r.body for r in records] == [line.decode() for line in lines]
    assert len({r.observed_timestamp for r in records}) == 1


def test_build_parser_auto_uses_the_path():
    parser = build_parser("auto", path="/var/log/apache2/other_vhosts_access.log")
    assert isinstance(parser, AutoParser)
    assert parser.format_name == "auto"
    assert formats(parser.parse([VHOST])) == ["vhost_combined"]


def test_empty_batch():
    assert AutoParser().parse([]) == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=120),
            st.sampled_from([COMMON, COMBINED, VHOST, ERROR_24, ERROR_22, JSON, GARBAGE, b"{", b"["]),
        ),
        max_size=15,
    ),
    st.sampled_from([None, "/x/error.log", "/x/access.log"]),
)
def test_any_bytes_give_exactly_one_record_per_line(lines, path):
    parser = AutoParser(path=path)
    for _ in range(2):  # a second batch runs with a lock in place
        records = parser.parse(lines)
        assert [r.body for r in records] == [line.decode("utf-8", "backslashreplace") for line in lines]


def test_a_line_nobody_parses_gets_the_field_the_new_lock_failed_at_in_the_batch_that_locked() -> None:
    # Candidates that are not locked skip finding the failing field; the batch that locks a format
    # still names it for the lines that format rejected.
    parser = AutoParser(path="/x/access.log")
    records = parser.parse([COMBINED.replace(b" 200 ", b" OK "), COMBINED])
    assert parser.format_name == "combined"
    assert records[0].attributes[PARSE_ERROR] == "does not match LogFormat at field 6 (%>s)"
    [again] = parser.parse([COMBINED.replace(b" 200 ", b" OK ")])
    assert again.attributes[PARSE_ERROR] == "does not match LogFormat at field 6 (%>s)"
