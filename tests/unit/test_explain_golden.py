"""`logsidecar parse --explain FORMAT` against golden files (tests/unit/golden/explain/<format>.txt).

The output holds the generated record builder and fast-path writers, so any change to the
generated source fails here and must be looked at. To accept a change, regenerate the files and
review their diff: `LOGSIDECAR_REGENERATE_GOLDEN=1 python3 -m pytest tests/unit/test_explain_golden.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from logsidecar.cli import main
from logsidecar.parse.access import PRESETS

GOLDEN = Path(__file__).resolve().parent / "golden" / "explain"
REGENERATE = os.environ.get("LOGSIDECAR_REGENERATE_GOLDEN") == "1"
FORMATS = [*PRESETS, "error"]


def explain(spec: str) -> str:
    result = CliRunner().invoke(main, ["parse", "--explain", spec])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("spec", FORMATS)
def test_explain_output_equals_its_golden_file(spec: str) -> None:
    golden = GOLDEN / f"{spec}.txt"
    output = explain(spec)
    if REGENERATE:
        golden.write_text(output, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}: run with LOGSIDECAR_REGENERATE_GOLDEN=1"
    assert output == golden.read_text(encoding="utf-8")


def test_explain_prints_the_source_that_runs() -> None:
    from logsidecar.fastpath import JSON_LINES, writer_for
    from logsidecar.fastpath.json_dialect import json_encoder_for
    from logsidecar.parse.access import preset_parser

    parser = preset_parser("combined")
    output = explain("combined")
    assert parser.compiled.builder_source in output
    encoder = json_encoder_for(parser)
    assert encoder is not None and encoder.source in output
    assert writer_for(parser, JSON_LINES) is not None


def test_a_format_without_a_writer_says_so() -> None:
    output = explain("referer")  # %U without %r: url.original is computed from two fields
    assert output.count("## fast-path writer:") == 2
    assert output.count("(none: fields share an attribute") == 2


def test_explain_of_a_bad_format_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["parse", "--explain", "logformat:%Z"])
    assert result.exit_code == 2
    assert "--explain" in result.output
