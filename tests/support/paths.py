"""Where the repository's parts are, for tests and harnesses wherever they sit under tests/.

One place instead of `Path(__file__).parents[N]` in every file, so moving a test never breaks it.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "logsidecar"
BENCHMARKS = REPO_ROOT / "benchmarks"
SCRIPTS = REPO_ROOT / "scripts"
