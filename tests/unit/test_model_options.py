"""One place per setting: the `tail` options, their LOGSIDECAR_* variables and the defaults shown in
--help are derived from the settings model, and a value given nowhere is the model's default."""

from __future__ import annotations

import click
import pytest

from logsidecar.cli.tail import command as tail_command
from logsidecar.settings.model import Settings
from logsidecar.settings.sources import SCALARS, resolve
from logsidecar.settings.units import format_size, key_values, parse_size

ENV = {"HOME": "/home/app"}


def _options() -> dict[str, click.Option]:
    return {p.name: p for p in tail_command.params if isinstance(p, click.Option) and p.name}


@pytest.mark.parametrize("name", SCALARS)
def test_every_scalar_setting_is_an_option_with_its_variable_help_and_no_click_default(name: str) -> None:
    option = _options()[name]
    field = Settings.model_fields[name]
    assert f"--{name.replace('_', '-')}" in option.opts
    assert option.envvar == f"LOGSIDECAR_{name.upper()}"
    assert field.description and option.help and option.help.startswith(field.description)
    assert option.default is None  # not given is not a flag: the env, the file, then the model decide


def test_help_shows_the_models_defaults_in_their_units() -> None:
    help_of = {name: option.help for name, option in _options().items()}
    assert help_of["poll_interval"].endswith("[default: 250ms]")
    assert help_of["unhealthy_after"].endswith("[default: 1m]")
    assert help_of["max_line_bytes"].endswith("[default: 1MiB]")
    assert help_of["start_at"].endswith("[default: beginning]")
    assert help_of["max_in_flight_lines"].endswith(f"[default: {Settings().max_in_flight_lines}]")
    assert help_of["derive_metrics"].endswith("[default: off]")


def test_choices_and_ranges_follow_the_model_types() -> None:
    options = _options()
    assert isinstance(options["watch"].type, click.Choice)
    assert list(options["watch"].type.choices) == ["auto", "inotify", "poll"]
    assert list(options["docker_metadata"].type.choices) == ["auto", "on", "off"]
    assert isinstance(options["max_in_flight_lines"].type, click.IntRange)
    assert options["max_in_flight_lines"].type.min == 1  # gt=0 in the model
    assert options["derive_metrics"].secondary_opts == ["--no-derive-metrics"]


def test_nothing_given_resolves_to_the_model_defaults() -> None:
    settings = resolve(None, ENV, {})
    for name in SCALARS:
        if name != "state_dir":  # computed from the environment (XDG_STATE_HOME, HOME)
            assert getattr(settings, name) == Settings.model_fields[name].default, name


@pytest.mark.parametrize("size", [1, 1000, 1024, 4096, 1536 * 1024, 20 * 1024 * 1024, 3 * 1024**3])
def test_format_size_reads_back_as_the_same_size(size: int) -> None:
    assert parse_size(format_size(size)) == size


def test_key_values_counts_malformed_members_and_decodes_only_when_asked() -> None:
    assert key_values("a=1, b = x%20y ,,bad, =v") == ({"a": "1", "b": "x%20y"}, 2)
    assert key_values("k%3D=v%2C1", percent_encoded=True) == ({"k=": "v,1"}, 0)


def test_every_variable_that_is_read_is_known() -> None:
    from logsidecar.settings.sources import unknown_env_vars

    read = {f"LOGSIDECAR_{name.upper()}" for name in SCALARS} | {
        "LOGSIDECAR_PATHS", "LOGSIDECAR_FORMAT", "LOGSIDECAR_EXCLUDE", "LOGSIDECAR_OUTPUT",
        "LOGSIDECAR_RESOURCE", "LOGSIDECAR_STDOUT_FORMAT", "LOGSIDECAR_CONFIG",
        "LOGSIDECAR_DEFAULT_PATHS", "LOGSIDECAR_OTLP_MAX_REQUEST_BYTES",
    }  # fmt: skip
    assert unknown_env_vars(dict.fromkeys(read, "x")) == []
    assert unknown_env_vars({"LOGSIDECAR_POLL_INTERVALL": "1s"}) == ["LOGSIDECAR_POLL_INTERVALL"]
