"""`logsidecar tail` validates, then replaces itself with the lean runtime (`logsidecar.runtime`,
`service.handover`): the same process, the resolved run handed over on a descriptor that is closed
once read, never on the command line or in the environment. Where the exec fails, the run goes on in
the `tail` process and says why at debug level.

Real processes throughout; the only double is the fault of the last test (an interpreter path that
does not exist, as a removed or unreadable binary would give), named there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.support.otlp_receiver import HttpWitness, wait_for
from tests.support.paths import REPO_ROOT

LINE = b'192.0.2.7 - - [05/Dec/2026:10:00:00 +0000] "GET /runtime HTTP/1.1" 200 12 "-" "probe/1"\n'
SECRET = "Bearer s3cret-token-for-the-runtime-test"


def test_the_runtime_is_the_same_process_and_holds_its_run_nowhere_readable(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(LINE)
    config = tmp_path / "logsidecar.toml"
    with HttpWitness(required_header=("authorization", SECRET)) as witness:
        config.write_text(
            f'[[inputs]]\npaths = ["{log}"]\nformat = "combined"\n\n'
            f'[[outputs]]\ntype = "otlp"\nprotocol = "http/protobuf"\n'
            f'endpoint = "{witness.url.removesuffix("/v1/logs")}"\n'
            f'headers = {{ authorization = "{SECRET}" }}\n'
        )
        child = subprocess.Popen(
            [sys.executable, "-m", "logsidecar", "tail", "--config", str(config), "--start-at", "beginning",
             "--state-dir", str(tmp_path / "state")],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            # The header only the handed-over run carried: the witness refuses a request without it.
            wait_for(lambda: len(witness.bodies()) >= 1, 30, what="the record at the receiver")
            cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{child.pid}/environ").read_bytes()
            descriptors = {
                os.readlink(f"/proc/{child.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{child.pid}/fd")
            }
        finally:
            child.send_signal(signal.SIGTERM)
            _, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr.decode()
    assert cmdline[1:3] == [b"-m", b"logsidecar.runtime"], cmdline  # the same PID, now the runtime
    assert b"s3cret" not in b"\0".join(cmdline) and b"s3cret" not in environ
    assert not [d for d in descriptors if "logsidecar-run" in d], descriptors  # read, then closed
    assert b"s3cret" not in stderr


def test_when_the_exec_fails_the_run_goes_on_in_the_tail_process(tmp_path: Path) -> None:
    # The fault: an interpreter path that cannot be started. It cannot be produced for the real
    # interpreter while it runs, so the command is started with sys.executable pointing elsewhere.
    log = tmp_path / "access.log"
    log.write_bytes(LINE)
    missing = tmp_path / "no-such-python"
    script = f"import sys; sys.executable = {str(missing)!r}; from logsidecar.cli import run; run()"
    child = subprocess.Popen(
        [sys.executable, "-c", script, "tail", "--format", "combined", "--start-at", "beginning",
         "--state-dir", str(tmp_path / "state"), "--log-format", "json", "--log-level", "debug", str(log)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    assert child.stdout is not None
    try:
        assert b"/runtime" in child.stdout.readline()  # delivered all the same
        cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
    finally:
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr.decode()
    assert cmdline[1] == b"-c"  # still the `tail` process
    events = [orjson.loads(line) for line in stderr.splitlines() if line.startswith(b"{")]
    said = [e for e in events if e["event"] == "started" and e.get("component") == "runtime"]
    assert len(said) == 1 and str(missing) in said[0]["reason"], said
    assert said[0]["level"] == "debug"


@pytest.mark.parametrize("exec_fails", [False, True], ids=["runtime", "in-process"])
def test_a_reload_adds_an_input_and_refuses_a_bad_file(tmp_path: Path, exec_fails: bool) -> None:
    """SIGHUP reads the file again: in the runtime through the resolving child; in the `tail` process
    (the exec failed: the same fault as in the test above) in a worker thread. Either way the plan is
    built on the loop, a new input is followed and a bad file keeps the running pipeline."""
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_bytes(LINE)
    second.write_bytes(LINE.replace(b"/runtime", b"/second"))
    config = tmp_path / "logsidecar.toml"
    config.write_text(f'[[inputs]]\npaths = ["{first}"]\nformat = "combined"\n')
    arguments = ["tail", "--config", str(config), "--start-at", "beginning",
                 "--state-dir", str(tmp_path / "state"), "--log-format", "json"]  # fmt: skip
    if exec_fails:
        missing = tmp_path / "no-such-python"
        script = f"import sys; sys.executable = {str(missing)!r}; from logsidecar.cli import run; run()"
        command = [sys.executable, "-c", script, *arguments]
    else:
        command = [sys.executable, "-m", "logsidecar", *arguments]
    path = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    child = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    try:
        assert b"/runtime" in child.stdout.readline()
        config.write_text(f'[[inputs]]\npaths = ["{first}", "{second}"]\nformat = "combined"\n')
        child.send_signal(signal.SIGHUP)
        assert b"/second" in child.stdout.readline()  # the new input, from the reloaded file
        config.write_text(f'[[inputs]]\npaths = ["{first}"]\nfromat = "combined"\n')
        child.send_signal(signal.SIGHUP)
        time.sleep(0.1)
        with first.open("ab") as handle:  # the running pipeline goes on
            handle.write(LINE.replace(b"/runtime", b"/after"))
        assert b"/after" in child.stdout.readline()
        cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
    finally:
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr.decode()
    if exec_fails:
        assert cmdline[1] == b"-c"  # still the `tail` process
    else:
        assert b"logsidecar.runtime" in cmdline, cmdline
    events = [orjson.loads(line) for line in stderr.splitlines() if line.startswith(b"{")]
    reloaded = [e for e in events if e["event"] == "config_reloaded"]
    assert [e["inputs_added"] for e in reloaded] == [[str(second)]]
    refused = [e for e in events if e["event"] == "config_error"]
    assert len(refused) == 1 and any("fromat" in line for line in refused[0]["errors"]), refused
    assert refused[0]["reason"] == "reload refused; still running the previous settings"


def test_the_runtime_is_this_logsidecar_not_one_in_the_working_directory(tmp_path: Path) -> None:
    """`python -m` puts the working directory first on sys.path; a `logsidecar` there (a source
    checkout of another version) must not become the runtime of the installed one."""
    impostor = tmp_path / "logsidecar"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("")
    (impostor / "runtime.py").write_text("import sys\nsys.exit('the impostor runtime ran')\n")
    log = tmp_path / "access.log"
    log.write_bytes(LINE)
    child = subprocess.Popen(
        # -P: `tail` itself is the installed one (as the console script would be)
        [sys.executable, "-P", "-m", "logsidecar", "tail", "--format", "combined", "--start-at", "beginning",
         "--state-dir", str(tmp_path / "state"), str(log)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    assert child.stdout is not None
    try:
        assert b"/runtime" in child.stdout.readline()
        cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
    finally:
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr.decode()
    assert cmdline[1:4] == [b"-P", b"-m", b"logsidecar.runtime"], cmdline


def test_the_runtime_refuses_bytes_that_are_not_a_run_on_one_line(tmp_path: Path) -> None:
    """Anyone can start `python -m logsidecar.runtime --run-fd 0 < bytes`: the bytes are read as data
    (never code, as a pickle's would be), and anything but a run is exit 2 with one readable line."""
    ran = tmp_path / "ran"
    # A pickle that would create `ran` when loaded: the old format, and the attack it allowed.
    evil = b"cos\nsystem\n(S'touch " + str(ran).encode() + b"'\ntR."
    wrong_at_depth = b'{"inputs": [["a.log"]], "tail": {"include": 7}}'
    for garbage, reason in [
        (evil, b"not JSON"),
        (b"\x00\xff garbage", b"not JSON"),
        (wrong_at_depth, b"tail.include: expected an array, got an integer"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "logsidecar.runtime", "--run-fd", "0"],
            input=garbage, cwd=REPO_ROOT, capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr.decode()
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(b"Error: cannot read the run on descriptor 0"), lines
        assert reason in lines[0] and b"Traceback" not in done.stderr
        assert done.stdout == b""
    assert not ran.exists()
