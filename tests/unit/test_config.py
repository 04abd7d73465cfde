"""The configuration file: values with units, precedence (flags > env > file > defaults), every
error message (exact text), secret masking, and `logsidecar check-config`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from logsidecar.cli.check_config import command as check_config
from logsidecar.events import Level
from logsidecar.service.plan import tail_options
from logsidecar.settings.errors import ConfigError
from logsidecar.settings.model import OtlpOutput, Settings, StdoutFormat, StdoutOutput
from logsidecar.settings.sources import flags_from_click, resolve, unknown_env_vars
from logsidecar.settings.units import format_duration, parse_duration, parse_http_addr, parse_size
from logsidecar.tail.options import StartAt, WatchMode

ENV = {"HOME": "/home/app"}  # the minimum every resolve needs for the default state_dir


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(
    file: Path | None, env: dict[str, str] | None = None, flags: dict[str, Any] | None = None
) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        resolve(file, {**ENV, **(env or {})}, flags or {})
    return caught.value.errors


def notes_of(file: Path | None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        resolve(file, ENV, {})
    return caught.value.notes


# -- values with units ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("24h", 86400.0), ("7d", 604800.0), ("500ms", 0.5), ("1h30m", 5400.0),
     ("2.5", 2.5), (" 10 s ", 10.0), (0, 0.0), (90, 90.0)],
)  # fmt: skip
def test_durations_parse_to_seconds(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "5x",
            "invalid duration '5x'; expected a number and a unit (ms, s, m, h, d), e.g. '30s', '5m', '24h'",
        ),
        ("", "invalid duration ''; expected a number and a unit (ms, s, m, h, d), e.g. '30s', '5m', '24h'"),
        ("h", "invalid duration 'h'; expected a number and a unit (ms, s, m, h, d), e.g. '30s', '5m', '24h'"),
        ("-5", "invalid duration '-5'; must not be negative"),
    ],
)
def test_bad_durations_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(86400.0, "1d"), (5400.0, "1h30m"), (0.25, "250ms"), (10.0, "10s"), (0.0, "0s"), (1.5, "1.5s")],
)
def test_durations_print_in_their_shortest_exact_form(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("1MiB", 1048576), ("64KiB", 65536), ("1MB", 1000000), ("512k", 512000), ("4096", 4096), ("2 GiB", 2 * 1024**3),
     ("1mib", 1048576), (100, 100)],
)  # fmt: skip
def test_sizes_parse_to_bytes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "1XB",
            "invalid size '1XB'; expected a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. '1MiB'",
        ),
        (
            "MiB",
            "invalid size 'MiB'; expected a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. '1MiB'",
        ),
        ("0", "invalid size '0'; must be greater than 0"),
    ],
)
def test_bad_sizes_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "address"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464)), (":9464", ("127.0.0.1", 9464)),
     ("9464", ("127.0.0.1", 9464)), ("0.0.0.0:80", ("0.0.0.0", 80)), ("localhost:0", ("localhost", 0))],
)  # fmt: skip
def test_http_addresses_default_to_loopback(text: str, address: tuple[str, int]) -> None:
    assert parse_http_addr(text) == address


def test_bad_http_address_message() -> None:
    with pytest.raises(ValueError) as caught:
        parse_http_addr("localhost")
    assert (
        str(caught.value)
        == "invalid address 'localhost'; expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464"
    )
    with pytest.raises(ValueError) as caught:
        parse_http_addr("127.0.0.1:70000")
    assert str(caught.value) == "invalid address '127.0.0.1:70000'; port must be between 0 and 65535"


# -- defaults and files ----------------------------------------------------------------------------------


def test_defaults_without_file_env_or_flags() -> None:
    settings = resolve(None, ENV, {})
    assert settings.inputs == []
    assert settings.outputs == [StdoutOutput(type="stdout", format=StdoutFormat.AUTO)]
    assert settings.state_dir == "/home/app/.local/state/logsidecar"
    assert (settings.start_at, settings.watch) == (StartAt.BEGINNING, WatchMode.AUTO)
    assert (settings.max_line_bytes, settings.partial_line_flush, settings.ignore_older) == (
        1048576,
        5.0,
        None,
    )
    assert (settings.http_addr, settings.unhealthy_after, settings.log_level) == (None, 60.0, Level.INFO)


def test_state_dir_default_follows_xdg_state_home() -> None:
    assert resolve(None, {"XDG_STATE_HOME": "/state"}, {}).state_dir == "/state/logsidecar"


TOML = """
state_dir = "/var/lib/logsidecar"
start_at = "end"
watch = "poll"
ignore_older = "24h"
max_line_bytes = "2MiB"
partial_line_flush = "500ms"
http_addr = "0.0.0.0:9464"
unhealthy_after = "2m"
timezone = "Europe/Paris"
formats = ["*error*=error"]
exclude = ["*.gz"]
resource = { "deployment.environment" = "prod" }
log_level = "debug"

[[inputs]]
paths = ["/logs/*access*log"]
format = "combined"

[[inputs]]
paths = ["/vhosts/**/access.log"]
exclude = ["/vhosts/old/**"]
format = "logformat:%h %l %u %t \\"%r\\" %>s %b %D"

[[outputs]]
type = "stdout"
format = "json"

[[outputs]]
type = "otlp"
endpoint = "https://collector:4318/v1/logs"
protocol = "http/protobuf"
headers = { authorization = "Bearer ${OTLP_TOKEN}" }
compression = "gzip"
timeout = "5s"
batch_size = 500
"""

YAML = """
state_dir: /var/lib/logsidecar
start_at: end
watch: poll
ignore_older: 24h
max_line_bytes: 2MiB
partial_line_flush: 500ms
http_addr: 0.0.0.0:9464
unhealthy_after: 2m
timezone: Europe/Paris
formats: ["*error*=error"]
exclude: ["*.gz"]
resource: {deployment.environment: prod}
log_level: debug
inputs:
  - paths: [/logs/*access*log]
    format: combined
  - paths: [/vhosts/**/access.log]
    exclude: [/vhosts/old/**]
    format: 'logformat:%h %l %u %t "%r" %>s %b %D'
outputs:
  - type: stdout
    format: json
  - type: otlp
    endpoint: https://collector:4318/v1/logs
    protocol: http/protobuf
    headers: {authorization: "Bearer ${OTLP_TOKEN}"}
    compression: gzip
    timeout: 5s
    batch_size: 500
"""


def test_toml_and_yaml_files_say_the_same_thing(tmp_path: Path) -> None:
    env = {**ENV, "OTLP_TOKEN": "s3cret"}
    from_toml = resolve(write(tmp_path, "c.toml", TOML), env, {})
    from_yaml = resolve(write(tmp_path, "c.yaml", YAML), env, {})
    assert from_toml == from_yaml
    assert from_toml.max_line_bytes == 2 * 1024 * 1024
    assert from_toml.ignore_older == 86400.0
    assert from_toml.http_addr == "0.0.0.0:9464"
    otlp = from_toml.outputs[1]
    assert isinstance(otlp, OtlpOutput)
    assert otlp.headers == {"authorization": "Bearer s3cret"}
    assert (otlp.timeout, otlp.batch_size) == (5.0, 500)


def test_settings_feed_the_tailer_and_the_parser_selector(tmp_path: Path) -> None:
    settings = resolve(write(tmp_path, "c.toml", TOML), {**ENV, "OTLP_TOKEN": "x"}, {})
    options = tail_options(settings)
    assert options.include == ("/logs/*access*log", "/vhosts/**/access.log")
    assert options.exclude == ("*.gz", "/vhosts/old/**")
    assert (str(options.state_dir), options.start_at, options.watch) == (
        "/var/lib/logsidecar",
        StartAt.END,
        WatchMode.POLL,
    )
    assert (options.ignore_older_s, options.max_line_bytes, options.partial_line_flush_s) == (
        86400.0,
        2097152,
        0.5,
    )
    rules, default = settings.format_rules()
    assert rules == [
        ("*error*", "error"),
        ("/logs/*access*log", "combined"),
        ("/vhosts/**/access.log", 'logformat:%h %l %u %t "%r" %>s %b %D'),
    ]
    assert default == "auto"
    assert str(settings.tzinfo()) == "Europe/Paris"


def test_state_dir_none_keeps_checkpoints_in_memory() -> None:
    assert tail_options(resolve(None, {**ENV, "LOGSIDECAR_STATE_DIR": "none"}, {})).state_dir is None


def test_otlp_output_converts_to_the_otlp_option_keywords() -> None:
    output = OtlpOutput(endpoint="http://c:4317", headers={"a": "b"}, timeout="3s", max_retry_time="1h")
    flags = output.otlp_flags()
    assert flags["otlp_endpoint"] == "http://c:4317"
    assert flags["otlp_header"] == (("a", "b"),)
    assert (flags["otlp_timeout"], flags["otlp_max_retry_time"], flags["otlp_protocol"]) == (
        3.0,
        3600.0,
        None,
    )


# -- precedence ----------------------------------------------------------------------------------------------


def test_flags_beat_env_which_beats_the_file(tmp_path: Path) -> None:
    file = write(tmp_path, "c.toml", 'max_line_bytes = "2MiB"\nwatch = "poll"\nstart_at = "end"\n')
    env = {**ENV, "LOGSIDECAR_MAX_LINE_BYTES": "3MiB", "LOGSIDECAR_WATCH": "inotify"}
    settings = resolve(file, env, {"max_line_bytes": 4096})
    assert settings.max_line_bytes == 4096  # flag
    assert settings.watch is WatchMode.INOTIFY  # env
    assert settings.start_at is StartAt.END  # file
    assert settings.partial_line_flush == 5.0  # default


def test_flags_that_were_not_given_do_not_override() -> None:
    settings = resolve(None, {**ENV, "LOGSIDECAR_WATCH": "poll"}, {"watch": None, "exclude": ()})
    assert settings.watch is WatchMode.POLL


def test_paths_from_flags_replace_the_files_inputs(tmp_path: Path) -> None:
    file = write(tmp_path, "c.toml", '[[inputs]]\npaths = ["/file/*.log"]\nformat = "error"\n')
    assert [i.paths for i in resolve(file, ENV, {}).inputs] == [["/file/*.log"]]
    assert [i.paths for i in resolve(file, {**ENV, "LOGSIDECAR_PATHS": "/env/a /env/b"}, {}).inputs] == [
        ["/env/a", "/env/b"]
    ]
    assert [
        i.paths for i in resolve(file, {**ENV, "LOGSIDECAR_PATHS": "/env/a"}, {"paths": ("/flag",)}).inputs
    ] == [["/flag"]]


def test_format_rules_from_flags_and_env_replace_the_files(tmp_path: Path) -> None:
    from logsidecar.pipeline import FormatRule

    file = write(tmp_path, "c.toml", 'formats = ["*x*=json"]\n')
    env = {**ENV, "LOGSIDECAR_FORMAT": "*error*=error\ncombined"}
    assert resolve(file, env, {}).format_rules() == ([("*error*", "error")], "combined")
    flags = {"format_rules": (FormatRule("*err*", "error"), FormatRule(None, "common"))}
    assert resolve(file, env, flags).formats == ["*err*=error", "common"]


def test_otel_environment_configures_the_otlp_output(tmp_path: Path) -> None:
    file = write(
        tmp_path, "c.toml", '[[outputs]]\ntype = "otlp"\nendpoint = "http://file:4317"\ntimeout = "30s"\n'
    )
    env = {
        **ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4317",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:4317",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc%20def,x-tenant=t1",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
        "OTEL_SERVICE_NAME": "shop-web",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=web",
    }
    settings = resolve(file, env, {})
    otlp = settings.outputs[0]
    assert isinstance(otlp, OtlpOutput)
    assert (otlp.endpoint, otlp.timeout, otlp.compression) == ("http://logs:4317", 2.5, "none")
    assert otlp.headers == {"api-key": "abc def", "x-tenant": "t1"}
    assert settings.service_name == "shop-web"
    assert settings.resource == {"deployment.environment": "prod", "team": "web"}


def test_otlp_flags_beat_otel_environment_and_headers_merge() -> None:
    env = {
        **ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317",
        "OTEL_EXPORTER_OTLP_HEADERS": "a=env,b=env",
    }
    flags = {"outputs": ("otlp",), "otlp_endpoint": "http://flag:4317", "otlp_header": (("b", "flag"),)}
    otlp = resolve(None, env, flags).outputs[0]
    assert isinstance(otlp, OtlpOutput)
    assert otlp.endpoint == "http://flag:4317"
    assert otlp.headers == {"a": "env", "b": "flag"}


def test_choosing_outputs_reuses_the_files_settings_per_type(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "c.toml",
        '[[outputs]]\ntype = "stdout"\nformat = "raw"\n[[outputs]]\ntype = "otlp"\nendpoint = "http://c:4317"\n',
    )
    assert resolve(file, {**ENV, "LOGSIDECAR_OUTPUT": "otlp"}, {}).outputs == [
        OtlpOutput(endpoint="http://c:4317")
    ]
    outputs = resolve(
        file, {**ENV, "LOGSIDECAR_OUTPUT": "otlp"}, {"outputs": ("stdout",), "stdout_format": "json"}
    ).outputs
    assert outputs == [StdoutOutput(format=StdoutFormat.JSON)]


def test_resource_attributes_merge_key_by_key(tmp_path: Path) -> None:
    file = write(tmp_path, "c.toml", 'resource = { a = "file", b = "file", c = "file" }\n')
    env = {**ENV, "OTEL_RESOURCE_ATTRIBUTES": "b=otel,c=otel", "LOGSIDECAR_RESOURCE": "c=ours"}
    assert resolve(file, env, {"resource": (("d", "flag"),)}).resource == {
        "a": "file",
        "b": "otel",
        "c": "ours",
        "d": "flag",
    }


def test_timezone_objects_from_click_are_accepted() -> None:
    from datetime import UTC, timedelta, timezone
    from zoneinfo import ZoneInfo

    assert resolve(None, ENV, {"timezone": ZoneInfo("Asia/Tokyo")}).timezone == "Asia/Tokyo"
    assert resolve(None, ENV, {"timezone": timezone(timedelta(hours=-7, minutes=-30))}).timezone == "-07:30"
    assert resolve(None, ENV, {"timezone": UTC}).timezone == "UTC"


def test_flags_from_click_keeps_only_what_the_command_line_gave() -> None:
    seen: dict[str, Any] = {}

    @click.command()
    @click.option("--watch", default="auto")
    @click.option("--start-at", default="beginning", envvar="X_START_AT")
    @click.option("--max-line-bytes", type=int)
    def cmd(**_: Any) -> None:
        seen.update(flags_from_click(click.get_current_context()))

    CliRunner().invoke(cmd, ["--max-line-bytes", "10"], env={"X_START_AT": "end"}, catch_exceptions=False)
    assert seen == {"max_line_bytes": 10}


# -- error messages (exact text) ----------------------------------------------------------------------------


def test_every_error_in_a_file_is_reported_with_its_path(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "c.toml",
        """
watchh = "poll"
watch = "inotfy"
max_line_bytes = "1XB"
ignore_older = "5x"
http_addr = "localhost"
timezone = "Mars/Base"
max_in_flight_lines = "many"
[[inputs]]
paths = ["/a"]
[[inputs]]
paths = ["/b"]
format = "combind"
fromat = "x"
[[inputs]]
exclude = []
[[outputs]]
type = "kafka"
[[outputs]]
format = "json"
[[outputs]]
type = "otlp"
protocol = "grpcx"
compression = "zstd"
insecure = "maybe"
batch_size = 0
endpoint = "ftp://x"
""",
    )
    formats = "auto, common, combined, vhost_combined, combinedio, referer, agent, error, json, raw, logformat:<LogFormat>, errorlogformat:<fmt>"
    settings_keys = (
        "derive_metrics, docker_metadata, drain_timeout, exclude, exit_when_exists, follow_symlinks, formats, "
        "http_addr, ignore_older, inputs, log_format, log_level, max_in_flight_lines, max_line_bytes, metrics_interval, "
        "metrics_route_depth, outputs, partial_line_flush, poll_interval, resource, service_name, "
        "start_at, state_dir, timezone, unhealthy_after, watch"
    )
    assert errors_of(file) == [
        f"inputs[1].format: unknown format 'combind'; expected one of: {formats}",
        "inputs[1].fromat: unknown key; did you mean 'format'?",
        "inputs[2].paths: required",
        "outputs[0]: unknown output type 'kafka'; expected one of: stdout, otlp",
        "outputs[1]: missing 'type'; expected one of: otlp, stdout",
        "outputs[2].protocol: unknown value 'grpcx'; expected one of: grpc, http/protobuf",
        "outputs[2].endpoint: invalid OTLP/gRPC endpoint 'ftp://x': must be host:port, an http:// or "
        "https:// URL, or a gRPC name (dns:///host:port, ipv4:addr:port,addr:port), e.g. http://collector:4317",
        "outputs[2].insecure: expected true or false, got 'maybe'",
        "outputs[2].compression: unknown value 'zstd'; expected one of: gzip, none",
        "outputs[2].batch_size: must be greater than 0, got 0",
        "watch: unknown value 'inotfy'; expected one of: auto, inotify, poll",
        "ignore_older: invalid duration '5x'; expected a number and a unit (ms, s, m, h, d), e.g. '30s', '5m', '24h'",
        "max_line_bytes: invalid size '1XB'; expected a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. '1MiB'",
        "timezone: unknown timezone 'Mars/Base'; expected local, UTC, an offset like +02:00 or a name like Europe/Paris",
        "max_in_flight_lines: expected an integer, got 'many'",
        "http_addr: invalid address 'localhost'; expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464",
        "watchh: unknown key; did you mean 'watch'?",
    ]
    # the valid keys are said once per place, after the errors, however many keys were wrong
    assert notes_of(file) == [
        "valid keys in [[inputs]]: exclude, format, paths",
        f"valid keys at the top level: {settings_keys}",
    ]


def test_a_flag_named_top_level_key_says_where_the_file_takes_it(tmp_path: Path) -> None:
    # issue 19, finding 5: flag names and file keys differ for the outputs' settings and the inputs;
    # a newcomer writes the flag's name, which no "did you mean" reaches (no top-level key is close)
    file = write(
        tmp_path,
        "c.toml",
        'otlp_timeout = "10s"\nstdout-format = "json"\noutput = "otlp"\npaths = ["/a.log"]\nstatedir = "/x"\n',
    )
    assert errors_of(file) == [
        "otlp_timeout: unknown key; in a file, this is 'timeout' in [[outputs]] with type = 'otlp'",
        "stdout-format: unknown key; in a file, this is 'format' in [[outputs]] with type = 'stdout'",
        "output: unknown key; in a file, this is [[outputs]] tables, one per output, with type = 'stdout' or 'otlp'",
        "paths: unknown key; in a file, this is [[inputs]] tables, each with paths = [...] (and its own format, exclude)",
        "statedir: unknown key; did you mean 'state_dir'?",
    ]
    # the key written where the file takes it is accepted: the hint leads to a valid file
    fixed = write(
        tmp_path,
        "fixed.toml",
        '[[inputs]]\npaths = ["/a.log"]\n[[outputs]]\ntype = "otlp"\ntimeout = "10s"\n'
        '[[outputs]]\ntype = "stdout"\nformat = "json"\n',
    )
    settings = resolve(fixed, ENV, {})
    assert [type(o).__name__ for o in settings.outputs] == ["OtlpOutput", "StdoutOutput"]


def test_values_from_env_and_flags_are_named_by_their_variable_or_flag() -> None:
    env = {
        "LOGSIDECAR_WATCH": "x",
        "LOGSIDECAR_OUTPUT": "stdout,kafka",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "soon",
        "OTEL_EXPORTER_OTLP_HEADERS": "secretvalue",
        "LOGSIDECAR_FORMAT": "combined\nerror",
        "LOGSIDECAR_IGNORE_OLDER": "forever",
    }
    assert errors_of(None, env, {"http_addr": "nope", "paths": ("/a",)}) == [
        "OTEL_EXPORTER_OTLP_TIMEOUT: expected a number of milliseconds, got 'soon'",
        "OTEL_EXPORTER_OTLP_HEADERS: expected KEY=VALUE pairs separated by commas (value not shown)",
        "LOGSIDECAR_FORMAT: more than one format for all files: 'combined', 'error'; use GLOB=SPEC to give files different formats",
        "LOGSIDECAR_OUTPUT: unknown output type 'kafka'; expected one of: stdout, otlp",
        "LOGSIDECAR_WATCH: unknown value 'x'; expected one of: auto, inotify, poll",
        "LOGSIDECAR_IGNORE_OLDER: invalid duration 'forever'; expected a number and a unit (ms, s, m, h, d), e.g. '30s', '5m', '24h'",
        "--http-addr: invalid address 'nope'; expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464",
    ]


def test_format_rule_with_a_bad_spec_names_the_bad_part() -> None:
    assert errors_of(None, {"LOGSIDECAR_FORMAT": "*access*=combind"}) == [
        "LOGSIDECAR_FORMAT: unknown format 'combind'; expected one of: auto, common, combined, vhost_combined, "
        "combinedio, referer, agent, error, json, raw, logformat:<LogFormat>, errorlogformat:<fmt>"
    ]


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    file = write(tmp_path, "c.toml", '[[outputs]]\ntype = "otlp"\nheaders = { authorization = 12345 }\n')
    assert errors_of(file) == ["outputs[0].headers.authorization: expected a string"]


def test_unset_environment_variable_in_the_file_is_an_error_next_to_the_others(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "c.toml",
        'watch = "x"\n[[outputs]]\ntype = "otlp"\nheaders = { authorization = "Bearer ${OTLP_TOKEN}", literal = "$${HOME}" }\n',
    )
    assert errors_of(file) == [
        "outputs[0].headers.authorization: environment variable OTLP_TOKEN is not set",
        "watch: unknown value 'x'; expected one of: auto, inotify, poll",
    ]
    otlp = resolve(file, {**ENV, "OTLP_TOKEN": "t", "LOGSIDECAR_WATCH": "poll"}, {}).outputs[0]
    assert isinstance(otlp, OtlpOutput)
    assert otlp.headers == {"authorization": "Bearer t", "literal": "${HOME}"}


def test_an_unset_variable_is_reported_once_not_again_as_its_emptied_value(tmp_path: Path) -> None:
    # the complete example run as its header says, before its variables are set: one error per key
    file = write(
        tmp_path,
        "c.toml",
        '[[outputs]]\ntype = "otlp"\nca_file = "${OTLP_CA_FILE}"\nclient_key = "/nonexistent.pem"\n',
    )
    assert errors_of(file) == [
        "outputs[0].ca_file: environment variable OTLP_CA_FILE is not set",
        "outputs[0].client_key: cannot read '/nonexistent.pem': No such file or directory",
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.toml", "a = [1,\n", "invalid TOML: Invalid value (at end of document)"),
        (
            "bad.yaml",
            "a: [1,\n",
            "invalid YAML: expected the node content, but found '<stream end>' (line 2, column 1)",
        ),
        ("list.yaml", "- 1\n", "expected a mapping of settings at the top level, got list"),
        ("c.ini", "[x]\n", "unsupported file type '.ini'; expected .toml, .yaml, .yml or .json"),
    ],
)
def test_unreadable_files_get_one_line_reasons(tmp_path: Path, name: str, text: str, message: str) -> None:
    file = write(tmp_path, name, text)
    assert errors_of(file) == [f"{file}: {message}"]


def test_missing_file_reason(tmp_path: Path) -> None:
    assert errors_of(tmp_path / "nope.toml") == [
        f"{tmp_path / 'nope.toml'}: cannot read: No such file or directory"
    ]


def test_empty_yaml_file_means_all_defaults(tmp_path: Path) -> None:
    assert resolve(write(tmp_path, "c.yaml", ""), ENV, {}) == resolve(None, ENV, {})


def test_unknown_logsidecar_variables_are_found() -> None:
    env = {"LOGSIDECAR_STATEDIR": "/x", "LOGSIDECAR_STATE_DIR": "/y", "LOGSIDECAR_PATHS": "/a", "OTHER": "1"}
    assert unknown_env_vars(env) == ["LOGSIDECAR_STATEDIR"]


# -- masking and check-config ----------------------------------------------------------------------------------


def test_masked_settings_hide_header_values_and_url_passwords() -> None:
    settings = Settings(
        outputs=[OtlpOutput(endpoint="https://user:pa55@collector:4318", headers={"x-api-key": "Bearer t"})],
        resource={"api_key": "k", "team": "web"},
    )
    masked = settings.masked()
    assert masked["outputs"][0]["headers"] == {"x-api-key": "***"}
    assert masked["outputs"][0]["endpoint"] == "https://***@collector:4318"
    assert masked["resource"] == {"api_key": "***", "team": "web"}
    assert "Bearer t" not in json.dumps(masked) and "pa55" not in json.dumps(masked)


def test_check_config_prints_the_effective_settings_masked(tmp_path: Path) -> None:
    file = write(tmp_path, "c.toml", TOML)
    env = {"HOME": "/home/app", "OTLP_TOKEN": "s3cret", "LOGSIDECAR_WATCH": "inotify"}
    result = CliRunner().invoke(check_config, [str(file), "--output-format", "json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["watch"] == "inotify"
    assert (data["ignore_older"], data["max_line_bytes"], data["partial_line_flush"]) == (
        "1d",
        2097152,
        "500ms",
    )
    assert data["outputs"][1]["headers"] == {"authorization": "***"}
    assert "s3cret" not in result.output


def test_check_config_yaml_output_is_readable(tmp_path: Path) -> None:
    file = write(tmp_path, "c.yaml", "start_at: end\ninputs: [{paths: [/logs/a.log]}]\n")
    result = CliRunner().invoke(check_config, [str(file), "--no-env"])
    assert result.exit_code == 0, result.output
    assert "start_at: end\n" in result.output
    assert "- paths:\n  - /logs/a.log\n" in result.output


def test_check_config_exits_2_with_every_error(tmp_path: Path) -> None:
    file = write(tmp_path, "c.toml", 'watch = "x"\nmax_line_bytes = "big"\n')
    result = CliRunner().invoke(check_config, [str(file), "--no-env"])
    assert result.exit_code == 2
    assert result.output == (
        f"{file}: invalid configuration (2 errors):\n"
        "  watch: unknown value 'x'; expected one of: auto, inotify, poll\n"
        "  max_line_bytes: invalid size 'big'; expected a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. '1MiB'\n"
    )


def test_check_config_warns_about_unknown_variables(tmp_path: Path) -> None:
    file = write(tmp_path, "c.toml", "")
    result = CliRunner().invoke(check_config, [str(file)], env={"LOGSIDECAR_STATEDIR": "/x"})
    assert result.exit_code == 0
    assert (
        "warning: LOGSIDECAR_STATEDIR is not a logsidecar setting; ignored "
        "(did you mean LOGSIDECAR_STATE_DIR?)\n"
    ) in result.output


def test_local_timezone_is_a_zone_with_dst_rules_not_a_fixed_offset() -> None:
    from datetime import datetime

    from logsidecar.settings.units import parse_timezone

    paris = parse_timezone("local", {"TZ": "Europe/Paris"})
    assert datetime(2026, 1, 15, 12, tzinfo=paris).utcoffset().total_seconds() == 3600  # type: ignore[union-attr]
    assert datetime(2026, 7, 15, 12, tzinfo=paris).utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    assert str(parse_timezone("local", {"TZ": ":UTC"})) == "UTC"


def test_operations_settings_come_from_file_env_and_flags_in_that_order(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(
        'derive_metrics = true\nmetrics_route_depth = 2\nmetrics_interval = "30s"\ndocker_metadata = "off"\n'
        '[[inputs]]\npaths = ["/a"]\n'
    )
    from_file = resolve(file, {}, {})
    assert (from_file.derive_metrics, from_file.metrics_route_depth, from_file.metrics_interval) == (
        True,
        2,
        30.0,
    )
    assert from_file.docker_metadata == "off"
    env = {"LOGSIDECAR_DERIVE_METRICS": "false", "LOGSIDECAR_METRICS_INTERVAL": "5s"}
    from_env = resolve(file, env, {})
    assert (from_env.derive_metrics, from_env.metrics_interval) == (False, 5.0)
    from_flags = resolve(
        file, env, {"derive_metrics": True, "docker_metadata": "on", "metrics_route_depth": 3}
    )
    assert (from_flags.derive_metrics, from_flags.docker_metadata, from_flags.metrics_route_depth) == (
        True,
        "on",
        3,
    )


def test_bad_operations_settings_name_their_key(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('docker_metadata = "maybe"\nmetrics_route_depth = 0\n[[inputs]]\npaths = ["/a"]\n')
    with pytest.raises(ConfigError) as caught:
        resolve(file, {}, {})
    assert caught.value.errors == [
        "metrics_route_depth: must be greater than 0, got 0",
        "docker_metadata: unknown value 'maybe'; expected one of: auto, on, off",
    ]


def test_paths_given_without_a_format_take_the_plain_format_rule() -> None:
    settings = resolve(None, {}, {"paths": ("/logs/a.log",), "format_rules": ("raw",)})
    assert settings.format_rules() == ([], "raw")
    from_env = resolve(None, {"LOGSIDECAR_PATHS": "/logs/a.log", "LOGSIDECAR_FORMAT": "combined"}, {})
    assert from_env.format_rules() == ([], "combined")


def test_default_paths_yield_to_a_config_files_inputs(tmp_path):
    from logsidecar.settings.sources import resolve

    cfg = tmp_path / "c.toml"
    cfg.write_text('[[inputs]]\npaths = ["/srv/logs/*.log"]\nformat = "combined"\n')
    env = {"LOGSIDECAR_DEFAULT_PATHS": "/var/log/apache2/*.log", "HOME": str(tmp_path)}
    assert [i.paths for i in resolve(cfg, env, {}).inputs] == [["/srv/logs/*.log"]]
    assert [i.paths for i in resolve(None, env, {}).inputs] == [["/var/log/apache2/*.log"]]
    env["LOGSIDECAR_PATHS"] = "/x/*.log"
    assert [i.paths for i in resolve(None, env, {}).inputs] == [["/x/*.log"]]


def test_follow_symlinks_from_the_file_the_environment_or_the_flag_defaults_to_within(tmp_path: Path) -> None:
    from logsidecar.tail.open_policy import FollowSymlinks

    assert tail_options(resolve(None, ENV, {})).follow_symlinks is FollowSymlinks.WITHIN
    file = write(tmp_path, "c.toml", 'follow_symlinks = "never"\n[[inputs]]\npaths = ["/logs/*.log"]\n')
    assert tail_options(resolve(file, ENV, {})).follow_symlinks is FollowSymlinks.NEVER
    env = {**ENV, "LOGSIDECAR_FOLLOW_SYMLINKS": "anywhere"}
    assert tail_options(resolve(file, env, {})).follow_symlinks is FollowSymlinks.ANYWHERE
    assert resolve(file, env, {"follow_symlinks": "within"}).follow_symlinks is FollowSymlinks.WITHIN
    with pytest.raises(ConfigError) as caught:
        resolve(write(tmp_path, "bad.toml", 'follow_symlinks = "always"\n'), ENV, {})
    assert caught.value.errors == [
        "follow_symlinks: unknown value 'always'; expected one of: never, within, anywhere"
    ]


def test_otlp_max_request_bytes_from_the_file_the_environment_and_the_flag(tmp_path: Path) -> None:
    file = write(tmp_path, "c.toml", '[[outputs]]\ntype = "otlp"\nmax_request_bytes = "2MiB"\n')

    def cap(env: dict[str, str], flags: dict[str, Any]) -> Any:
        [otlp] = resolve(file, {**ENV, **env}, flags).outputs
        assert isinstance(otlp, OtlpOutput)
        return otlp.otlp_flags()["otlp_max_request_bytes"]

    assert cap({}, {}) == 2 * 1024 * 1024
    assert cap({"LOGSIDECAR_OTLP_MAX_REQUEST_BYTES": "3MiB"}, {}) == 3 * 1024 * 1024
    flags = {"otlp_max_request_bytes": 1_000_000}
    assert cap({"LOGSIDECAR_OTLP_MAX_REQUEST_BYTES": "3MiB"}, flags) == 1_000_000
    assert errors_of(file, {"LOGSIDECAR_OTLP_MAX_REQUEST_BYTES": "lots"}) == [
        "LOGSIDECAR_OTLP_MAX_REQUEST_BYTES: invalid size 'lots'; expected a number and a unit "
        "(B, KB, MB, GB, KiB, MiB, GiB), e.g. '1MiB'"
    ]


def test_a_grpc_name_is_a_valid_file_endpoint_with_its_load_balancing() -> None:
    output = OtlpOutput(endpoint="dns:///gateway.observability:4317", load_balancing="pick_first")
    assert output.otlp_flags()["otlp_endpoint"] == "dns:///gateway.observability:4317"
    assert output.otlp_flags()["otlp_load_balancing"] == "pick_first"
