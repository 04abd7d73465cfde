"""The resolved run (`settings.resolved`) is the one form of the settings the running process sees
(`logsidecar.runtime`): every model field must reach it, and it must survive the handover's bytes.

Each field of `Settings` (and of the OTLP output) is changed in turn from a base configuration; the
run must change with it. A field added to the model without a sample here fails the coverage test;
one the run does not carry fails the change test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from logsidecar import redact
from logsidecar.service.plan import build_plan
from logsidecar.settings.model import OtlpOutput, Settings
from logsidecar.settings.resolved import ResolvedRun, from_settings

ENV = {"HOSTNAME": "web-1"}
BASE: dict[str, Any] = {
    "inputs": [{"paths": ["/logs/a.log"]}],
    "outputs": [{"type": "otlp", "endpoint": "http://collector:4317"}],
    "docker_metadata": "off",
}

# A value other than the default for every top-level field.
SAMPLES: dict[str, Any] = {
    "inputs": [{"paths": ["/logs/b.log"], "format": "common"}],
    "formats": ["common"],
    "exclude": ["*.gz"],
    "outputs": [{"type": "stdout", "format": "pretty"}],
    "state_dir": "/var/lib/logsidecar",
    "start_at": "end",
    "watch": "poll",
    "follow_symlinks": "never",
    "poll_interval": 1.0,
    "ignore_older": 3600.0,
    "max_line_bytes": 4096,
    "partial_line_flush": 1.0,
    "timezone": "UTC",
    "resource": {"team": "web"},
    "service_name": "shop",
    "drain_timeout": 2.0,
    "exit_when_exists": "/run/app/stopped",
    "max_in_flight_lines": 100,
    "log_format": "json",
    "log_level": "debug",
    "http_addr": "127.0.0.1:9464",
    "unhealthy_after": 5.0,
    "derive_metrics": True,
    "metrics_route_depth": 2,
    "metrics_interval": 30.0,
    "docker_metadata": "auto",
}


def otlp_samples(tmp_path: Path) -> dict[str, Any]:
    """A value other than the default for every field of the OTLP output."""
    pem = tmp_path / "x.pem"
    pem.write_text("not read here\n")
    return {
        "protocol": "http/protobuf",
        "endpoint": "http://other:4318",
        "headers": {"x-api-key": "s3cret-value"},
        "ca_file": str(pem),
        "client_cert": str(pem),
        "client_key": str(pem),
        "insecure": True,
        "load_balancing": "pick_first",
        "compression": "gzip",
        "timeout": 3.0,
        "batch_size": 10,
        "batch_timeout": 1.0,
        "max_retry_time": 60.0,
        "max_request_bytes": 100_000,
    }


def resolved(data: dict[str, Any]) -> ResolvedRun:
    return from_settings(Settings.model_validate(data), ENV)


def test_every_model_field_has_a_sample(tmp_path: Path) -> None:
    assert set(SAMPLES) == set(Settings.model_fields)
    assert set(otlp_samples(tmp_path)) == set(OtlpOutput.model_fields) - {"type"}


@pytest.mark.parametrize("field", sorted(SAMPLES))
def test_every_settings_field_reaches_the_run(field: str) -> None:
    base = resolved(BASE)
    changed = resolved({**BASE, field: SAMPLES[field]})
    assert changed != base, f"{field} does not reach the resolved run"


def test_every_otlp_output_field_reaches_the_run(tmp_path: Path) -> None:
    base = resolved(BASE)
    for field, value in otlp_samples(tmp_path).items():
        output = {**BASE["outputs"][0], field: value}
        if field == "insecure":  # gRPC only, for an endpoint without a scheme
            output["endpoint"] = "collector:4317"
            base_output = resolved({**BASE, "outputs": [{**output, "insecure": False}]})
        else:
            base_output = base
        assert resolved({**BASE, "outputs": [output]}) != base_output, f"otlp {field} does not reach the run"


def test_the_run_survives_the_handover_bytes(tmp_path: Path) -> None:
    redact.forget_all()
    data = {
        **BASE,
        **{k: v for k, v in SAMPLES.items() if k not in ("outputs", "state_dir")},
        "outputs": [{"type": "stdout"}, {"type": "otlp", **otlp_samples(tmp_path)}],
        "state_dir": str(tmp_path / "state"),
    }
    settings = Settings.model_validate(data)
    settings.remember_secrets()
    run = from_settings(settings, ENV, secrets=redact.known(), reload_arguments=("tail", "--config", "x"))
    back = ResolvedRun.from_bytes(run.to_bytes())
    assert back == run
    assert ("s3cret-value", redact.MASK, False) in back.secrets
    plan = build_plan(back)
    assert [sink.name for sink in plan.sinks] == [sink.name for sink in build_plan(settings, ENV).sinks]
    assert plan.tail_options == build_plan(settings, ENV).tail_options
    redact.forget_all()


def test_bytes_that_are_not_a_run_are_refused() -> None:
    import pickle

    with pytest.raises(ValueError, match="not a resolved run"):
        ResolvedRun.from_bytes(pickle.dumps({"inputs": []}))
