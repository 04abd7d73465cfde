"""The resolved run (`settings.resolved`) is the one form of the settings the running process sees
(`logsidecar.runtime`): every model field must reach it, and it must survive the handover's bytes.

Each field of `Settings` (and of the OTLP output) is changed in turn from a base configuration; the
run must change with it. A field added to the model without a sample here fails the coverage test;
one the run does not carry fails the change test."""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logsidecar import redact
from logsidecar.service.plan import build_plan
from logsidecar.settings.model import OtlpOutput, Settings
from logsidecar.settings.resolved import ResolvedRun, from_settings
from logsidecar.sinks.otlp_settings import OtlpProtocol
from logsidecar.tail.open_policy import FollowSymlinks
from logsidecar.tail.options import WatchMode

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


def full_run(tmp_path: Path) -> ResolvedRun:
    """A run with every field set (two outputs, the second OTLP with its secret header)."""
    data = {
        **BASE,
        **{k: v for k, v in SAMPLES.items() if k not in ("outputs", "state_dir")},
        "outputs": [{"type": "stdout"}, {"type": "otlp", **otlp_samples(tmp_path)}],
        "state_dir": str(tmp_path / "state"),
    }
    return from_settings(Settings.model_validate(data), ENV, secrets=(("s3cret-value", "***", False),))


def test_the_bytes_keep_the_value_types(tmp_path: Path) -> None:
    # StrEnum members equal their strings: `==` alone would not see an enum read back as a str.
    run = dataclasses.replace(full_run(tmp_path), drain_timeout=math.inf)  # JSON has no infinity
    back = ResolvedRun.from_bytes(run.to_bytes())
    assert back == run
    assert type(back.tail.watch) is WatchMode and type(back.tail.follow_symlinks) is FollowSymlinks
    assert isinstance(back.tail.state_dir, Path)
    otlp = back.outputs[1].otlp
    assert otlp is not None and type(otlp.protocol) is OtlpProtocol
    assert type(back.inputs) is tuple and type(back.secrets[0]) is tuple


def test_a_pickle_is_not_read() -> None:
    # The old format: loading it would have run the code it names.
    with pytest.raises(ValueError, match="not JSON"):
        ResolvedRun.from_bytes(pickle.dumps({"inputs": []}))


def plain_run(tmp_path: Path) -> dict[str, Any]:
    return orjson.loads(full_run(tmp_path).to_bytes())  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda run: run["outputs"][1]["otlp"].update(timeout_s="slow"), r"^outputs\[1\]\.otlp\.timeout_s: "),
        (lambda run: run["outputs"][1]["otlp"].update(extra=1), r"^outputs\[1\]\.otlp\.extra: unknown"),
        (
            lambda run: run["outputs"][1]["otlp"].pop("batch_size"),
            r"^outputs\[1\]\.otlp\.batch_size: missing",
        ),
        (lambda run: run["tail"].update(watch="sometimes"), r"^tail\.watch: expected one of 'auto'"),
        (lambda run: run["tail"].update(max_line_bytes=True), r"^tail\.max_line_bytes: expected an integer"),
        (
            lambda run: run["outputs"][1]["otlp"]["headers"].update(k=5),
            r"^outputs\[1\]\.otlp\.headers\['k'\]",
        ),
        (lambda run: run["secrets"].append(["a", "b"]), r"^secrets\[1\]: expected an array of 3"),
        (lambda run: run["inputs"].append("a.log"), r"^inputs\[1\]: expected an array"),
        (lambda run: run.update(state_dir=["x"]), r"^state_dir: expected a string"),
        (
            lambda run: run.update({"evil\nkey" * 20: 1}),
            r"^'evil\\nkey.*\.\.\.: unknown field of ResolvedRun$",
        ),
    ],
)
def test_a_wrong_value_at_depth_is_refused_naming_its_field(tmp_path: Path, change: Any, where: str) -> None:
    run = plain_run(tmp_path)
    change(run)
    with pytest.raises(ValueError, match=where) as refused:
        ResolvedRun.from_bytes(orjson.dumps(run))
    assert "s3cret" not in str(refused.value)  # the message names where, never a value


def test_a_huge_number_is_refused_naming_its_field(tmp_path: Path) -> None:
    data = orjson.dumps(plain_run(tmp_path)).replace(
        b'"max_in_flight_lines":100', b'"max_in_flight_lines":1' + b"0" * 40
    )
    with pytest.raises(ValueError, match=r"^max_in_flight_lines: expected an integer, got a number"):
        ResolvedRun.from_bytes(data)
    with pytest.raises(ValueError, match="not JSON"):  # beyond a double: orjson refuses it
        ResolvedRun.from_bytes(data.replace(b"1" + b"0" * 40, b"1e999"))


@pytest.mark.parametrize("data", [b"", b"\xff\xfe", b"[", b"null", b"[]", b'"run"', b"{}", b"1" + b"0" * 400])
def test_bytes_that_are_not_a_run_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        ResolvedRun.from_bytes(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10) | st.sampled_from(["auto", "Infinity", "grpc", "stdout"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON_VALUES)
def test_random_json_is_refused_with_a_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        ResolvedRun.from_bytes(orjson.dumps(value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=JSON_VALUES)
def test_random_json_in_a_field_gives_a_run_or_a_value_error_naming_it(
    tmp_path: Path, data: st.DataObject, value: Any
) -> None:
    run = plain_run(tmp_path)
    # A field at some depth: walk down objects and arrays, then put the random value there.
    where, parent, key = "", run, data.draw(st.sampled_from(sorted(run)))
    while True:
        where += f"[{key}]" if isinstance(key, int) else (f".{key}" if where else key)
        child = parent[key]
        inner = (
            sorted(child)
            if isinstance(child, dict)
            else list(range(len(child)))
            if isinstance(child, list)
            else []
        )
        if not inner or not data.draw(st.booleans()):
            break
        parent, key = child, data.draw(st.sampled_from(inner))
    parent[key] = value
    try:
        ResolvedRun.from_bytes(orjson.dumps(run))
    except ValueError as exc:
        # Named at the field or below it (mapping keys are written ['key'], fields .name).
        named = str(exc).split(": ")[0].replace("['", ".").replace("']", "")
        assert named.startswith(where.replace("['", ".").replace("']", "")), (where, str(exc))


def test_a_descriptor_that_gives_more_than_a_run_could_be_is_refused_without_reading_it_all(
    tmp_path: Path,
) -> None:
    """`python -m logsidecar.runtime --run-fd N` may be started on any descriptor (/dev/zero, a huge
    file): read_run stops one byte past MAX_RUN_BYTES and refuses, naming why."""
    from logsidecar.service import handover

    oversized = tmp_path / "oversized"
    with oversized.open("wb") as handle:
        handle.truncate(handover.MAX_RUN_BYTES + 4096)  # sparse: no real write of 16 MiB
    fd = os.open(oversized, os.O_RDONLY)
    with pytest.raises(ValueError, match="more than"):
        handover.read_run(fd)
    with pytest.raises(OSError):  # closed, like a descriptor that held a run
        os.fstat(fd)
