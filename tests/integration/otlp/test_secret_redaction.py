"""Secrets in messages (issue 13, finding 9), on real `logsidecar` processes and real OTLP receivers.

Before:
- `user:PASSWORD@host` in a gRPC endpoint was masked in `endpoint` but printed in every
  sink_retry `detail`; without a scheme it was not masked at all;
- a header value with a newline was only refused by grpc's C core, at every request;
- `${VAR}` values were quoted in validation errors (`invalid size 'hunter2SECRET'`);
- URL credentials silently replaced an explicit `authorization` header on HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.helpers import wait_for
from tests.support.otlp_receiver import GrpcWitness, HttpWitness, free_port

PASSWORD = "Pa55word-1234"  # long enough to be looked for anywhere
TOKEN = "hunter2SECRET"


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **extra}


def logsidecar(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logsidecar", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(**extra_env),
    )


def tail_until(tmp_path: Path, args: list[str], done: str) -> str:
    """Run `logsidecar tail` (JSON self-log) until `done` is in its stderr; everything it printed."""
    log = tmp_path / "access.log"
    log.write_text('127.0.0.1 - - [05/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5\n')
    stderr = tmp_path / "stderr"
    stdout = tmp_path / "stdout"
    command = [sys.executable, "-m", "logsidecar", "tail", "--state-dir", "none", "--log-format", "json"]
    command += ["--format", "common", *args, str(log)]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env())
    try:
        wait_for(lambda: done in stderr.read_text(), timeout=30, message=f"{done!r} in the self-log")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return stderr.read_text() + stdout.read_text()


@pytest.mark.parametrize(
    "endpoint",
    ["user:{password}@127.0.0.1:{port}", "http://user:{password}@127.0.0.1:{port}"],
    ids=["grpc-target-without-scheme", "url"],
)
def test_endpoint_credentials_never_appear_in_retries(tmp_path: Path, endpoint: str) -> None:
    closed_port = free_port()  # nothing listens: every attempt fails and is reported
    shown = endpoint.format(password=PASSWORD, port=closed_port)
    args = ["--output", "otlp", "--otlp-endpoint", shown, "--otlp-insecure"]
    output = tail_until(tmp_path, args, '"event":"sink_retry"')
    assert PASSWORD not in output
    assert "127.0.0.1" in output  # the endpoint is still named, without its credentials


def test_endpoint_credentials_reach_the_collector_as_basic_authorization(tmp_path: Path) -> None:
    expected = "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    with GrpcWitness(required_header=("authorization", expected)) as witness:
        endpoint = f"user:{PASSWORD}@127.0.0.1:{witness.port}"
        args = ["--output", "otlp", "--otlp-endpoint", endpoint, "--otlp-insecure"]
        log = tmp_path / "access.log"
        log.write_text('127.0.0.1 - - [05/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5\n')
        command = [sys.executable, "-m", "logsidecar", "tail", "--state-dir", "none", "--log-format", "json"]
        with (tmp_path / "stderr").open("wb") as err:
            process = subprocess.Popen(
                [*command, "--format", "common", *args, str(log)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env(),
            )
        try:
            wait_for(lambda: witness.record_count == 1, timeout=30, message="the record delivered")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert witness.rejected_requests == 0
    assert PASSWORD not in (tmp_path / "stderr").read_text()


def test_url_credentials_and_an_authorization_header_together_are_refused(tmp_path: Path) -> None:
    with HttpWitness(required_header=("authorization", f"Bearer {TOKEN}")) as witness:
        endpoint = witness.url.replace("http://", f"http://user:{PASSWORD}@")
        log = tmp_path / "access.log"
        log.write_text("x\n")
        result = logsidecar(
            "tail", "--state-dir", "none", "--format", "raw", "--output", "otlp",
            "--otlp-protocol", "http/protobuf", "--otlp-endpoint", endpoint,
            "--otlp-header", f"authorization=Bearer {TOKEN}", str(log),
        )  # fmt: skip
        assert witness.store.logs() == []  # never sent with one credential silently replacing the other
    assert result.returncode == 2, result.stderr
    assert "'authorization'" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert TOKEN not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "value",
    [f"abc\n{TOKEN}", f"abc\r{TOKEN}", f"abc\x00{TOKEN}", f"abc\u00e9{TOKEN}"],
    ids=["LF", "CR", "NUL", "non-ASCII"],
)
def test_a_header_value_that_cannot_be_sent_is_a_startup_error_naming_the_header(
    tmp_path: Path, value: str
) -> None:
    # Through the standard variable (percent-encoded, so that even a NUL can be given) ...
    log = tmp_path / "access.log"
    log.write_text("x\n")
    result = logsidecar(
        "tail", "--state-dir", "none", "--format", "raw", "--output", "otlp",
        "--otlp-endpoint", f"127.0.0.1:{free_port()}", "--otlp-insecure", str(log),
        OTEL_EXPORTER_OTLP_HEADERS=f"x-token={quote(value)}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "OTEL_EXPORTER_OTLP_HEADERS (header 'x-token')" in result.stderr
    assert "value not shown" in result.stderr
    assert TOKEN not in result.stderr + result.stdout

    # ... and in a configuration file (a JSON string is a YAML double-quoted string: escapes work).
    config = tmp_path / "c.yaml"
    config.write_text(f"outputs: [{{type: otlp, headers: {{x-token: {json.dumps(value)}}}}}]\n")
    checked = logsidecar("check-config", str(config))
    assert checked.returncode == 2
    assert "outputs[0].headers.x-token:" in checked.stderr and "value not shown" in checked.stderr
    assert TOKEN not in checked.stderr + checked.stdout


def test_values_from_variables_are_never_quoted_in_errors_or_check_config(tmp_path: Path) -> None:
    invalid = tmp_path / "invalid.toml"
    invalid.write_text('max_line_bytes = "${SIZE}"\ndrain_timeout = "${SHORT}"\n')
    result = logsidecar("check-config", str(invalid), SIZE=TOKEN, SHORT="zz")
    assert result.returncode == 2
    assert "max_line_bytes: invalid size (value not shown)" in result.stderr
    assert "drain_timeout: invalid duration (value not shown)" in result.stderr
    assert TOKEN not in result.stderr and "zz" not in result.stderr

    tail = logsidecar("tail", "--config", str(invalid), str(tmp_path / "x.log"), SIZE=TOKEN, SHORT="zz")
    assert tail.returncode == 2 and "max_line_bytes" in tail.stderr
    assert TOKEN not in tail.stderr

    valid = tmp_path / "valid.toml"
    valid.write_text(
        'state_dir = "${STATE}"\n[[outputs]]\ntype = "otlp"\n'
        'endpoint = "https://user:${PASSWORD}@collector:4318"\n'
    )
    shown = logsidecar("check-config", str(valid), STATE=str(tmp_path / "state-dir"), PASSWORD=PASSWORD)
    assert shown.returncode == 0, shown.stderr
    assert "state_dir: ${STATE}" in shown.stdout
    assert "https://***@collector:4318" in shown.stdout
    assert PASSWORD not in shown.stdout and "state-dir" not in shown.stdout


def test_dry_run_hides_a_header_value_quoted_by_a_log_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(f'127.0.0.1 - - [05/Dec/2026:10:00:00 +0000] "GET /?key={TOKEN} HTTP/1.1" 200 5\n')
    result = logsidecar(
        "tail", "--dry-run", "--format", "common", "--output", "otlp",
        "--otlp-header", f"x-api-key={TOKEN}", str(log),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "GET /?key=***" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
