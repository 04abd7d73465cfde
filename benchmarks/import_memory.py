"""Where a running `logsidecar` command's memory goes: per imported package, and the rest. Prints tables.

    python benchmarks/import_memory.py [--after 5] [--top 25] [--rss-only] -- tail --format combined FILE ...

Runs the command given after `--` in this process (as `python -m logsidecar ...` would; for `tail`,
its long-lived process: `python -m logsidecar.runtime` on the run resolved by a child), with
tracemalloc on and every module's loading wrapped: a module's own cost is what its creation and
execution allocated (Python heap, tracemalloc) and what the process's RSS grew by meanwhile
(shared libraries mapped and touched, e.g. an extension module), minus what the modules it
imported cost themselves. Costs are summed per top-level package (`logsidecar.*` per subpackage).
After `--after` seconds it prints, to stderr: the per-package table, the largest allocation sites
since start-up that are not module loading (buffers, caches), and the totals; then it stops the
command with SIGTERM.

tracemalloc's own bookkeeping grows RSS with every allocation, so with it the RSS column overstates
Python-heavy packages: `--rss-only` leaves tracemalloc off (heap columns 0) for RSS figures that
add up to the command's real RSS (compare with benchmarks/footprint.py's idle row). Numbers only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from types import ModuleType
from typing import Any


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def package_of(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "logsidecar" else parts[0]


class _Costs:
    def __init__(self) -> None:
        self.heap: Counter[str] = Counter()
        self.rss: Counter[str] = Counter()
        self.modules: Counter[str] = Counter()
        self._stack: list[list[int]] = []  # per module being loaded: [heap of children, rss of children]

    def measure(self, name: str, action: Any, *args: Any) -> Any:
        heap_before, rss_before = tracemalloc.get_traced_memory()[0], rss_kib()  # heap 0: --rss-only
        self._stack.append([0, 0])
        try:
            return action(*args)
        finally:
            children_heap, children_rss = self._stack.pop()
            heap = tracemalloc.get_traced_memory()[0] - heap_before
            rss = rss_kib() - rss_before
            package = package_of(name)
            self.heap[package] += heap - children_heap
            self.rss[package] += rss - children_rss
            if self._stack:
                self._stack[-1][0] += heap
                self._stack[-1][1] += rss


COSTS = _Costs()


class _MeasuredLoader(importlib.abc.Loader):
    """Delegates to the real loader; measures create_module and exec_module."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return COSTS.measure(spec.name, self._loader.create_module, spec)

    def exec_module(self, module: ModuleType) -> None:
        COSTS.modules[package_of(module.__name__)] += 1
        COSTS.measure(module.__name__, self._loader.exec_module, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _MeasuringFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _MeasuredLoader(spec.loader)
                return spec
        return None


def report(top: int, started_rss_kib: int) -> None:
    if not tracemalloc.is_tracing():
        out = sys.stderr
        print(f"\n{'package':<28} {'modules':>7} {'RSS KiB':>8}", file=out)
        for package, rss in COSTS.rss.most_common(top):
            print(f"{package:<28} {COSTS.modules[package]:>7} {rss:>8}", file=out)
        print(f"{'all imports':<28} {sum(COSTS.modules.values()):>7} {sum(COSTS.rss.values()):>8}", file=out)
        print(f"\nRSS {rss_kib() / 1024:.1f} MiB, of which {started_rss_kib / 1024:.1f} MiB before the first "
              "import measured here (interpreter, site, this script)", file=out)  # fmt: skip
        return
    out = sys.stderr
    total_heap = sum(COSTS.heap.values())
    total_rss = sum(COSTS.rss.values())
    print(f"\n{'package':<28} {'modules':>7} {'heap KiB':>9} {'RSS KiB':>8}", file=out)
    for package, heap in COSTS.heap.most_common(top):
        print(
            f"{package:<28} {COSTS.modules[package]:>7} {heap / 1024:>9.0f} {COSTS.rss[package]:>8}", file=out
        )
    print(
        f"{'all imports':<28} {sum(COSTS.modules.values()):>7} {total_heap / 1024:>9.0f} {total_rss:>8}",
        file=out,
    )
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"), tracemalloc.Filter(False, __file__)]
    )
    print(f"\nlargest allocation sites, module loading excluded (top {top}):", file=out)
    for stat in snapshot.statistics("lineno")[:top]:
        frame = stat.traceback[0]
        print(
            f"{stat.size / 1024:>9.0f} KiB {stat.count:>7} blocks  {frame.filename}:{frame.lineno}", file=out
        )
    traced, peak = tracemalloc.get_traced_memory()
    print(
        f"\ntraced heap now {traced / 2**20:.1f} MiB (peak {peak / 2**20:.1f}); RSS {rss_kib() / 1024:.1f} MiB, "
        f"of which {started_rss_kib / 1024:.1f} MiB before the first import measured here "
        f"(interpreter, site, this script); tracemalloc's own overhead: "
        f"{tracemalloc.get_tracemalloc_memory() / 2**20:.1f} MiB",
        file=out,
    )


def main() -> None:
    argv = sys.argv[1:]
    after, top, heap = 5.0, 25, True
    while argv and argv[0] != "--":
        option = argv.pop(0)
        if option == "--after":
            after = float(argv.pop(0))
        elif option == "--rss-only":
            heap = False
        elif option == "--top":
            top = int(argv.pop(0))
        else:
            sys.exit(f"unknown option {option}; usage: {__doc__.splitlines()[2].strip()}")
    if not argv:
        sys.exit(f"usage: {__doc__.splitlines()[2].strip()}")
    command = argv[1:]
    started_rss = rss_kib()
    if heap:
        tracemalloc.start(1)
    sys.meta_path.insert(0, _MeasuringFinder())

    def stop_later() -> None:
        time.sleep(after)
        report(top, started_rss)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_later, daemon=True).start()
    if command[:1] == ["tail"]:
        # The long-lived process of `tail` is the runtime it replaces itself with (after resolving
        # with click and pydantic): resolve in a child as a reload does, run the runtime here.
        sys.argv = ["logsidecar.runtime", "--run-fd", str(resolved_run_fd(command))]
        runpy.run_module("logsidecar.runtime", run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["logsidecar", *command]
        runpy.run_module("logsidecar", run_name="__main__", alter_sys=True)


def resolved_run_fd(command: list[str]) -> int:
    """A descriptor holding the resolved run of `logsidecar COMMAND` (`logsidecar.cli.resolve`)."""
    done = subprocess.run(
        [sys.executable, "-m", "logsidecar.cli.resolve", *command], capture_output=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"cannot resolve {' '.join(command)}: {(done.stdout or done.stderr).decode().strip()}")
    fd = os.memfd_create("logsidecar-run", 0)
    os.write(fd, done.stdout)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


if __name__ == "__main__":
    main()
