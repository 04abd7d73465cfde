"""Hostile configuration files (issue 13, finding 11): a YAML alias bomb, a recursive alias, deep
nesting and an oversized file each get one clear error naming the file, quickly and in little
memory, from a real `logsidecar check-config` process (no traceback).

The child runs under an address-space limit: before the fix, the alias bomb below (9 levels of 9
aliases, 9**9 strings once expanded) grew past any limit and died with a MemoryError traceback.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from logsidecar.settings.files import MAX_CONFIG_BYTES, MAX_CONFIG_NODES

# An interpreter with our imports needs ~40 MiB resident; 1 GiB of address space leaves room for
# threads' stacks and the allocator, and is far below what the expanded bomb needs (>> 1 GiB).
ADDRESS_SPACE_LIMIT = 1024**3


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logsidecar", "check-config", "--no-env", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    lines.append(f"inputs: [{{paths: [*a{levels - 1}]}}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("bomb.yaml", alias_bomb(), f"YAML aliases expand to more than {MAX_CONFIG_NODES} values"),
        ("recursive.yaml", "inputs: &a [*a]\n", "nested too deeply"),
        ("deep.yaml", "inputs: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested too deeply"),
        ("deep.json", '{"inputs": ' + "[" * 20_000 + "]" * 20_000 + "}\n", "nested too deeply"),
        ("big.toml", "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1), f"larger than {MAX_CONFIG_BYTES} bytes"),
    ],
    ids=["alias-bomb", "recursive-alias", "deep-yaml", "deep-json", "oversized"],
)
def test_hostile_config_file_is_refused_with_one_clear_error(
    tmp_path: Path, name: str, text: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    result = check_config(path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"{path}: {reason}" in result.stderr


def test_yaml_anchors_of_an_ordinary_config_still_work(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "inputs:\n"
        "  - paths: &paths ['/var/log/apache2/*access*log']\n"
        "    format: combined\n"
        "  - paths: *paths\n"
        "    format: common\n"
    )
    result = check_config(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("/var/log/apache2/*access*log") == 2
