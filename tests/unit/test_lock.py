"""requirements/*.txt is the lock pyproject.toml's ranges were resolved to: editing a range without
relocking (bash scripts/upgrade-deps.sh --keep) fails here, not on someone's fresh machine."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.paths import REPO_ROOT

LOCKS = REPO_ROOT / "requirements"


def _pins(lock: str) -> dict[str, str]:
    text = (LOCKS / lock).read_text(encoding="utf-8")
    return {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)}


def _hashed_everywhere(lock: str) -> list[str]:
    """Names of pins without a --hash (pip --require-hashes would refuse the whole file)."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", (LOCKS / lock).read_text(encoding="utf-8"))
    return [e.split("==")[0] for e in entries if "==" in e and "--hash=sha256:" not in e]


def _requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(r) for r in listed]


@pytest.mark.parametrize(("lock", "extra"), [("runtime.txt", None), ("test.txt", None), ("test.txt", "test")])
def test_every_declared_dependency_is_locked_within_its_range(lock: str, extra: str | None) -> None:
    pins = _pins(lock)
    problems = []
    for requirement in _requirements(extra):
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement} is not in requirements/{lock}")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"requirements/{lock} pins {name}=={pins[name]}, outside {requirement}")
    assert not problems, "\n".join(problems) + "\n(relock: bash scripts/upgrade-deps.sh --keep)"


def test_the_test_lock_ships_the_runtime_lock_unchanged() -> None:
    runtime, test = _pins("runtime.txt"), _pins("test.txt")
    assert {name: test.get(name) for name in runtime} == runtime


@pytest.mark.parametrize("lock", ["runtime.txt", "test.txt", "build.txt", "collector.txt"])
def test_every_pin_has_hashes(lock: str) -> None:
    assert _pins(lock)
    assert _hashed_everywhere(lock) == []
