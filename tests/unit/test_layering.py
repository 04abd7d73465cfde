"""Imports run one way (issue 15): cli -> service -> {pipeline, tail, fastpath, sinks, metrics} ->
{parse, encoding} -> record/events, and no module imports itself back through others. Every import
counts, also inside functions and under TYPE_CHECKING: a type-only import is still a dependency."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from tests.support.paths import PACKAGE

# The layer of each first-level unit (subpackage or top module). A unit imports units of lower
# layers only, or a unit of its own layer when the pair is in SIDEWAYS. Units not written yet simply
# do not appear; a new unit must be placed here.
LAYERS = {
    "__main__": 7,
    "cli": 6,
    "runtime": 6,  # the long-lived process of `tail` (started by exec, imported by nothing)
    "service": 5,
    "settings": 4,  # a model: it runs nothing; only service and cli read it (see SIDEWAYS)
    "pipeline": 4, "tail": 4, "fastpath": 4, "sinks": 4, "metrics": 4, "containers": 4, "health": 4,
    "parse": 3, "encoding": 3, "stamp": 3, "acks": 3,
    "selflog": 2,
    "record": 1, "events": 1, "redact": 1, "terminal": 1,
}  # fmt: skip
SIDEWAYS = {
    ("pipeline", "tail"),  # the pipeline consumes the tailer's batches ...
    ("pipeline", "sinks"),  # ... and hands them to sinks through their contract
    ("pipeline", "fastpath"),
    ("parse", "encoding"),  # the access fast path writes OTLP wire bytes (until it moves to fastpath/)
    ("metrics", "sinks"),  # the metrics sink is a Sink, given resolved OtlpSettings
    ("containers", "tail"),  # container mounts are opened with tail's open policy
    # The settings name the value types of what they configure (StartAt, WatchMode, FollowSymlinks;
    # OtlpSettings) but build none of the running parts; nothing of these imports settings back.
    ("settings", "tail"),
    ("settings", "sinks"),
}
# Imports that break the rules, each with the step that removes it; the redesign emptied it. A NEW
# violation fails; an entry that no longer occurs fails too (remove it).
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def _imports(package: Path = PACKAGE) -> set[tuple[str, str]]:
    """(importer, imported) for every import between two modules of the package; an import of the
    package root (__version__) or of an importer's own parent package (always loaded first) is left out."""
    files = {".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in package.rglob("*.py")}  # fmt: skip
    edges = set()
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                         for a in node.names]  # fmt: skip
            else:
                continue
            for name in names:
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name and name != package.name and not (module + ".").startswith(name + "."):
                    edges.add((module, name))
    return edges


def _unit(module: str) -> str:
    """The first-level unit: "cli" for logsidecar.cli.tail, "stamp" for logsidecar.stamp."""
    return module.partition(".")[2].partition(".")[0]


def _wrong_way(edges: set[tuple[str, str]]) -> list[str]:
    """Every import against LAYERS/SIDEWAYS, and every unit that LAYERS does not place."""
    found = [
        f"unit {unit} is not in LAYERS" for unit in sorted({_unit(m) for e in edges for m in e} - set(LAYERS))
    ]
    for a, b in sorted(edges):
        up, down = _unit(a), _unit(b)
        if (
            up != down
            and up in LAYERS
            and down in LAYERS
            and LAYERS[up] <= LAYERS[down]
            and (up, down) not in SIDEWAYS
        ):
            found.append(f"{a} ({up}, layer {LAYERS[up]}) imports {b} ({down}, layer {LAYERS[down]})")
    return found


def _cycles(edges: set[tuple[str, str]]) -> list[str]:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    found = []
    while True:  # report a cycle, cut it, look again: every independent cycle is reported
        try:
            graphlib.TopologicalSorter(graph).prepare()
            return found
        except graphlib.CycleError as error:
            cycle = error.args[1]  # [m, ..., m], each one imported by the next
            graph[cycle[1]].discard(cycle[0])
            ring = cycle[:0:-1]  # in import order, without the repeated module
            start = ring.index(min(ring))
            found.append(" -> ".join(ring[start:] + ring[: start + 1]))


def test_imports_run_one_way() -> None:
    violations = _wrong_way(_imports() - KNOWN_VIOLATIONS)
    for violation in violations:
        print("layer violation:", violation)
    assert not violations, f"{len(violations)} imports against the layering (printed above)"


def test_no_module_cycles() -> None:
    cycles = _cycles(_imports() - KNOWN_VIOLATIONS)
    for cycle in cycles:
        print("module cycle:", cycle)
    assert not cycles, f"{len(cycles)} import cycles (printed above)"


def test_known_violations_still_occur() -> None:
    fixed = sorted(KNOWN_VIOLATIONS - _imports())
    assert not fixed, f"fixed, remove from KNOWN_VIOLATIONS: {fixed}"


def test_the_checks_can_fail(tmp_path: Path) -> None:
    # A sink importing cli (what access_metrics did), a type-only cycle, a unit LAYERS lacks in a cycle.
    package = tmp_path / "logsidecar"
    sources = {
        "__init__.py": "",
        "cli/__init__.py": "from logsidecar.sinks import otlp\n",
        "sinks/__init__.py": "",
        "sinks/otlp.py": "def f():\n    from logsidecar.cli import options\n",
        "cli/options.py": "import logsidecar\n",
        "parse/__init__.py": "",
        "parse/a.py": "from logsidecar.parse import b\n",
        "parse/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from logsidecar.parse.a import A\n",
        "gadgets.py": "from logsidecar.record import LogRecord\n",
        "record.py": "from logsidecar import gadgets\n",
    }
    for name, text in sources.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    edges = _imports(package)
    assert _wrong_way(edges) == [
        "unit gadgets is not in LAYERS",
        "logsidecar.sinks.otlp (sinks, layer 4) imports logsidecar.cli.options (cli, layer 6)",
    ]
    assert sorted(_cycles(edges)) == [
        "logsidecar.gadgets -> logsidecar.record -> logsidecar.gadgets",
        "logsidecar.parse.a -> logsidecar.parse.b -> logsidecar.parse.a",
    ]
