"""Lint, type-check and dependency hygiene are part of the suite, so CI runs them (docs/design.md: ruff and
mypy in CI; every imported distribution declared in pyproject.toml; no library's private names imported)."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tests.support.paths import REPO_ROOT


def test_ruff_finds_nothing():
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_finds_nothing_in_the_package():
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "logsidecar"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr


# --- dependencies: every import declared, no private names -------------------------------------------

LOCAL_TOP_LEVEL = {"logsidecar", "tests", "benchmarks", "__future__"}


def _imports(paths: Iterable[Path]) -> Iterator[tuple[str, str, list[str]]]:
    """(where, module, imported names) for every absolute import in `paths`, at any depth (the
    package imports optional libraries inside functions)."""
    for path in sorted(paths):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield where, alias.name, []
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield where, node.module, [alias.name for alias in node.names]


def _is_third_party(module: str, local: set[str]) -> bool:
    top = module.partition(".")[0]
    return top not in sys.stdlib_module_names and top not in local


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(*extras: str) -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {_canonical(re.match(r"[A-Za-z0-9._-]+", r.strip()).group()) for r in requirements}  # type: ignore[union-attr]


@functools.cache
def _top_level_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _distribution_of(module: str) -> str | None:
    """The installed distribution that provides `module`. A top-level name shared by several
    distributions (the `google` and `opentelemetry` namespace packages) is resolved by which
    distribution's files hold the module itself."""
    candidates = sorted(set(_top_level_distributions().get(module.partition(".")[0], [])))
    if len(candidates) <= 1:
        return _canonical(candidates[0]) if candidates else None
    prefix = module.replace(".", "/")
    for parts in (prefix.split("/")[:n] for n in range(prefix.count("/") + 1, 0, -1)):
        stem = "/".join(parts)
        for name in candidates:
            files = importlib.metadata.distribution(name).files or []
            if any(f.as_posix().startswith((stem + "/", stem + ".")) for f in files):
                return _canonical(name)
    return None


def _undeclared(paths: Iterable[Path], declared: set[str], local: set[str]) -> list[str]:
    problems = []
    for where, module, _names in _imports(paths):
        if not _is_third_party(module, local):
            continue
        distribution = _distribution_of(module)
        if distribution is None:
            problems.append(f"{where}: {module} comes from no installed distribution")
        elif distribution not in declared:
            problems.append(
                f"{where}: {module} is from {distribution}, which pyproject.toml does not declare"
            )
    return problems


def test_the_package_imports_only_declared_distributions():
    problems = _undeclared((REPO_ROOT / "logsidecar").rglob("*.py"), _declared(), LOCAL_TOP_LEVEL)
    assert not problems, "\n".join(problems)


def test_the_tests_import_only_declared_distributions():
    # Harnesses next to the tests and the benchmarks' log generator are imported by their plain names too.
    local = LOCAL_TOP_LEVEL | {p.stem for d in ("tests", "benchmarks") for p in (REPO_ROOT / d).rglob("*.py")}
    problems = _undeclared((REPO_ROOT / "tests").rglob("*.py"), _declared("test"), local)
    assert not problems, "\n".join(problems)


def test_the_undeclared_import_check_can_fail(tmp_path: Path):
    # A module importing a distribution that is installed (pytest) but not a runtime dependency.
    (tmp_path / "m.py").write_text("def f():\n    import pytest\n    from google.rpc import status_pb2\n")
    problems = _undeclared([tmp_path / "m.py"], _declared(), LOCAL_TOP_LEVEL)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "pytest is from pytest, which pyproject.toml does not declare"
    ]


def _private_imports(paths: Iterable[Path]) -> list[str]:
    """Imports of a library's private names: `from x import _y`, or a module path with a component
    that starts with `_` (dunder names such as __version__ are public)."""
    problems = []
    for where, module, names in _imports(paths):
        if not _is_third_party(module, LOCAL_TOP_LEVEL):
            continue
        private = [part for part in module.split(".") if part.startswith("_") and not part.endswith("__")]
        private += [name for name in names if name.startswith("_") and not name.endswith("__")]
        if private:
            problems.append(f"{where}: {module} {names or ''}: private {', '.join(private)}")
    return problems


def test_the_package_imports_no_private_names_of_other_libraries():
    problems = _private_imports((REPO_ROOT / "logsidecar").rglob("*.py"))
    assert not problems, "\n".join(problems)


def test_the_private_import_check_can_fail(tmp_path: Path):
    (tmp_path / "m.py").write_text(
        "from opentelemetry.exporter.otlp.proto.grpc import _OTLP_GRPC_CHANNEL_OPTIONS\n"
        "from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport\n"
        "import grpc._channel\n"
        "from opentelemetry.sdk.version import __version__\n"
    )
    assert [p.rsplit("private ", 1)[1] for p in _private_imports([tmp_path / "m.py"])] == [
        "_OTLP_GRPC_CHANNEL_OPTIONS",
        "_requests",
        "_channel",
    ]
