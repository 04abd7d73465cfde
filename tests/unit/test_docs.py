"""The documents under docs/ stay true to the code.

- Every `tests/<path>.py::test_name` a document cites names a test that exists (found with `ast`, so a
  renamed or deleted test makes the document fail here instead of silently pointing nowhere).
- docs/record.md names every attribute the code can put on a record: the constants of
  `logsidecar.record`, every key (and Apache fallback key) of every LogFormat directive the compiler
  knows, the error-log parser's attribute constants, the container and the Kubernetes resource keys. A new attribute
  without a line in record.md fails.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from logsidecar import record
from logsidecar.containers.metadata import container_resource
from logsidecar.parse import errorlog
from logsidecar.parse.fields import compile_fields
from logsidecar.parse.logformat import ARGUMENT_CHOICES, DIRECTIVE_NAMES, NEEDS_ARGUMENT, tokenize
from logsidecar.settings.kubernetes_env import K8S_RESOURCE_VARIABLES
from tests.support.paths import REPO_ROOT

DOCS = REPO_ROOT / "docs"
# `tests/integration/test_x.py::test_name`, optionally with a parametrization: `...::test_name[poll]`.
TEST_REFERENCE = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)")
# What an OpenTelemetry-style attribute name looks like: dotted lowercase words.
ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
# The argument used for directives that take a free name (`%{NAME}C`): the keys they make end with it,
# and record.md documents them by their prefix (`apache.cookie.<NAME>`).
PLACEHOLDER = "Zz9"
# Arguments that change a directive's key beyond ARGUMENT_CHOICES.
SPECIAL_ARGUMENTS = {
    "a": ("c",),
    "h": ("c",),
    "i": ("Referer", "User-Agent"),
    "x": ("SSL_CIPHER",),
    "c": ("cipher",),
}


@functools.cache
def defined_test_names(path: Path) -> frozenset[str]:
    """Names of the test functions in `path`: module level and in classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.add(node.name)
    return frozenset(names)


def broken_references(text: str, root: Path) -> list[str]:
    """The `path::name` references in `text` whose file or test does not exist under `root`."""
    broken = []
    for path_text, name in TEST_REFERENCE.findall(text):
        path = root / path_text
        if not path.is_file():
            broken.append(f"{path_text}::{name} (no such file)")
        elif name not in defined_test_names(path):
            broken.append(f"{path_text}::{name} (no such test)")
    return broken


def documents() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def test_the_reference_check_reports_a_missing_test_and_a_missing_file() -> None:
    text = (
        "proved by tests/unit/test_docs.py::test_the_reference_check_reports_a_missing_test_and_a_missing_file,"
        " tests/unit/test_docs.py::test_that_was_never_written and tests/unit/no_such_file.py::test_x"
    )
    assert broken_references(text, REPO_ROOT) == [
        "tests/unit/test_docs.py::test_that_was_never_written (no such test)",
        "tests/unit/no_such_file.py::test_x (no such file)",
    ]


@pytest.mark.parametrize("document", ["rotation.md", "design.md", "record.md"])
def test_the_documents_exist(document: str) -> None:
    assert (DOCS / document).is_file()


def test_every_test_a_document_names_exists() -> None:
    cited = 0
    broken = []
    for document in documents():
        text = document.read_text(encoding="utf-8")
        cited += len(TEST_REFERENCE.findall(text))
        broken += [f"{document.name}: {reference}" for reference in broken_references(text, REPO_ROOT)]
    assert not broken, "documents cite tests that do not exist:\n" + "\n".join(broken)
    # rotation.md maps each case to its tests: a document that lost its references is a failure too
    assert len(TEST_REFERENCE.findall((DOCS / "rotation.md").read_text(encoding="utf-8"))) >= 20
    assert cited >= 20


def _documented_form(key: str) -> str:
    """`apache.cookie.Zz9` -> `apache.cookie.` (record.md writes `apache.cookie.<NAME>`)."""
    if key.lower().endswith(PLACEHOLDER.lower()):
        return key[: -len(PLACEHOLDER)]
    return key


def access_directive_keys() -> dict[str, set[str]]:
    """Every attribute each LogFormat directive can fill (its keys and its Apache fallback key)."""
    variants: list[str] = []
    for name in DIRECTIVE_NAMES:
        arguments: list[str | None] = []
        if name in NEEDS_ARGUMENT:
            arguments.append(PLACEHOLDER)
        else:
            arguments.append(None)
            arguments.extend(ARGUMENT_CHOICES.get(name, ()))
        arguments.extend(SPECIAL_ARGUMENTS.get(name, ()))
        for argument in arguments:
            variants.append(f"%{name}" if argument is None else f"%{{{argument}}}{name}")
    variants += ["%>s", "%<s"]
    keys: dict[str, set[str]] = {}
    for directive in variants:
        for spec in compile_fields(tokenize(directive)):
            found = {*spec.keys, *([spec.fallback] if spec.fallback else [])}
            keys.setdefault(directive, set()).update(_documented_form(k) for k in found)
    return keys


def attribute_constants(module: object) -> set[str]:
    """Module-level UPPER_CASE string constants that are attribute names."""
    return {
        value
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and ATTRIBUTE_NAME.match(value)
    }


def test_the_access_directive_table_is_read_in_full() -> None:
    keys = access_directive_keys()
    # A directive the compiler knows but this test forgot would escape the check below.
    assert {d.lstrip("%").split("}")[-1].lstrip("<>") for d in keys} >= set(DIRECTIVE_NAMES)
    assert "user_agent.original" in keys["%{User-Agent}i"]
    assert "http.request.header." in keys[f"%{{{PLACEHOLDER}}}i"]


def test_record_md_names_every_attribute_the_code_can_set() -> None:
    text = (DOCS / "record.md").read_text(encoding="utf-8")
    wanted: dict[str, str] = {}
    for constant in attribute_constants(record):
        wanted[constant] = "logsidecar.record"
    for constant in attribute_constants(errorlog):
        wanted[constant] = "logsidecar.parse.errorlog"
    for directive, keys in access_directive_keys().items():
        for key in keys:
            wanted.setdefault(key, f"LogFormat {directive}")
    inspect = {
        "Id": "0" * 64,
        "Name": "/web",
        "Image": "sha256:" + "1" * 64,
        "Config": {"Image": "httpd:2.4", "Labels": {PLACEHOLDER: "x"}},
    }
    for key in container_resource(inspect, labels=["*"]):
        wanted.setdefault(_documented_form(key), "containers.metadata.container_resource")
    for key in K8S_RESOURCE_VARIABLES.values():
        wanted.setdefault(key, "settings.kubernetes_env")
    assert len(wanted) > 60  # the tables were read, not an empty set that passes vacuously
    missing = sorted(f"{key} (from {source})" for key, source in wanted.items() if f"`{key}" not in text)
    assert not missing, "docs/record.md does not document:\n" + "\n".join(missing)
