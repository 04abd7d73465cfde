"""The command line's conventions, on real processes: `-o json|text` everywhere (older spellings
still accepted), JSON from `health` and `check-config`, examples in every --help, -q/-v, shell
completion that a real bash completes with, logfmt quoting in text self-logs, and `parse` telling a
failed write of its output from a failed read of its input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from logsidecar.cli import main
from tests.support.helpers import wait_for
from tests.support.otlp_receiver import free_port
from tests.support.paths import REPO_ROOT

ACCESS = '127.0.0.1 - - [28/Nov/2026:03:00:01 +0000] "GET /a%20b HTTP/1.1" 200 5 "-" "curl/8"\n'


def logsidecar(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logsidecar", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
    )


def every_command(group: click.Group = main, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, sub in sorted(group.commands.items()):
        if isinstance(sub, click.Group):
            found += every_command(sub, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", every_command(), ids=lambda p: " ".join(p) or "logsidecar")
def test_every_help_page_has_examples(path: tuple[str, ...]) -> None:
    result = logsidecar(*path, "--help")
    assert result.returncode == 0, result.stderr
    examples = result.stdout.split("Examples:", 1)
    assert len(examples) == 2, result.stdout
    assert "logsidecar" in examples[1].split("Options:")[0]


def test_output_format_is_one_option_with_the_older_spellings_hidden() -> None:
    for path in (("health",), ("check-config",), ("parse",), ("docker", "audit"), ("docker", "check-image")):
        text = logsidecar(*path, "--help").stdout
        assert "-o, --output-format [text|json]" in text, path
        options = text.split("Options:", 1)[1]
        assert "--json" not in options and "yaml" not in options, path


def test_health_prints_the_endpoints_answer_as_json(tmp_path: Path) -> None:
    port = free_port()
    unreachable = logsidecar("health", "-o", "json", "--url", f"http://127.0.0.1:{port}")
    assert unreachable.returncode == 1
    answer = json.loads(unreachable.stdout)
    assert answer["status"] == "unreachable" and f"127.0.0.1:{port}" in answer["summary"]

    log = tmp_path / "access.log"
    log.write_text(ACCESS)
    tail = subprocess.Popen(
        [sys.executable, "-m", "logsidecar", "tail", "--state-dir", str(tmp_path / "state"),
         "--http-addr", f"127.0.0.1:{port}", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: logsidecar("health", "--url", url).returncode == 0, 30, message="healthy")
        result = logsidecar("health", "--url", url, "--output-format", "json")
        text = logsidecar("health", "--url", url)
    finally:
        tail.terminate()
        tail.wait(30)
    assert result.returncode == 0
    answer = json.loads(result.stdout)
    assert (answer["status"], answer["files_followed"]) == ("ok", 1)
    assert text.stdout.strip() == answer["summary"]


def test_check_config_json_for_a_valid_and_an_invalid_file(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[[inputs]]\npaths = ["/var/log/apache2/*.log"]\n')
    result = logsidecar("check-config", "--no-env", "-o", "json", str(good))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["inputs"][0]["paths"] == ["/var/log/apache2/*.log"]
    old = logsidecar("check-config", "--no-env", "--output-format", "yaml", str(good))  # the older value
    assert old.returncode == 0 and old.stdout == logsidecar("check-config", "--no-env", str(good)).stdout

    bad = tmp_path / "bad.toml"
    bad.write_text('max_line_bytes = "lots"\n[[inputs]]\npaths = ["/x"]\n')
    result = logsidecar("check-config", "--no-env", "-o", "json", str(bad))
    assert result.returncode == 2
    answer = json.loads(result.stdout)
    assert answer["valid"] is False and answer["errors"][0].startswith("max_line_bytes:")


def test_parse_text_output_and_quiet(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(ACCESS)
    text = logsidecar("parse", "-o", "text", "--format", "combined", str(log))
    assert text.returncode == 0
    assert "GET" in text.stdout and "/a%20b" in text.stdout and not text.stdout.startswith("{")
    quiet = logsidecar("-q", "parse", str(log))
    assert quiet.stderr == "" and json.loads(quiet.stdout)["attributes"]["http.response.status_code"] == 200
    assert "1 parsed" in logsidecar("parse", str(log)).stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_parse_to_a_full_device_reports_a_write_error_not_a_read_error(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(ACCESS * 100)
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "logsidecar", "parse", str(log)],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )  # fmt: skip
    assert result.returncode == 1
    assert "error writing the output (stdout): No space left on device" in result.stderr
    assert "error reading" not in result.stderr and "Traceback" not in result.stderr


def test_quiet_and_verbose_set_our_log_level_unless_given(tmp_path: Path) -> None:
    quiet = logsidecar("-q", "tail", "--log-format", "json", "--format", "raw", "-", stdin="x\n")
    assert quiet.returncode == 0 and quiet.stderr == ""  # info events (started, stopped) gone
    explicit = logsidecar("-q", "tail", "--log-level", "info", "--log-format", "json", "-", stdin="x\n")
    assert '"event":"stopped"' in explicit.stderr  # the command's own flag wins
    normal = logsidecar("tail", "--log-format", "json", "--format", "raw", "-", stdin="x\n")
    assert '"event":"stopped"' in normal.stderr


def test_text_self_logs_quote_like_logfmt(tmp_path: Path) -> None:
    result = logsidecar("tail", "--log-format", "text", "--format", "raw", "-", stdin="x\n")
    started = next(line for line in result.stderr.splitlines() if " started " in line)
    assert started.endswith('sinks="[\\"stdout\\"]"')  # JSON in quotes, not ['stdout']
    assert "['" not in result.stderr and "{'" not in result.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_with_the_printed_script(tmp_path: Path) -> None:
    for shell in ("bash", "zsh", "fish"):
        result = logsidecar("completion", shell)
        assert result.returncode == 0 and "_LOGSIDECAR_COMPLETE" in result.stdout, shell
    script = tmp_path / "completion.bash"
    script.write_text(logsidecar("completion", "bash").stdout)
    # `logsidecar` as the completion script calls it: a shim running this tree.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "logsidecar"
    run = "from logsidecar.cli import main; main(prog_name='logsidecar')"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{run}" "$@"\n')
    shim.chmod(0o755)
    probe = (
        f"source {script}; COMP_WORDS=(logsidecar he); COMP_CWORD=1; _logsidecar_completion logsidecar; "
        'echo "${COMPREPLY[@]}"; COMPREPLY=(); COMP_WORDS=(logsidecar health -o ""); COMP_CWORD=3; '
        '_logsidecar_completion logsidecar; echo "${COMPREPLY[@]}"'
    )
    result = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert result.stdout.splitlines() == ["health", "text json"], result.stderr
