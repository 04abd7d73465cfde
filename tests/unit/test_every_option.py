"""One truth for configuration: every field of the settings model is a `tail` flag, a LOGSIDECAR_*
variable and a config-file key, and each of the three sets it to the same value, parsed the same way
(units included). The fields are walked from the model: a field added to it is tested here with no
line to add (its example comes from its type, or from its `examples=`)."""

from __future__ import annotations

import enum
import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from logsidecar import redact
from logsidecar.cli.check_config import command as check_config
from logsidecar.cli.tail import command as tail_command
from logsidecar.settings.errors import ConfigError
from logsidecar.settings.model import FormatRuleText, Settings
from logsidecar.settings.options import OPTIONS, Option, unknown_env_vars
from logsidecar.settings.sources import NO_INPUTS, flags_from_click, resolve
from logsidecar.settings.units import Duration, HttpAddr, ReadableFile, Size, TimezoneName

ENV = {"HOME": "/home/app"}


@pytest.fixture(autouse=True)
def _forget_secrets() -> Any:
    """Header values become secrets of `logsidecar.redact` (process-wide): forgotten after each test."""
    yield
    redact.forget_all()


def _unit(annotation: Any) -> Any:
    members = [a for a in typing.get_args(annotation) if a is not type(None)]
    is_optional = typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType)
    return members[0] if is_optional and len(members) == 1 else annotation


def example(option: Option, tmp_path: Path) -> Any:
    """A value for the option that is not its default: a string, or a list of strings (a repeatable
    flag), or a dict (KEY=VALUE pairs)."""
    if option.kind == "paths":
        return ["/logs/a.log", "/logs/b.log"]
    if option.kind == "outputs":
        return ["stdout", "otlp"]
    if option.kind == "list":
        (item,) = typing.get_args(option.annotation)
        return ["*error*=error", "*access*=combined"] if item is FormatRuleText else ["*.gz", "*.1"]
    if option.kind == "mapping":
        return {"example.team": "example-web", "example.tier": "example-front"}
    if option.info.examples:
        return str(option.info.examples[0])
    unit = _unit(option.annotation)
    default = option.info.default
    if unit is Duration:
        return "1500ms"
    if unit is Size:
        return "3KiB"
    if unit is TimezoneName:
        return "+02:00"
    if unit is HttpAddr:
        return "127.0.0.1:9999"
    if unit is ReadableFile:
        pem = tmp_path / f"{option.field}.pem"
        pem.write_text("not checked before use\n")
        return str(pem)
    if isinstance(unit, type) and issubclass(unit, enum.Enum):
        return next(str(m.value) for m in unit if m != default)
    if typing.get_origin(unit) is typing.Literal:
        return next(str(v) for v in typing.get_args(unit) if v != default)
    if unit is bool:
        return "true"
    if unit is int:
        low = next((m.gt for m in option.info.metadata if hasattr(m, "gt")), 0)
        return str(low + 7 if default is None else default + 7)
    if unit is str:
        return "example"
    raise AssertionError(f"no example for {option.param}: give the field examples=[...]")


def value_of(settings: Settings, option: Option) -> Any:
    if option.kind == "paths":
        return [i.paths for i in settings.inputs]
    if option.kind == "outputs":
        return [o.type for o in settings.outputs]
    if option.output is None:
        return getattr(settings, option.field)
    (output,) = [o for o in settings.outputs if o.type == option.output]
    return getattr(output, option.field)


def _needs_output(option: Option) -> dict[str, str]:
    return {"LOGSIDECAR_OUTPUT": option.output} if option.output not in (None, "stdout") else {}


def via_file(option: Option, value: Any, tmp_path: Path) -> Settings:
    data: dict[str, Any]
    if option.kind == "paths":
        data = {"inputs": [{"paths": value}]}
    elif option.kind == "outputs":
        data = {"outputs": [{"type": t} for t in value]}
    elif option.output is not None:
        data = {"outputs": [{"type": option.output, option.field: value}]}
    else:
        data = {option.field: value}
    file = tmp_path / "settings.json"
    file.write_text(json.dumps(data))
    return resolve(file, ENV, {})


def env_text(option: Option, value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ("\n" if option.env_split == "lines" else " ").join(value)
    return str(value)


def via_env(option: Option, value: Any) -> Settings:
    return resolve(None, {**ENV, **_needs_output(option), option.env: env_text(option, value)}, {})


def via_flag(option: Option, value: Any) -> Settings:
    args: list[str] = ["--output", option.output] if option.output not in (None, "stdout") else []
    if option.kind == "paths":
        args += value
    elif option.kind == "outputs":
        args += [str(option.flag), ",".join(value)]  # `--output stdout,otlp` as the variable says it
    elif isinstance(value, dict):
        for key, item in value.items():
            args += [str(option.flag), f"{key}={item}"]
    elif isinstance(value, list):
        for item in value:
            args += [str(option.flag), item]
    elif _unit(option.annotation) is bool:
        args += [str(option.flag)]
    else:
        args += [str(option.flag), value]
    ctx = tail_command.make_context("tail", args)
    return resolve(None, ENV, flags_from_click(ctx))


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.param)
def test_the_flag_the_variable_and_the_file_key_each_set_the_option(option: Option, tmp_path: Path) -> None:
    value = example(option, tmp_path)
    default = value_of(resolve(None, ENV, {"outputs": [option.output or "stdout"]}), option)
    from_file = value_of(via_file(option, value, tmp_path), option)
    assert from_file != default, f"the example of {option.param} is its default: it would prove nothing"
    assert value_of(via_env(option, value), option) == from_file, option.env
    assert value_of(via_flag(option, value), option) == from_file, option.flag


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.param)
def test_the_command_line_parser_accepts_each_variable_as_the_resolver_reads_it(
    option: Option, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """click reads the variables too (to check them, and for --help): it must split and parse them
    as `settings.sources` does, e.g. a header value with a space in it."""
    value = example(option, tmp_path)
    if option.env_split == "commas":  # KEY=VALUE pairs separated by commas only
        value = {**value, "authorization": "Bearer with spaces"}
    monkeypatch.setenv(option.env, env_text(option, value))
    ctx = tail_command.make_context("tail", [] if option.kind == "paths" else ["/logs/a.log"])
    assert ctx.get_parameter_source(option.param).name == "ENVIRONMENT"


@pytest.mark.parametrize(
    ("option", "text", "value"),
    [
        ("otlp_timeout", "10s", 10.0),
        ("otlp_timeout", "250ms", 0.25),
        ("otlp_timeout", "3", 3.0),  # a bare number stays seconds, as before
        ("otlp_batch_timeout", "50ms", 0.05),
        ("otlp_max_retry_time", "5m", 300.0),
        ("otlp_max_request_bytes", "5MiB", 5 * 1024 * 1024),
        ("max_line_bytes", "64KiB", 64 * 1024),
        ("poll_interval", "1s", 1.0),
    ],
)
def test_units_parse_the_same_on_the_command_line_in_the_environment_and_in_the_file(
    option: str, text: str, value: float, tmp_path: Path
) -> None:
    (chosen,) = [o for o in OPTIONS if o.param == option]
    assert value_of(via_flag(chosen, text), chosen) == value
    assert value_of(via_env(chosen, text), chosen) == value
    assert value_of(via_file(chosen, text, tmp_path), chosen) == value


def test_every_variable_an_option_reads_is_known_and_a_near_miss_is_not() -> None:
    assert unknown_env_vars({o.env: "x" for o in OPTIONS}) == []
    assert unknown_env_vars({"LOGSIDECAR_OTLP_ENDPOINTS": "x"}) == ["LOGSIDECAR_OTLP_ENDPOINTS"]


def test_the_commands_own_options_read_their_variable_and_are_known() -> None:
    settings = {o.param for o in OPTIONS}
    own = [p for p in tail_command.params if p.name not in settings]
    assert {p.name for p in own} == {"config_file", "dry_run", "dry_run_lines"}
    assert unknown_env_vars({str(p.envvar): "x" for p in own}) == []
    ctx = tail_command.make_context("tail", ["/logs/a.log"])
    assert ctx.params["dry_run"] is False
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOGSIDECAR_DRY_RUN", "1")
        assert tail_command.make_context("tail", ["/logs/a.log"]).params["dry_run"] is True


BAD_ENDPOINTS = {
    "htp:/127.0.0.1:14317": "invalid OTLP/gRPC endpoint 'htp:/127.0.0.1:14317': must be host:port, an "
    "http:// or https:// URL, or a gRPC name (dns:///host:port, ipv4:addr:port,addr:port), e.g. http://collector:4317",
    "http://127.0.0.1:99999": "invalid OTLP/gRPC endpoint 'http://127.0.0.1:99999': port 99999 is not in 1..65535",
}


@pytest.mark.parametrize("endpoint", sorted(BAD_ENDPOINTS))
def test_a_bad_endpoint_is_refused_with_one_message_naming_where_it_was_set(
    endpoint: str, tmp_path: Path
) -> None:
    message = BAD_ENDPOINTS[endpoint]
    paths = {"LOGSIDECAR_PATHS": "/logs/a.log"}
    with pytest.raises(ConfigError) as by_flag:
        resolve(None, ENV, {"outputs": ("otlp",), "otlp_endpoint": endpoint})
    with pytest.raises(ConfigError) as by_variable:
        resolve(None, {**ENV, "LOGSIDECAR_OUTPUT": "otlp", "LOGSIDECAR_OTLP_ENDPOINT": endpoint}, {})
    with pytest.raises(ConfigError) as by_standard_variable:
        resolve(None, {**ENV, "LOGSIDECAR_OUTPUT": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, {})
    assert by_flag.value.errors == [f"--otlp-endpoint: {message}"]
    assert by_variable.value.errors == [f"LOGSIDECAR_OTLP_ENDPOINT: {message}"]
    assert by_standard_variable.value.errors == [f"OTEL_EXPORTER_OTLP_ENDPOINT: {message}"]
    # given for an output that is not chosen: refused all the same, never dropped silently
    with pytest.raises(ConfigError) as unused:
        resolve(None, ENV, {"otlp_endpoint": endpoint})
    assert unused.value.errors == [f"--otlp-endpoint: {message}"]
    file = tmp_path / "c.toml"
    file.write_text(
        f'[[inputs]]\npaths = ["/logs/a.log"]\n[[outputs]]\ntype = "otlp"\nendpoint = "{endpoint}"\n'
    )
    result = CliRunner().invoke(check_config, [str(file), "--no-env"])
    assert (result.exit_code, result.output) == (
        2,
        f"{file}: invalid configuration (1 error):\n  outputs[0].endpoint: {message}\n",
    )
    tail = CliRunner().invoke(tail_command, ["--dry-run", "--config", str(file)], env=paths)
    assert (tail.exit_code, tail.output) == (
        2,
        f"{file}: invalid configuration (1 error):\n  outputs[0].endpoint: {message}\n",
    )


@pytest.mark.parametrize(
    "endpoint",
    ["collector:4317", "user:pw@collector:4317", "http://[::1]:4317", "dns:///gateway.ns.svc:4317",
     "dns://10.0.0.10/gateway:4317", "https://collector"],
)  # fmt: skip
def test_good_grpc_endpoints_pass(endpoint: str) -> None:
    settings = resolve(None, ENV, {"outputs": ("otlp",), "otlp_endpoint": endpoint})
    assert settings.outputs[0].endpoint == endpoint  # type: ignore[union-attr]


def test_check_config_of_a_file_that_names_no_input_warns_that_tail_needs_paths_with_it(
    tmp_path: Path,
) -> None:
    """check-config cannot know the PATH_OR_GLOB arguments tail will get: the file is valid (exit 0),
    and the warning says plainly that tail needs them with it, so that tail's refusal without them
    (exit 2) does not read as contradicting it."""
    file = tmp_path / "empty.toml"
    file.write_text("")
    checked = CliRunner().invoke(check_config, [str(file), "--no-env"])
    tailed = CliRunner().invoke(tail_command, ["--config", str(file)], env={"LOGSIDECAR_PATHS": ""})
    line = f"{NO_INPUTS}\n"
    assert (checked.exit_code, tailed.exit_code) == (0, 2)
    warning = checked.output.splitlines()[0]
    assert warning.startswith(f"warning: {file} names no inputs: `tail` needs PATH_OR_GLOB arguments with it")
    assert f"logsidecar tail --config {file} PATH_OR_GLOB..." in warning
    assert "refuses it without them (inputs: nothing to follow)" in warning
    assert tailed.output == f"{file}: invalid configuration (1 error):\n  {line}"
    assert "give at least one PATH_OR_GLOB" in line
    assert NO_INPUTS.startswith("inputs: nothing to follow")  # the words the warning quotes
    # given paths, neither says it
    paths = {"LOGSIDECAR_PATHS": "/logs/a.log"}
    assert "nothing to follow" not in CliRunner().invoke(check_config, [str(file)], env=paths).output


def test_tail_warns_about_unknown_variables_with_the_closest_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        tail_command, ["--dry-run", str(tmp_path / "none.log")], env={"LOGSIDECAR_STATEDIR": "/x"}
    )
    assert result.output.startswith(
        "warning: LOGSIDECAR_STATEDIR is not a logsidecar setting; ignored (did you mean LOGSIDECAR_STATE_DIR?)\n"
    )


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        # the generic variable is a base URL: the logs path goes under it, even when it has a path
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/base/"}, "http://c:4318/base/v1/logs"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http://c:4318/v1/logs"),
        # ours is used as given when it names a path
        ({"LOGSIDECAR_OTLP_ENDPOINT": "http://c:4318/base/"}, "http://c:4318/base/"),
    ],
)
def test_the_otel_base_endpoint_is_read_once_as_the_specification_says(
    env: dict[str, str], endpoint: str
) -> None:
    from logsidecar.service.plan import build_plan

    environ = {**ENV, "LOGSIDECAR_OUTPUT": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", **env}
    settings = resolve(
        None, {**environ, "LOGSIDECAR_PATHS": "/logs/a.log", "LOGSIDECAR_DOCKER_METADATA": "off"}, {}
    )
    (sink,) = build_plan(settings, environ).sinks
    assert sink.settings.endpoint == endpoint  # type: ignore[attr-defined]


def test_derived_metrics_take_the_metrics_variables_not_the_logs_ones_read_into_the_output() -> None:
    from logsidecar.service.plan import build_plan

    environ = {
        **ENV,
        "LOGSIDECAR_OUTPUT": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:4318/v1/logs",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:4318/v1/metrics",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-tenant=logs",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "x-tenant=metrics",
    }
    settings = resolve(
        None,
        {**environ, "LOGSIDECAR_PATHS": "/logs/a.log", "LOGSIDECAR_DOCKER_METADATA": "off"},
        {"derive_metrics": True},
    )
    logs, metrics = build_plan(settings, environ).sinks
    assert (logs.settings.endpoint, logs.settings.headers) == (  # type: ignore[attr-defined]
        "http://logs:4318/v1/logs",
        {"x-tenant": "logs"},
    )
    assert (metrics.settings.endpoint, metrics.settings.headers) == (  # type: ignore[attr-defined]
        "http://metrics:4318/v1/metrics",
        {"x-tenant": "metrics"},
    )


def test_every_variable_the_package_names_is_known_so_tail_never_warns_about_its_own() -> None:
    package = Path(__file__).resolve().parents[2] / "logsidecar"
    named = {
        name
        for path in package.rglob("*.py")
        for name in re.findall(r"[\"'](LOGSIDECAR_[A-Z][A-Z_]*)[\"']", path.read_text(encoding="utf-8"))
    }
    assert named, "the scan found nothing: it would prove nothing"
    assert unknown_env_vars(dict.fromkeys(named, "x")) == []


def test_derived_metrics_without_an_otlp_output_take_the_otlp_variables_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LOGSIDECAR_OTLP_ENDPOINT with stdout output only: the records go to stdout, the derived metrics
    to that endpoint (as with --otlp-endpoint), not to the default one."""
    from logsidecar.cli.otlp_options import OTLP_PARAMETER_NAMES
    from logsidecar.service.plan import build_plan

    monkeypatch.setenv("LOGSIDECAR_OTLP_ENDPOINT", "http://metrics-gw:4317")
    monkeypatch.setenv("LOGSIDECAR_OTLP_TIMEOUT", "3s")
    ctx = tail_command.make_context("tail", ["--derive-metrics", "--docker-metadata", "off", "/logs/a.log"])
    settings = resolve(
        None, {**ENV, "LOGSIDECAR_OTLP_ENDPOINT": "http://metrics-gw:4317"}, flags_from_click(ctx)
    )
    given = {
        k: v for k, v in flags_from_click(ctx, with_environment=True).items() if k in OTLP_PARAMETER_NAMES
    }
    stdout, metrics = build_plan(settings, ENV, given).sinks
    assert type(stdout).__name__ == "StdoutSink"
    assert (metrics.settings.endpoint, metrics.settings.timeout_s) == ("http://metrics-gw:4317", 3.0)  # type: ignore[attr-defined]
