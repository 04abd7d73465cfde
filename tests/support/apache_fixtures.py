"""Apache fixtures for the integration tests (tests/integration/conftest.py offers them).

`apache_factory(**options)` starts an `ApacheServer` (options as in its constructor; the tmp dir
is filled in) and stops every server it started at teardown. `apache` is one running server with a
combined access log at `<tmp_path>/access.log` and the error log at `<tmp_path>/error.log`.
Tests that need Apache skip (with the reason) only when the apache2 binary is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.apache import ApacheFactory, ApacheServer, find_apache_binary

__all__ = ["ApacheFactory", "apache", "apache_factory", "require_apache"]


def require_apache() -> None:
    """Skip the calling test when Debian's apache2 binary is absent (CI installs it)."""
    if find_apache_binary() is None:
        pytest.skip("the apache2 binary is not installed (apt-get install apache2)")


@pytest.fixture
def apache_factory(tmp_path: Path) -> Iterator[ApacheFactory]:
    require_apache()
    started: list[ApacheServer] = []

    def start(**options: Any) -> ApacheServer:
        options.setdefault("tmp_path", tmp_path)
        server = ApacheServer(**options)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def apache(apache_factory: ApacheFactory, tmp_path: Path) -> ApacheServer:
    return apache_factory(custom_logs=[(tmp_path / "access.log", "combined")])
