"""OTLP options: flags > OTEL_* environment > defaults, as the OpenTelemetry specification says."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from logsidecar.cli.otlp_options import (
    OTLP_PARAMETER_NAMES,
    build_otlp_sink,
    otlp_options,
    resolve_otlp_settings,
)
from logsidecar.sinks.otlp import OtlpSink
from logsidecar.sinks.otlp_settings import Compression, OtlpProtocol, OtlpSettings


def resolve(flags: dict[str, Any] | None = None, **env: str) -> OtlpSettings:
    return resolve_otlp_settings(flags or {}, env, hostname="web-1")


def test_defaults_are_grpc_localhost_no_compression_ten_seconds_and_apache_service() -> None:
    settings = resolve()
    assert settings.protocol is OtlpProtocol.GRPC
    assert settings.endpoint == "http://localhost:4317"
    assert settings.compression is Compression.NONE
    assert settings.timeout_s == 10.0
    assert settings.max_retry_time_s is None
    assert settings.headers == {}
    assert settings.resource == {"service.name": "apache-httpd", "host.name": "web-1"}


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        # HTTP default: the base endpoint plus the logs path.
        ({"otlp_protocol": "http/protobuf"}, {}, "http://localhost:4318/v1/logs"),
        # The generic variable is a base URL: v1/logs is appended for HTTP (one slash between) ...
        ({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
         "http://c:4318/v1/logs"),
        ({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/base/"},
         "http://c:4318/base/v1/logs"),
        # ... but not for gRPC.
        ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, "http://c:4317"),
        # The signal-specific variable is used as is and wins over the generic one.
        ({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://c/custom",
              "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318"}, "http://c/custom"),
        # The flag wins over both; without a path it is a base endpoint, with one it is used as is.
        ({"otlp_protocol": "http/protobuf", "otlp_endpoint": "https://flag:4318"},
         {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://env/v1/logs"}, "https://flag:4318/v1/logs"),
        ({"otlp_protocol": "http/protobuf", "otlp_endpoint": "https://flag:4318/ingest/logs"}, {},
         "https://flag:4318/ingest/logs"),
        ({"otlp_endpoint": "collector:4317"}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317"}, "collector:4317"),
    ],
)  # fmt: skip
def test_endpoint_resolution(flags: dict[str, Any], env: dict[str, str], expected: str) -> None:
    assert resolve(flags, **env).endpoint == expected


def test_signal_specific_variables_win_over_generic_ones() -> None:
    settings = resolve(
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TIMEOUT="1000",
        OTEL_EXPORTER_OTLP_LOGS_TIMEOUT="2500",
        OTEL_EXPORTER_OTLP_COMPRESSION="none",
        OTEL_EXPORTER_OTLP_LOGS_COMPRESSION="gzip",
        OTEL_EXPORTER_OTLP_CERTIFICATE="/generic/ca.pem",
        OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE="/logs/ca.pem",
        OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE="/c.pem",
        OTEL_EXPORTER_OTLP_CLIENT_KEY="/k.pem",
        OTEL_EXPORTER_OTLP_INSECURE="true",
    )
    assert settings.protocol is OtlpProtocol.HTTP_PROTOBUF
    assert settings.timeout_s == 2.5  # the variable is in milliseconds
    assert settings.compression is Compression.GZIP
    assert (settings.ca_file, settings.client_cert_file, settings.client_key_file) == (
        "/logs/ca.pem",
        "/c.pem",
        "/k.pem",
    )
    assert settings.insecure is True


def test_flags_win_over_environment() -> None:
    settings = resolve(
        {
            "otlp_protocol": "grpc",
            "otlp_timeout": 0.5,
            "otlp_compression": "none",
            "otlp_insecure": False,
            "otlp_ca_file": "/flag/ca.pem",
            "otlp_header": (("Authorization", "Bearer flag"),),
            "service_name": "flag-svc",
        },
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TIMEOUT="9000",
        OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_EXPORTER_OTLP_CERTIFICATE="/env/ca.pem",
        OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20env,x-tenant=t1",
        OTEL_SERVICE_NAME="env-svc",
    )
    assert settings.protocol is OtlpProtocol.GRPC
    assert settings.timeout_s == 0.5
    assert settings.compression is Compression.NONE
    assert settings.insecure is False
    assert settings.ca_file == "/flag/ca.pem"
    # Header names are lower-cased (gRPC metadata); a flag replaces the same env header, others stay.
    assert settings.headers == {"authorization": "Bearer flag", "x-tenant": "t1"}
    assert settings.resource["service.name"] == "flag-svc"


def test_headers_from_env_are_percent_decoded() -> None:
    settings = resolve(OTEL_EXPORTER_OTLP_HEADERS="Authorization=Basic%20dXNlcjpwYXNz , api-key=a%3Db")
    assert settings.headers == {"authorization": "Basic dXNlcjpwYXNz", "api-key": "a=b"}


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (
            {},
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment=prod"},
            "from-attrs",
        ),
        (
            {},
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs", "OTEL_SERVICE_NAME": "from-env"},
            "from-env",
        ),
        ({"service_name": "from-flag"}, {"OTEL_SERVICE_NAME": "from-env"}, "from-flag"),
    ],
)
def test_service_name_precedence(flags: dict[str, Any], env: dict[str, str], expected: str) -> None:
    assert resolve(flags, **env).resource["service.name"] == expected


def test_resource_attributes_are_merged_and_percent_decoded() -> None:
    settings = resolve(
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=prod,k8s.pod.name=web%2C1,host.name=override"
    )
    assert settings.resource == {
        "service.name": "apache-httpd",
        "host.name": "override",
        "deployment.environment": "prod",
        "k8s.pod.name": "web,1",
    }


def test_invalid_protocol_is_a_usage_error() -> None:
    with pytest.raises(click.UsageError, match="unsupported OTLP protocol 'http/json'"):
        resolve(OTEL_EXPORTER_OTLP_PROTOCOL="http/json")


def test_malformed_header_env_error_never_shows_the_value() -> None:
    with pytest.raises(click.UsageError) as caught:
        resolve(OTEL_EXPORTER_OTLP_HEADERS="authorization")
    assert "value not shown" in str(caught.value)


def test_settings_repr_never_shows_header_values() -> None:
    settings = resolve({"otlp_header": (("authorization", "Bearer s3cr3t"),)})
    assert "s3cr3t" not in repr(settings)


def make_command() -> click.Command:
    @click.command()
    @otlp_options
    def command(**kwargs: Any) -> None:
        sink = build_otlp_sink(**kwargs, unrelated_option="ignored")
        assert isinstance(sink, OtlpSink)
        click.echo(f"{sorted(kwargs)}|{sink.settings.endpoint}|{sorted(sink.settings.headers)}")

    return command


def test_click_decorator_adds_every_option_and_builds_a_sink() -> None:
    result = CliRunner().invoke(
        make_command(),
        [
            "--otlp-endpoint", "http://127.0.0.1:4318",
            "--otlp-protocol", "http/protobuf",
            "--otlp-header", "Authorization=Bearer s3cr3t",
            "--otlp-header", "X-Tenant=a",
            "--otlp-compression", "gzip",
            "--otlp-timeout", "3",
            "--otlp-batch-size", "100",
            "--otlp-batch-timeout", "0.5",
            "--otlp-max-retry-time", "60",
            "--service-name", "svc",
        ],
        env={},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    names, endpoint, headers = result.output.strip().split("|")
    assert names == str(sorted(OTLP_PARAMETER_NAMES))
    assert endpoint == "http://127.0.0.1:4318/v1/logs"
    assert headers == "['authorization', 'x-tenant']"


def test_malformed_header_flag_is_rejected_without_echoing_it() -> None:
    result = CliRunner().invoke(make_command(), ["--otlp-header", "no-equals-s3cr3t"])
    assert result.exit_code == 2
    assert "s3cr3t" not in result.output
    assert "KEY=VALUE" in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"otlp_protocol": "http/protobuf", "otlp_endpoint": "collector:4318"},
            "must be an http:// or https:// URL",
        ),
        (
            {"otlp_protocol": "http/protobuf", "otlp_endpoint": "ftp://collector"},
            "must be an http:// or https:// URL",
        ),
        ({"otlp_endpoint": "unix:///tmp/sock"}, "must be host:port, an http:// or https:// URL"),
        ({"otlp_protocol": "http/protobuf", "otlp_endpoint": "dns:///gateway:4318"}, "must be an http://"),
        ({"otlp_endpoint": "dns:///"}, "no host"),
    ],
)
def test_endpoints_no_attempt_could_reach_fail_at_start(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(click.UsageError, match=message):
        resolve(flags)


@pytest.mark.parametrize(
    ("flags", "endpoint"),
    [
        ({"otlp_endpoint": "user:p%40ss@collector:4317"}, "collector:4317"),  # gRPC target, no scheme
        (
            {"otlp_endpoint": "https://user:p%40ss@collector:4318", "otlp_protocol": "http/protobuf"},
            "https://collector:4318/v1/logs",
        ),
    ],
)
def test_endpoint_credentials_become_an_explicit_authorization_header(
    flags: dict[str, Any], endpoint: str
) -> None:
    settings = resolve(flags)
    assert settings.endpoint == endpoint
    assert settings.headers == {"authorization": "Basic dXNlcjpwQHNz"}  # base64 of user:p@ss


def test_endpoint_credentials_next_to_an_authorization_header_are_refused() -> None:
    flags = {"otlp_endpoint": "http://user:pw@collector:4317"}
    with pytest.raises(click.UsageError, match="'authorization' header") as caught:
        resolve(flags, OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20tok3n")
    assert "pw" not in caught.value.message and "tok3n" not in caught.value.message


@pytest.mark.parametrize("value", ["a%0Ab", "a%0Db", "a%00b", "caf%C3%A9"])
def test_a_header_value_http_or_grpc_cannot_carry_is_refused_by_name(value: str) -> None:
    with pytest.raises(click.UsageError, match="header 'x-token': .*value not shown") as caught:
        resolve(OTEL_EXPORTER_OTLP_HEADERS=f"x-token={value}")
    assert value not in caught.value.message


def test_max_request_bytes_defaults_to_the_protocol_limit_and_the_flag_sets_it() -> None:
    grpc_sink = OtlpSink(resolve())
    http_sink = OtlpSink(resolve({"otlp_protocol": "http/protobuf"}))
    assert (grpc_sink.max_request_bytes, http_sink.max_request_bytes) == (4 * 1024 * 1024, 20 * 1024 * 1024)
    assert OtlpSink(resolve({"otlp_max_request_bytes": 65536})).max_request_bytes == 65536

    @click.command()
    @otlp_options
    def command(**kwargs: Any) -> None:
        click.echo(kwargs["otlp_max_request_bytes"])

    assert CliRunner().invoke(command, ["--otlp-max-request-bytes", "8MiB"]).output == f"{8 * 1024 * 1024}\n"
    refused = CliRunner().invoke(command, ["--otlp-max-request-bytes", "0"])
    assert refused.exit_code == 2 and "invalid size" in refused.output


@pytest.mark.parametrize(
    ("endpoint", "insecure", "target", "tls"),
    [
        ("dns:///gateway.observability:4317", False, "dns:///gateway.observability:4317", True),
        ("dns://10.0.0.10:53/gateway:4317", True, "dns://10.0.0.10:53/gateway:4317", False),
        ("ipv4:10.0.0.1:4317,10.0.0.2:4317", True, "ipv4:10.0.0.1:4317,10.0.0.2:4317", False),
        ("http://gateway:4317", False, "gateway:4317", False),
    ],
)
def test_grpc_names_reach_grpc_as_they_are_with_tls_unless_insecure(
    endpoint: str, insecure: bool, target: str, tls: bool
) -> None:
    from logsidecar.sinks.otlp_connection import grpc_target

    settings = resolve({"otlp_endpoint": endpoint, "otlp_insecure": insecure})
    assert grpc_target(settings) == (target, tls)


def test_grpc_load_balancing_is_round_robin_unless_asked_and_keepalive_is_on() -> None:
    from logsidecar.sinks.otlp_connection import grpc_gateway_options

    default = dict(grpc_gateway_options(resolve({"otlp_endpoint": "dns:///gateway:4317"})))
    chosen = dict(grpc_gateway_options(resolve({"otlp_load_balancing": "pick_first"})))
    assert (default["grpc.lb_policy_name"], chosen["grpc.lb_policy_name"]) == ("round_robin", "pick_first")
    assert default["grpc.keepalive_time_ms"] > 0
    # An address list is no valid HTTP/2 :authority; the first address is sent instead.
    listed = dict(grpc_gateway_options(resolve({"otlp_endpoint": "ipv4:10.0.0.1:4317,10.0.0.2:4317"})))
    assert listed["grpc.default_authority"] == "10.0.0.1:4317"
