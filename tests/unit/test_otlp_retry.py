"""The OTLP sink's retry pacing and its failure wording (pure parts; transports are tested for real in
tests/integration/otlp/test_otlp_sink.py)."""

from __future__ import annotations

import pytest

from logsidecar.sinks.otlp import OtlpSink
from logsidecar.sinks.otlp_connection import grpc_target as _grpc_target
from logsidecar.sinks.otlp_settings import OtlpSettings
from logsidecar.sinks.otlp_transport import _connection_reason


def sink(**overrides: object) -> OtlpSink:
    return OtlpSink(OtlpSettings(endpoint="http://127.0.0.1:1", **overrides))  # type: ignore[arg-type]


def test_backoff_doubles_from_the_initial_delay_with_twenty_percent_jitter_up_to_the_cap() -> None:
    paced = sink(initial_backoff_s=0.5, max_backoff_s=30.0)
    for attempt, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (50, 30.0)]:
        delays = [paced._retry.backoff_s(attempt, None) for _ in range(200)]
        assert min(delays) >= nominal * 0.8 and max(delays) <= nominal * 1.2
        assert max(delays) - min(delays) > 0  # jittered, so sidecars do not retry in lockstep


def test_server_requested_delay_is_used_as_is_but_capped() -> None:
    paced = sink(max_backoff_s=30.0)
    assert paced._retry.backoff_s(1, 2.5) == 2.5
    assert paced._retry.backoff_s(9, 0.0) == 0.0
    assert paced._retry.backoff_s(1, 3600.0) == 60.0  # a bogus hint cannot stall delivery for an hour


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Connection refused",
         "collector unreachable (connection refused)"),
        ("Ssl handshake failed: SSL_ERROR_SSL: error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER",
         "TLS handshake with collector failed"),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
         "TLS handshake with collector failed"),
        ("DNS resolution failed for collector.invalid:4317", "collector address does not resolve"),
        ("Deadline Exceeded", "export timed out"),
        ("Socket closed", "collector unreachable"),
    ],
)  # fmt: skip
def test_connection_failures_are_named_in_the_users_words(detail: str, reason: str) -> None:
    assert _connection_reason(detail) == reason


@pytest.mark.parametrize(
    ("endpoint", "insecure", "target"),
    [
        ("http://collector:4317", False, ("collector:4317", False)),
        ("https://collector:4317", True, ("collector:4317", True)),  # the scheme decides
        ("collector:4317", False, ("collector:4317", True)),  # no scheme: TLS by default
        ("collector:4317", True, ("collector:4317", False)),  # ... unless insecure
    ],
)
def test_grpc_target_and_tls_follow_the_specification(
    endpoint: str, insecure: bool, target: tuple[str, bool]
) -> None:
    assert _grpc_target(OtlpSettings(endpoint=endpoint, insecure=insecure)) == target


def test_credentials_in_the_endpoint_url_are_masked_in_events() -> None:
    from logsidecar.sinks.otlp import endpoint_without_credentials

    assert endpoint_without_credentials("https://user:s3cr3t@collector:4318/v1/logs") == (
        "https://***@collector:4318/v1/logs"
    )
    assert endpoint_without_credentials("http://collector:4317") == "http://collector:4317"
    assert endpoint_without_credentials("collector:4317") == "collector:4317"
