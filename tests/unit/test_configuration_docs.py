"""docs/configuration.md is generated from the settings model and stays so; the complete examples
beside it load, say the same thing in TOML and in YAML, and set every key of the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from logsidecar import redact
from logsidecar.settings.docs import render
from logsidecar.settings.files import load_file
from logsidecar.settings.model import InputConfig, OtlpOutput, Settings, StdoutOutput
from logsidecar.settings.options import OPTIONS
from logsidecar.settings.sources import resolve


@pytest.fixture(autouse=True)
def _forget_secrets() -> Any:
    """The examples' header values become secrets of `logsidecar.redact` (process-wide)."""
    yield
    redact.forget_all()


ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
EXAMPLES = [ROOT / "docs" / "examples" / "logsidecar.toml", ROOT / "docs" / "examples" / "logsidecar.yaml"]


def test_the_committed_configuration_doc_is_what_the_model_generates() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: run `python -m logsidecar.settings.docs > docs/configuration.md`"
    )


def test_the_doc_names_every_option_by_its_key_flag_and_variable() -> None:
    text = render()
    for option in OPTIONS:
        assert f"`{option.field}`" in text
        assert f"`{option.env}`" in text
        if option.flag:
            assert option.flag in text


def test_the_readme_links_the_configuration_doc() -> None:
    assert "(docs/configuration.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def example_env(tmp_path: Path) -> dict[str, str]:
    """The variables the examples take their files and token from, the files made for real."""
    env = {"HOME": "/home/app", "OTLP_TOKEN": "t0ken"}
    for name in ("OTLP_CA_FILE", "OTLP_CLIENT_CERT", "OTLP_CLIENT_KEY"):
        path = tmp_path / f"{name.lower()}.pem"
        path.write_text("-----BEGIN CERTIFICATE-----\n")
        env[name] = str(path)
    return env


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.suffix)
def test_each_complete_example_loads_and_sets_every_key(example: Path, example_env: dict[str, str]) -> None:
    settings = resolve(example, example_env, {})
    data = load_file(example, example_env)
    assert set(data) == set(Settings.model_fields), "a top-level key is missing from the example"
    assert {key for item in data["inputs"] for key in item} == set(InputConfig.model_fields)
    by_type = {o["type"]: set(o) for o in data["outputs"]}
    assert by_type == {"stdout": set(StdoutOutput.model_fields), "otlp": set(OtlpOutput.model_fields)}
    # every value differs from its default, or the example would not show it is read
    defaults = Settings()
    for name in (
        "formats",
        "exclude",
        "start_at",
        "poll_interval",
        "max_line_bytes",
        "http_addr",
        "resource",
    ):
        assert getattr(settings, name) != getattr(defaults, name), name


def test_the_toml_and_yaml_examples_say_the_same_thing(example_env: dict[str, str]) -> None:
    toml, yaml = (resolve(example, example_env, {}) for example in EXAMPLES)
    assert toml == yaml
