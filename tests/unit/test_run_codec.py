"""`settings.run_codec` is generic over dataclasses: a dataclass of its own here (every kind of
annotation the codec reads) goes through without any code for it, and each kind refuses what it is
not, naming where. The resolved run itself: tests/unit/test_resolved_run.py."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from pathlib import Path
from typing import Any

import orjson
import pytest

from logsidecar.settings import run_codec


class Colour(Enum):
    RED = "red"


class Level(IntEnum):
    LOW = 1


@dataclass(frozen=True)
class Inner:
    level: Level
    where: Path | None = None


@dataclass(frozen=True)
class Outer:
    name: str
    count: int
    ratio: float
    on: bool
    colour: Colour
    pair: tuple[str, int]
    inners: tuple[Inner, ...]
    labels: Mapping[str, tuple[int, ...]]
    loose: dict[str, Any]
    maybe: float | None = None
    either: int | str = 0
    derived: int = field(default=0, init=False)  # not an argument: neither written nor read

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("count must not be negative")


SAMPLE = Outer(
    name="n",
    count=3,
    ratio=-math.inf,
    on=False,
    colour=Colour.RED,
    pair=("a", 1),
    inners=(Inner(Level.LOW), Inner(Level.LOW, Path("/x"))),
    labels={"k.v": (1, 2)},
    loose={"list": [1, "a"], "none": None},
    maybe=math.inf,
    either="word",
)


def test_a_dataclass_of_every_kind_round_trips_with_its_types() -> None:
    back = run_codec.decode(Outer, run_codec.encode(SAMPLE))
    assert back == SAMPLE
    assert type(back.inners[1].level) is Level and isinstance(back.inners[1].where, Path)
    assert type(back.labels["k.v"]) is tuple and back.colour is Colour.RED
    assert "derived" not in orjson.loads(run_codec.encode(SAMPLE))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("count", 1.5, "count: expected an integer, got a number"),
        ("count", -1, "Outer: count must not be negative"),  # the dataclass's own check
        ("on", 0, "on: expected true or false, got an integer"),
        ("colour", "blue", "colour: expected one of 'red', got a string"),
        ("colour", ["red"], "colour: expected one of 'red', got an array"),
        ("pair", ["a", 1, 2], "pair: expected an array of 2, got 3 items"),
        ("pair", ["a", "b"], "pair[1]: expected an integer, got a string"),
        ("inners", [{"level": 1, "where": 5}], "inners[0].where: expected a path (a string), got an integer"),
        ("inners", [{"level": 2, "where": None}], "inners[0].level: expected one of 1, got an integer"),
        ("inners", [{"level": True, "where": None}], "inners[0].level: expected one of 1, got true"),
        ("inners", [{"level": 1.0, "where": None}], "inners[0].level: expected one of 1, got a number"),
        ("labels", {"k": [1, None]}, "labels['k'][1]: expected an integer, got null"),
        ("maybe", "Inf", "maybe: expected a number, got a string"),
        ("either", 1.0, "either: expected int or str, got a number"),
        ("derived", 1, "derived: unknown field of Outer"),
    ],
)
def test_each_kind_refuses_what_it_is_not_naming_where(key: str, value: Any, message: str) -> None:
    plain = {**orjson.loads(run_codec.encode(SAMPLE)), key: value}
    with pytest.raises(ValueError) as refused:
        run_codec.decode(Outer, orjson.dumps(plain))
    assert str(refused.value) == message


def test_what_json_cannot_hold_is_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="keys other than strings"):
        run_codec.encode(Inner(Level.LOW, {1: 2}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot encode"):
        run_codec.encode(Outer(**{**SAMPLE.__dict__, "count": 2**70}))  # beyond 64 bits
