"""Fixtures of the OTLP tests: `witness`, a gRPC witness receiver that stores every request; `rotel`, the
real rotel collector with its defaults (no receive-limit flag: what a user runs) forwarding to that
witness; `captured_events`, our own events emitted during the test (tests/support/captured_events.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.captured_events import CapturedEvents, capture_events
from tests.support.otlp_receiver import GrpcWitness, RotelCollector


@pytest.fixture
def witness() -> Iterator[GrpcWitness]:
    with GrpcWitness() as receiver:
        yield receiver


@pytest.fixture
def rotel(tmp_path: Path, witness: GrpcWitness) -> Iterator[RotelCollector]:
    with RotelCollector(tmp_path / "rotel", forward_to=witness.endpoint) as collector:
        yield collector


@pytest.fixture
def captured_events() -> Iterator[CapturedEvents]:
    with capture_events() as seen:
        yield seen
