"""`logsidecar.terminal`: what may reach a terminal, and NO_COLOR."""

from __future__ import annotations

import pytest

from logsidecar.terminal import click_colour, colour_allowed, escape_controls


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("GET /index.html", "GET /index.html"),
        ("/\x1b]0;TITLE\x07", "/\\x1b]0;TITLE\\x07"),
        ("a\tb\nc\rd\x00", "a\\x09b\\x0ac\\x0dd\\x00"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
        ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override ("Trojan Source")
        ("café ✓ 日本", "café ✓ 日本"),  # printable non-ASCII stays readable
        (404, "404"),
    ],
)
def test_control_characters_are_escaped(text: object, shown: str) -> None:
    assert escape_controls(text) == shown


@pytest.mark.parametrize(
    ("env", "allowed"),
    [({}, True), ({"NO_COLOR": ""}, True), ({"NO_COLOR": "1"}, False), ({"NO_COLOR": "0"}, False)],
)
def test_no_color_set_and_non_empty_disables_colour(env: dict[str, str], allowed: bool) -> None:
    assert colour_allowed(env) is allowed
    assert click_colour(env) is (None if allowed else False)
