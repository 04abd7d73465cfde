"""`logsidecar.redact`: URL credentials and remembered secrets out of any text."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from logsidecar import redact


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "errors resolving user:pw@127.0.0.1:1: lookup failed",
            "errors resolving ***@127.0.0.1:1: lookup failed",
        ),
        ("http://user:pw@host:4318/v1/logs", "http://***@host:4318/v1/logs"),
        ("https://token@host/x", "https://***@host/x"),  # a token as the user name
        ("user:p@ss@host:4317", "***@host:4317"),  # a raw @ in the password
        ("grpc://u:p@[::1]:4317", "grpc://***@[::1]:4317"),
        ("error: foo@bar", "error: foo@bar"),  # no credentials: left alone
        ("mail a@b.c at 10:30:00", "mail a@b.c at 10:30:00"),
        ("http://host:1/path@x", "http://host:1/path@x"),  # @ in the path, not the authority
    ],
)
def test_url_credentials_are_hidden(text: str, shown: str) -> None:
    assert redact.redact(text) == shown


def test_remembered_secrets_are_hidden_and_variables_show_their_name() -> None:
    redact.remember_header_values({"authorization": "Bearer s3cr3t-token-value"})
    redact.remember("/srv/logs", "${LOGS}", whole_word=True)
    text = "got 401 for Bearer s3cr3t-token-value (token s3cr3t-token-value) reading /srv/logs/a.log"
    assert redact.redact(text) == "got 401 for *** (token ***) reading ${LOGS}/a.log"


def test_short_values_are_hidden_as_whole_words_only() -> None:
    redact.remember("env", "${MODE}", whole_word=True)
    redact.remember("ab")  # shorter than MIN_SECRET_CHARS: not looked for at all
    assert redact.redact("environment env ab") == "environment ${MODE} ab"


def test_event_fields_are_redacted_inside_lists_and_dicts() -> None:
    redact.remember("topsecretvalue")
    fields = {"errors": ["a topsecretvalue"], "nested": {"x": "topsecretvalue"}, "n": 3, "ok": True}
    assert redact.redact_value(fields) == {"errors": ["a ***"], "nested": {"x": "***"}, "n": 3, "ok": True}
