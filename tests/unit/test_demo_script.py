"""`scripts/demo.sh --help` prints its usage (the header comment), not lines of the script."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_help_prints_the_usage_and_no_script_line() -> None:
    for flag in ("--help", "-h"):
        result = subprocess.run(
            ["bash", str(ROOT / "scripts/demo.sh"), flag], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert any(line.startswith("Usage: bash scripts/demo.sh") for line in lines)
        assert "APACHE_IMAGE" in result.stdout
        assert not [line for line in lines if line.startswith(("#", "set ", "cd "))]
        assert "pipefail" not in result.stdout
