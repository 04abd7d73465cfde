"""LogFormat tokenizer and compiler: directives read exactly as httpd reads them, bad formats
rejected with a message that shows where."""

from __future__ import annotations

import re

import pytest

from logsidecar.parse.access import PRESETS, compile_logformat
from logsidecar.parse.base import FormatError
from logsidecar.parse.fields import compile_fields, header_attribute, strftime_regex
from logsidecar.parse.line_regex import line_regex
from logsidecar.parse.logformat import Directive, Literal, normalize_format_text, tokenize


def directives(fmt: str) -> list[Directive]:
    return [t for t in tokenize(fmt) if isinstance(t, Directive)]


def test_common_format_tokenizes_into_directives_and_literals() -> None:
    tokens = tokenize('%h %l %u %t "%r" %>s %b')
    assert [(type(t).__name__, getattr(t, "source", getattr(t, "text", None))) for t in tokens] == [
        ("Directive", "%h"), ("Literal", " "), ("Directive", "%l"), ("Literal", " "),
        ("Directive", "%u"), ("Literal", " "), ("Directive", "%t"), ("Literal", ' "'),
        ("Directive", "%r"), ("Literal", '" '), ("Directive", "%>s"), ("Literal", " "),
        ("Directive", "%b"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fmt", "name", "argument", "modifier", "conditions", "negated"),
    [
        ("%a", "a", None, "", (), False),
        ("%{c}a", "a", "c", "", (), False),
        ("%>s", "s", None, ">", (), False),
        ("%<s", "s", None, "<", (), False),
        ("%{User-agent}i", "i", "User-agent", "", (), False),
        ("%400,501{User-agent}i", "i", "User-agent", "", (400, 501), False),
        ("%!200,304,302{Referer}i", "i", "Referer", "", (200, 304, 302), True),
        ("%{%d/%b/%Y %T}t", "t", "%d/%b/%Y %T", "", (), False),
        ("%{end:msec_frac}t", "t", "end:msec_frac", "", (), False),
        ("%{ms}T", "T", "ms", "", (), False),
        ("%{hextid}P", "P", "hextid", "", (), False),
        ("%{remote}p", "p", "remote", "", (), False),
        ("%{X-Trace}^ti", "^ti", "X-Trace", "", (), False),
        ("%{Grpc-Status}^to", "^to", "Grpc-Status", "", (), False),
        ("%^FB", "^FB", None, "", (), False),
        ("%!!200s", "s", None, "", (200,), False),  # httpd toggles the negation
        ("%1{Referer}i", "i", "Referer", "", (1,), False),  # any number: httpd does not check it
    ],
)
def test_directive_parts_are_read_like_httpd(
    fmt: str, name: str, argument: str | None, modifier: str, conditions: tuple[int, ...], negated: bool
) -> None:
    (d,) = directives(fmt)
    assert (d.name, d.argument, d.modifier, d.conditions, d.negated, d.source) == (
        name, argument, modifier, conditions, negated, fmt,
    )  # fmt: skip


def test_percent_percent_is_a_literal_percent() -> None:
    assert tokenize("100%% %h") == [Literal("100% ", 0), Directive("h", None, 6, "%h")]


def test_literal_backslash_escapes_follow_parse_log_misc_string() -> None:
    # \\ -> \, \t -> tab, \n -> newline; any other backslash is kept verbatim.
    (lit, _) = tokenize(r"a\\b\tc\qd%h")
    assert isinstance(lit, Literal)
    assert lit.text == "a\\b\tc\\qd"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('%h "%r"', '%h "%r"'),
        ('"%h \\"%r\\""', '%h "%r"'),
        ('"%h \\"%r\\"" mynick', '%h "%r"'),
        ('LogFormat "%h %l %u %t \\"%r\\" %>s %b" common', '%h %l %u %t "%r" %>s %b'),
        ('  logformat "%v %h" vhost  ', "%v %h"),
        ('CustomLog ${APACHE_LOG_DIR}/access.log "%h \\"%r\\"" env=!dontlog', '%h "%r"'),
        ("LogFormat %h", "%h"),
    ],
)
def test_pasted_directive_lines_and_quoted_strings_are_unwrapped(text: str, expected: str) -> None:
    assert normalize_format_text(text) == expected


def test_quoted_logformat_whose_content_looks_like_format_and_nickname_is_unwrapped_once() -> None:
    parser = compile_logformat('LogFormat "\\"%r\\" x" nick')
    assert parser.logformat == '"%r" x'


def test_customlog_line_naming_a_preset_nickname_uses_that_preset() -> None:
    parser = compile_logformat("CustomLog ${APACHE_LOG_DIR}/access.log combined")
    assert parser.logformat == PRESETS["combined"]


def test_pasted_logformat_line_compiles_to_the_same_parser_as_the_bare_format() -> None:
    pasted = compile_logformat(
        'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined'
    )
    bare = compile_logformat('%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"')
    assert pasted.logformat == bare.logformat
    assert pasted._batch_regex.pattern == bare._batch_regex.pattern


@pytest.mark.parametrize(
    ("fmt", "message", "caret_column"),
    [
        ("%h %l %Z %t", "invalid LogFormat directive '%Z': unknown directive letter 'Z'", 6),
        ("%h %{Referer", "unclosed '{' in LogFormat directive starting '%{Referer'", 3),
        ('%h "%r" %', "incomplete LogFormat directive '%' at end of format", 8),
        ("%h %>", "incomplete LogFormat directive '%>' at end of format", 3),
        ("%h %i", "invalid LogFormat directive '%i': %i needs a {header name}", 3),
        ("%{}o", "invalid LogFormat directive '%{}o': %o needs a {header name}", 0),
        ("%{foo}P", "invalid LogFormat directive '%{foo}P': %{foo}P must be one of pid, tid, hextid", 0),
        ("%{minutes}T", "invalid LogFormat directive '%{minutes}T': %{minutes}T must be one of s, ms, us", 0),
        (
            "%{sideways}p",
            "invalid LogFormat directive '%{sideways}p': %{sideways}p must be one of canonical, local, remote",
            0,
        ),
        (
            "%h %{X}^tx",
            "invalid LogFormat directive '%{X}^tx': '%^' must be followed by 'ti', 'to' or 'FB'",
            3,
        ),
    ],
)
def test_invalid_format_raises_format_error_with_caret_under_the_directive(
    fmt: str, message: str, caret_column: int
) -> None:
    with pytest.raises(FormatError) as info:
        compile_logformat(fmt)
    first, shown, caret = str(info.value).split("\n")
    assert first == message
    assert shown == "  " + fmt
    assert caret == "  " + " " * caret_column + "^"


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("", "empty LogFormat"),
        ("   ", "empty LogFormat"),
        ("just text", "has no % directive"),
        ("LogFormat", "LogFormat line has no format string"),
    ],
)
def test_formats_without_directives_are_rejected(fmt: str, message: str) -> None:
    with pytest.raises(FormatError, match=re.escape(message)):
        compile_logformat(fmt)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_compiles(name: str) -> None:
    tokens = tokenize(PRESETS[name])
    specs = compile_fields(tokens)
    assert re.compile(line_regex(tokens, specs, lenient=False))
    assert re.compile(line_regex(tokens, specs, lenient=True))


def test_attribute_collisions_give_the_otel_key_to_the_best_directive() -> None:
    specs = compile_fields(tokenize('%h %a %s %>s %T %D "%r" %U %q %H %m %V %v'))
    keys = {s.directive.source: s.keys for s in specs}
    assert keys == {
        "%h": ("apache.remote_host",),
        "%a": ("client.address",),
        "%s": ("apache.original_status_code",),
        "%>s": ("http.response.status_code",),
        "%T": (),
        "%D": ("http.server.request.duration",),
        "%r": ("http.request.method", "url.original", "url.path", "url.query",
               "network.protocol.name", "network.protocol.version"),
        "%U": ("apache.url_path",),
        "%q": ("apache.url_query",),
        "%H": (),
        "%m": (),
        "%V": ("apache.server_name",),
        "%v": ("server.address",),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("header", "response", "attribute"),
    [
        ("User-Agent", False, "user_agent.original"),
        ("user-agent", False, "user_agent.original"),
        ("Referer", False, "http.request.header.referer"),
        ("X-Forwarded-For", False, "http.request.header.x-forwarded-for"),
        ("Content-Type", True, "http.response.header.content-type"),
    ],
)
def test_header_attribute_names_are_lowercase_otel_names(header: str, response: bool, attribute: str) -> None:
    assert header_attribute(header, response) == attribute


@pytest.mark.parametrize(
    ("fmt", "sample"),
    [
        ("%d/%b/%Y %T", "10/Oct/2000 13:55:36"),
        ("%d/%b/%Y:%H:%M:%S %z", "10/Oct/2000:13:55:36 -0700"),
        ("%Y-%m-%dT%H:%M:%S%z", "2000-10-10T13:55:36+0200"),
        ("%a %e %b", "Tue  3 Oct"),
        ("%s", "1700000000"),
    ],
)
def test_strftime_regex_matches_what_strftime_writes(fmt: str, sample: str) -> None:
    assert re.fullmatch(strftime_regex(fmt), sample)
