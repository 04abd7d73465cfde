"""Session fixtures for the e2e suite: a real Docker engine and the demo's images.

- `docker_engine`: runs scripts/ensure-docker.sh (installs/starts dockerd when needed). Without an
  engine the docker-marked tests fail under CI (CI must run them) and skip elsewhere.
- `demo_images`: runs scripts/build-images.sh, which builds (or, via Docker's layer cache, reuses) the
  sidecar, apache, log-volume, collector and traffic images on a local base image when no registry
  answers (scripts/build-base-image.sh). Its duration is reported at the end of the run.
- `e2e_report(scenario, sent, received, duplicates)`: records one line of "lines sent vs records
  received" for the terminal summary, so every run shows its numbers.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.paths import SCRIPTS

RUN_ID = uuid.uuid4().hex[:6]

_REPORT: list[str] = []


def _fail_or_skip(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    result = subprocess.run(
        ["bash", str(SCRIPTS / "ensure-docker.sh")], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        _fail_or_skip(f"no Docker engine: {result.stderr.strip()[-2000:]}")


@pytest.fixture(scope="session")
def demo_images(docker_engine: None) -> None:
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(SCRIPTS / "build-images.sh")], capture_output=True, text=True, timeout=1800
    )
    elapsed = time.monotonic() - started
    _REPORT.append(f"images: scripts/build-images.sh took {elapsed:.0f}s")
    _REPORT.extend(line for line in result.stderr.splitlines() if " built in " in line)
    if result.returncode != 0:
        pytest.fail(f"building the demo images failed:\n{result.stderr[-4000:]}")


@pytest.fixture(scope="session")
def e2e_run_id() -> str:
    return RUN_ID


@pytest.fixture(scope="session")
def e2e_report() -> Callable[[str, int, int, int], None]:
    def report(scenario: str, sent: int, received: int, duplicates: int) -> None:
        _REPORT.append(f"{scenario}: lines sent {sent}, records received {received}, duplicates {duplicates}")

    return report


@pytest.fixture(scope="session")
def host_log_root(docker_engine: None) -> Iterator[Path]:
    """A host directory under /var/log for the bind-mount variant, removed afterwards."""
    root = Path(f"/var/log/logsidecar-e2e-{RUN_ID}")
    yield root
    subprocess.run(["rm", "-rf", str(root)], check=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORT:
        terminalreporter.section("e2e: lines sent vs records received")
        for line in _REPORT:
            terminalreporter.write_line(line)
