"""`logsidecar tail` as a user runs it: option and environment handling, per-pattern formats, output
selection (stdout and a real OTLP/gRPC receiver at once), resource attributes, and a closed stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.helpers import wait_for
from tests.support.otlp_receiver import GrpcWitness
from tests.support.paths import REPO_ROOT
from tests.support.tail_command import TailProcess

ACCESS_LINE = (
    '192.0.2.7 - - [28/Nov/2026:02:00:01 +0000] "GET /index.html?a=1 HTTP/1.1" 200 12 "-" "curl/8"\n'
)
ERROR_LINE = (
    "[Sat Nov 28 02:00:01.123456 2026] [core:error] [pid 12] [client 192.0.2.7:5] AH00126: Invalid URI\n"
)


def run_tail(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logsidecar", "tail", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )


def test_invalid_format_spec_exits_2_naming_the_bad_directive(tmp_path: Path) -> None:
    result = run_tail("--format", "*access*=logformat:%h %Q %>s", str(tmp_path / "access.log"))
    assert result.returncode == 2
    assert "'%Q'" in result.stderr and "--format" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_format_name_from_the_environment_exits_2(tmp_path: Path) -> None:
    result = run_tail(str(tmp_path / "access.log"), env={"LOGSIDECAR_FORMAT": "combind"})
    assert result.returncode == 2
    assert "combind" in result.stderr


def test_two_formats_for_all_files_is_a_usage_error(tmp_path: Path) -> None:
    result = run_tail("--format", "combined", "--format", "common", str(tmp_path / "x.log"))
    assert result.returncode == 2
    assert "more than one format for all files" in result.stderr


def test_per_pattern_formats_parse_access_and_error_logs_and_stamp_file_attributes(tmp_path: Path) -> None:
    (tmp_path / "access.log").write_text(ACCESS_LINE)
    (tmp_path / "error.log").write_text(ERROR_LINE)
    tail = TailProcess(
        ["--format", "*error*=error", "--format", "combined", "--resource", "deployment.environment=test",
         str(tmp_path / "*.log")],
        tmp_path / "state",
        tmp_path / "tail.stderr",
    ).start()  # fmt: skip
    wait_for(lambda: tail.count() >= 2, timeout=30, message="both lines")
    code, _ = tail.terminate()
    assert code == 0
    records = {r.record["attributes"]["log.file.name"]: r.record for r in tail.snapshot()}
    access, error = records["access.log"], records["error.log"]
    assert access["attributes"]["http.response.status_code"] == 200
    assert access["attributes"]["url.path"] == "/index.html"
    assert access["attributes"]["log.file.path"] == str(tmp_path / "access.log")
    assert len(access["attributes"]["log.record.uid"]) == 32
    assert error["severity_text"] == "error" and error["severity_number"] == 17
    assert "logsidecar.parse_error" not in access["attributes"]
    assert "logsidecar.parse_error" not in error["attributes"]
    assert access["resource"]["service.name"] == "apache-httpd"
    assert access["resource"]["deployment.environment"] == "test"
    assert access["resource"]["host.name"]


def test_every_option_can_come_from_the_environment(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("first\nsecond\n")
    tail = TailProcess(
        [],
        tmp_path / "state",
        tmp_path / "tail.stderr",
        env={
            "LOGSIDECAR_PATHS": str(log),
            "LOGSIDECAR_FORMAT": "raw",
            "LOGSIDECAR_RESOURCE": "team=web,zone=a",
            "OTEL_SERVICE_NAME": "shop",
        },
    ).start()
    wait_for(lambda: tail.count() >= 2, timeout=30, message="both lines")
    code, _ = tail.terminate()
    assert code == 0
    assert tail.bodies() == ["first", "second"]
    resource = tail.snapshot()[0].record["resource"]
    assert (resource["service.name"], resource["team"], resource["zone"]) == ("shop", "web", "a")


def test_stdout_and_otlp_outputs_at_once_both_receive_every_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("".join(ACCESS_LINE.replace("a=1", f"a={i}") for i in range(500)))
    with GrpcWitness() as witness:
        tail = TailProcess(
            ["--output", "stdout", "--output", "otlp", "--otlp-endpoint", witness.endpoint,
             "--otlp-protocol", "grpc", "--otlp-batch-timeout", "0.05", "--resource", "team=web", str(log)],
            tmp_path / "state",
            tmp_path / "tail.stderr",
        ).start()  # fmt: skip
        wait_for(
            lambda: tail.count() >= 500 and witness.record_count >= 500, timeout=30, message="both outputs"
        )
        code, _ = tail.terminate()
        otlp_logs = witness.logs()
    assert code == 0
    expected = sorted(ACCESS_LINE.rstrip("\n").replace("a=1", f"a={i}") for i in range(500))
    assert sorted(tail.bodies()) == expected
    assert sorted(log.body for log in otlp_logs) == expected
    assert otlp_logs[0].resource["service.name"][1] == "apache-httpd"
    assert otlp_logs[0].resource["team"][1] == "web"
    # The same line carries the same uid on both outputs.
    stdout_uids = {r.record["body"]: r.record["attributes"]["log.record.uid"] for r in tail.snapshot()}
    otlp_uids = {log.body: log.attributes["log.record.uid"][1] for log in otlp_logs}
    assert stdout_uids == otlp_uids


def test_closed_stdout_ends_the_command_quietly(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("".join(f"line {i}\n" for i in range(200_000)))
    command = (
        f"{sys.executable} -m logsidecar tail --format raw --state-dir {tmp_path / 'state'} "
        f"--stdout-format raw --log-level warning {log} | head -n 3"
    )
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert result.stdout == "line 0\nline 1\nline 2\n"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode == 0


def test_auto_stdout_format_is_json_when_stdout_is_a_pipe(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(ACCESS_LINE)
    tail = TailProcess(["--stdout-format", "auto", str(log)], tmp_path / "state", tmp_path / "e").start()
    wait_for(lambda: tail.count() >= 1, timeout=30, message="one line")
    code, _ = tail.terminate()
    assert code == 0
    assert tail.bodies() == [ACCESS_LINE.rstrip("\n")]
    assert set(tail.snapshot()[0].record) >= {"timestamp", "body", "attributes", "resource"}  # JSON lines
