"""`logsidecar tail` operated as a service, end to end with real processes: the config file and its
precedence, the /metrics /healthz /readyz endpoint over real loopback HTTP during a real run, health
following a real OTLP receiver going away and coming back, SIGHUP reloading the inputs under load,
and --dry-run. Nothing is mocked: the OTLP receiver is the gRPC witness of `otlp_receiver`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import append_lines, wait_for
from tests.support.http_probe import http_get, scrape
from tests.support.numbered_lines import access_line, error_line
from tests.support.otlp_receiver import GrpcWitness, free_port
from tests.support.paths import REPO_ROOT
from tests.support.tail_command import TailProcess, WriterProcess, body_seq, dry_run, start_tail


def attributes(received: Any) -> dict[str, Any]:
    return dict(received.record["attributes"])


# -- the config file -----------------------------------------------------------------------------


def test_config_file_env_and_flags_combine_key_by_key_on_a_real_run(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    append_lines(logs / "site-access.log", [access_line(n) for n in range(3)])
    append_lines(logs / "site-error.log", [error_line(n) for n in range(2)])
    config = tmp_path / "logsidecar.toml"
    config.write_text(
        f"""
start_at = "end"                       # overridden by LOGSIDECAR_START_AT: the old lines are read
service_name = "from-file"             # overridden by OTEL_SERVICE_NAME
resource = {{ a = "file", b = "file", c = "file" }}

[[inputs]]
paths = ["{logs}/*access.log"]
format = "combined"

[[inputs]]
paths = ["{logs}/*error.log"]
format = "error"
"""
    )
    env = {
        "LOGSIDECAR_CONFIG": str(config),
        "LOGSIDECAR_START_AT": "beginning",
        "LOGSIDECAR_RESOURCE": "b=env,c=env",
        "OTEL_SERVICE_NAME": "from-env",
    }
    process = start_tail(tmp_path, "--resource", "c=flag", env=env)
    try:
        wait_for(lambda: process.count() >= 5, 20, message="the 5 existing lines")
    finally:
        code, _ = process.terminate()
    assert code == 0
    received = process.snapshot()
    by_file = Counter((attributes(r)["log.file.name"], attributes(r)["logsidecar.format"]) for r in received)
    assert by_file == {("site-access.log", "combined"): 3, ("site-error.log", "error"): 2}
    assert not [r for r in received if "logsidecar.parse_error" in attributes(r)]
    resources = {json.dumps(r.record["resource"], sort_keys=True) for r in received}
    assert len(resources) == 1
    resource = received[0].record["resource"]
    assert (resource["a"], resource["b"], resource["c"]) == ("file", "env", "flag")
    assert resource["service.name"] == "from-env"


def test_a_bad_config_value_exits_2_naming_the_key_and_what_was_expected(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "inputs:\n  - paths: [/var/log/a.log]\n  - paths: [/var/log/b.log]\n    format: combind\n"
        "max_line_bytes: lots\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "logsidecar", "tail", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"{config}: invalid configuration (2 errors):"
    assert lines[1].startswith(
        "  inputs[1].format: unknown format 'combind'; expected one of: auto, common, combined"
    )
    assert lines[2].startswith("  max_line_bytes: invalid size 'lots'; expected a number and a unit")


# -- the telemetry endpoint ------------------------------------------------------------------------


def test_metrics_scraped_during_a_real_run_count_what_was_written(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    first = [access_line(n) if n % 10 else f"garbage line {n}" for n in range(500)]
    append_lines(log, first)
    port = free_port()
    process = start_tail(tmp_path, "--http-addr", f"127.0.0.1:{port}", "--format", "combined", str(log))
    try:
        wait_for(lambda: process.count() == 500, 30, message="the first 500 lines")
        more = [access_line(n) if n % 10 else f"garbage line {n}" for n in range(500, 800)]
        append_lines(log, more)
        wait_for(lambda: process.count() == 800, 30, message="all 800 lines")
        behind = ("logsidecar_bytes_behind", (("input", str(log)),))

        def settled() -> dict[Any, float] | None:
            sample = scrape(port)
            return sample if sample.get(behind) == 0.0 else None

        metrics = wait_for(settled, 10, message="0 bytes behind")
        status, health = http_get(f"http://127.0.0.1:{port}/healthz")
        ready_status, _ = http_get(f"http://127.0.0.1:{port}/readyz")
        print("\n/metrics after 800 lines (logsidecar_* samples):")
        for (name, labels), value in sorted(metrics.items()):
            if name.startswith("logsidecar_") and "_bucket" not in name and "process" not in name:
                print(f"  {name}{dict(labels) if labels else ''} {value}")
        print(f"/healthz {status} {health.strip()}")
    finally:
        code, _ = process.terminate()
    assert code == 0
    lines = first + more
    path = (("input", str(log)),)  # the configured input: here the file itself
    assert metrics[("logsidecar_lines_read_total", path)] == 800
    assert metrics[("logsidecar_bytes_read_total", path)] == sum(len(line) for line in lines)
    assert metrics[("logsidecar_records_parsed_total", (("format", "combined"),))] == 720
    assert metrics[("logsidecar_records_unparsed_total", (("format", "combined"),))] == 80
    assert metrics[("logsidecar_records_delivered_total", (("sink", "stdout"),))] == 800
    assert metrics[("logsidecar_files_watched", ())] == 1
    assert metrics[("logsidecar_queue_depth", ())] == 0
    assert metrics[("logsidecar_oldest_undelivered_age_seconds", ())] == 0
    assert (status, ready_status) == (200, 200)
    assert json.loads(health)["bytes_behind"] == 0


def test_health_turns_unhealthy_when_the_otlp_receiver_stays_down_and_back_when_it_returns(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    log.touch()
    port = free_port()
    witness = GrpcWitness().start()
    writer = WriterProcess(log, lines_per_s=50, total=100_000, pad=20).start()
    process = start_tail(
        tmp_path,
        "--output", "otlp", "--otlp-endpoint", witness.endpoint, "--otlp-batch-timeout", "0.05",
        "--http-addr", f":{port}", "--unhealthy-after", "3s", "--format", "raw", str(log),
    )  # fmt: skip
    healthz = f"http://127.0.0.1:{port}/healthz"
    timeline: list[str] = []
    try:
        wait_for(lambda: witness.record_count > 20, 20, message="records reaching the receiver")
        assert http_get(healthz)[0] == 200
        stopped_at = time.monotonic()
        witness.stop()

        def unhealthy() -> tuple[int, str] | None:
            answer = http_get(healthz)
            return answer if answer[0] == 503 else None

        code, body = wait_for(unhealthy, 20, 0.1, "healthz 503")
        unhealthy_at = time.monotonic()
        timeline.append(f"receiver stopped -> /healthz 503 after {unhealthy_at - stopped_at:.2f} s")
        timeline.append(f"  body: {body.strip()}")
        witness.start()  # same port
        restarted_at = time.monotonic()
        wait_for(lambda: http_get(healthz)[0] == 200, 40, 0.1, "healthz 200 again")
        healthy_at = time.monotonic()
        timeline.append(f"receiver back -> /healthz 200 after {healthy_at - restarted_at:.2f} s")
        written = writer.stop()
        wait_for(
            lambda: {body_seq(b) for b in witness.bodies()} >= set(range(written)),
            40,
            message="every written line at the receiver",
        )
    finally:
        if writer.running():
            writer.stop()
        code_exit, _ = process.terminate()
        witness.stop()
    print("\nhealth transitions (--unhealthy-after 3s):\n  " + "\n  ".join(timeline))
    assert code_exit == 0
    reasons = json.loads(body)["reasons"]
    assert len(reasons) == 1 and "otlp" in reasons[0]
    # Not before the configured 3 s of failing (the first failure comes after the stop).
    assert unhealthy_at - stopped_at >= 3.0
    assert {body_seq(b) for b in witness.bodies()} == set(range(written))


def test_derive_metrics_exports_request_counts_over_otlp_next_to_stdout(tmp_path: Path) -> None:
    from tests.support.metrics_witness import MetricsWitness

    log = tmp_path / "access.log"
    append_lines(
        log,
        [access_line(n) for n in range(10)] + [access_line(n).replace(" 200 ", " 404 ") for n in range(3)],
    )
    witness = MetricsWitness().start()
    process = start_tail(
        tmp_path,
        "--derive-metrics", "--otlp-endpoint", witness.endpoint, "--metrics-interval", "500ms",
        "--metrics-route-depth", "1", "--service-name", "derived-test", "--format", "combined", str(log),
    )  # fmt: skip

    def requests() -> dict[tuple[Any, ...], int]:
        return {
            dict(attrs)["http.response.status_code"]: int(point.as_int)
            for (name, attrs), (_, point) in witness.latest_points("derived-test").items()
            if name == "apache.http.server.requests" and dict(attrs).get("http.route") == "/p"
        }

    try:
        wait_for(lambda: process.count() == 13, 20, message="13 records on stdout")
        counts = wait_for(lambda: (c := requests()) == {200: 10, 404: 3} and c, 20, message="metrics")
    finally:
        code, _ = process.terminate()
        witness.stop()
    assert code == 0
    assert counts == {200: 10, 404: 3}


def test_docker_metadata_on_without_a_reachable_writer_container_says_so_and_keeps_tailing(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    append_lines(log, ["one", "two"])
    process = start_tail(tmp_path, "--docker-metadata", "on", "--format", "raw", str(log))
    try:
        wait_for(lambda: process.count() == 2, 20, message="both lines")
    finally:
        code, _ = process.terminate()
    assert code == 0
    errors = [e for e in process.events("config_error") if e.get("key") == "docker_metadata"]
    assert len(errors) == 1
    assert not [k for r in process.snapshot() for k in r.record["resource"] if k.startswith("container.")]


# -- SIGHUP ----------------------------------------------------------------------------------------


def write_config(path: Path, inputs: list[Path]) -> None:
    blocks = "".join(f'[[inputs]]\npaths = ["{p}"]\nformat = "raw"\n\n' for p in inputs)
    path.write_text(blocks)


def test_sighup_adds_an_input_under_load_without_losing_or_repeating_a_line(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    config = tmp_path / "logsidecar.toml"
    write_config(config, [a])
    total = 1200
    writer_a = WriterProcess(a, lines_per_s=300, total=total, pad=40).start()
    writer_b = WriterProcess(b, lines_per_s=300, total=total, pad=40).start()
    process = start_tail(tmp_path, "--config", str(config), "--log-level", "info")

    def seqs(name: str) -> list[int]:
        return [body_seq(r.body) for r in process.snapshot() if attributes(r)["log.file.name"] == name]

    try:
        wait_for(lambda: len(seqs("a.log")) > 100, 20, message="a.log flowing")
        config.write_text('[[inputs]]\npaths = ["/x"]\nformat = "combind"\n')
        assert process.process is not None
        process.process.send_signal(signal.SIGHUP)
        wait_for(lambda: process.events("config_error"), 10, message="config_error for the bad file")
        assert process.process.poll() is None  # still running the old settings
        count_before = len(seqs("a.log"))
        wait_for(lambda: len(seqs("a.log")) > count_before + 50, 10, message="a.log still flowing")
        assert seqs("b.log") == []

        write_config(config, [a, b])
        process.process.send_signal(signal.SIGHUP)
        reloaded = wait_for(lambda: process.events("config_reloaded"), 15, message="config_reloaded")
        written_a, written_b = writer_a.wait(60), writer_b.wait(60)
        wait_for(
            lambda: len(seqs("a.log")) >= written_a and len(seqs("b.log")) >= written_b,
            30,
            message="every line of both files",
        )
    finally:
        for writer in (writer_a, writer_b):
            if writer.running():
                writer.stop()
        code, _ = process.terminate()
    assert code == 0
    assert reloaded[0]["inputs_added"] == [str(b)]
    assert reloaded[0]["inputs_removed"] == []
    errors = process.events("config_error")
    assert "inputs[0].format: unknown format 'combind'" in errors[0]["errors"][0]
    assert Counter(seqs("a.log")) == Counter(range(written_a))  # exactly once, across the reload
    assert Counter(seqs("b.log")) == Counter(range(written_b))
    assert len(process.events("started")) >= 2  # two pipelines in one process


def test_an_input_removed_then_added_back_resumes_at_its_checkpoint(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"

    def numbered(path: Path, start: int, end: int) -> list[str]:
        # Different content per file: identical files would be taken for copies of each other.
        return [f"w {n:08d} t=0 {path.name}" for n in range(start, end)]

    append_lines(a, numbered(a, 0, 100))
    append_lines(b, numbered(b, 0, 100))
    config = tmp_path / "logsidecar.toml"
    write_config(config, [a, b])
    process = start_tail(tmp_path, "--config", str(config))
    assert process.process is not None

    def seqs(name: str) -> list[int]:
        return [body_seq(r.body) for r in process.snapshot() if attributes(r)["log.file.name"] == name]

    try:
        wait_for(lambda: len(seqs("a.log")) == 100 and len(seqs("b.log")) == 100, 20, message="200 lines")
        write_config(config, [a])
        process.process.send_signal(signal.SIGHUP)
        wait_for(lambda: len(process.events("config_reloaded")) == 1, 15, message="first reload")
        append_lines(b, numbered(b, 100, 150))  # written while b.log is not an input
        append_lines(a, numbered(a, 100, 150))
        wait_for(lambda: len(seqs("a.log")) == 150, 20, message="a.log's new lines")
        assert len(seqs("b.log")) == 100
        write_config(config, [a, b])
        process.process.send_signal(signal.SIGHUP)
        wait_for(lambda: len(process.events("config_reloaded")) == 2, 15, message="second reload")
        wait_for(lambda: len(seqs("b.log")) >= 150, 20, message="b.log's lines written while removed")
    finally:
        code, _ = process.terminate()
    assert code == 0
    first, second = process.events("config_reloaded")
    assert (first["inputs_added"], first["inputs_removed"]) == ([], [str(b)])
    assert (second["inputs_added"], second["inputs_removed"]) == ([str(b)], [])
    assert Counter(seqs("a.log")) == Counter(range(150))
    assert Counter(seqs("b.log")) == Counter(range(150))  # resumed at 100, not re-read from 0


# -- --dry-run -------------------------------------------------------------------------------------


def test_dry_run_shows_files_formats_and_parsed_fields_without_forwarding(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    append_lines(logs / "access.log", [access_line(n) for n in range(10)] + ["not an access line"])
    append_lines(logs / "error.log", [error_line(n) for n in range(5)])
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[inputs]]\npaths = ["{logs}/access.log"]\n\n[[inputs]]\npaths = ["{logs}/error.log"]\nformat = "error"\n'
    )
    state = tmp_path / "state"
    result = dry_run("--dry-run-lines", "2", "--config", str(config), "--state-dir", str(state))
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{logs}/access.log  ->  1 file" in out
    assert "format: auto -> combined" in out
    assert "format: error" in out
    assert f"line -2: {access_line(9)}" in out
    assert "line -1: not an access line" in out
    assert "not parsed (combined): " in out
    assert f"line -1: {error_line(4)}" in out
    assert "    http.response.status_code  200" in out
    assert "apache.message" in out and "failure 4" in out
    assert "2 files would be followed" in out
    assert not state.exists()  # no checkpoint touched

    missing = dry_run(str(tmp_path / "nothing-*.log"))
    assert missing.returncode == 1
    assert "no file matches" in missing.stdout


def test_dry_run_names_a_detected_variant_and_hints_when_nothing_is_detected(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    append_lines(
        logs / "timed_access.log", [access_line(n) + f" {n * 1000}" for n in range(3)]
    )  # combined %D
    append_lines(logs / "custom_access.log", [access_line(n) + " 0.5 x" for n in range(3)])  # nothing known
    result = dry_run("--state-dir", "none", str(logs / "*.log"))
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    sections = {part.split()[0]: part for part in result.stdout.split("\n\n") if part.startswith("/")}
    timed, custom = sections[f"{logs}/timed_access.log"], sections[f"{logs}/custom_access.log"]
    assert "format: auto -> combined+%D" in timed
    assert '"%{User-agent}i" %D' in timed and "%T (seconds)" in timed
    assert "format: auto -> none detected yet" in custom
    assert "hint: no known format matches these lines." in custom
    assert "closest: combinedio, which does not match LogFormat at field 11 (%O)." in custom
    assert "--format 'logformat:" in custom


def test_no_input_at_all_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSIDECAR_")}
    result = subprocess.run(
        [sys.executable, "-m", "logsidecar", "tail"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
        env=env,
    )
    assert result.returncode == 2
    assert "give at least one PATH_OR_GLOB" in result.stderr


pytestmark = pytest.mark.timeout(120)


def test_readyz_names_each_waiting_pattern_and_why_until_a_file_is_followed(tmp_path: Path) -> None:
    """A run that can read nothing is not ready, and says why per pattern: no match, every match
    refused, a directory it cannot list. As root a chmod 000 directory is still listable: the run
    drops the override capabilities for real (setpriv on the bounding set, inherited by the exec)."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to drop CAP_DAC_OVERRIDE")
    empty, locked, links = tmp_path / "empty", tmp_path / "locked", tmp_path / "links"
    for directory in (empty, locked, links):
        directory.mkdir()
    (links / "access.log").symlink_to("/dev/stdout")  # as the official httpd image ships it
    (locked / "access.log").write_text(access_line(1) + "\n")
    locked.chmod(0)
    port = free_port()
    caps = "-dac_override,-dac_read_search"
    process = TailProcess(
        ["--http-addr", f"127.0.0.1:{port}", "--format", "combined",
         str(empty / "*.log"), str(locked / "*.log"), str(links / "*.log")],
        state_dir=tmp_path / "state", stderr_path=tmp_path / "tail.stderr",
        command_prefix=["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"],
    ).start()  # fmt: skip
    try:

        def not_ready() -> dict[str, Any] | None:
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/readyz")
            except OSError:
                return None
            verdict = json.loads(body)
            return verdict if status == 503 and len(verdict.get("waiting", {})) == 3 else None

        verdict = wait_for(not_ready, 30, message="/readyz 503 with three waiting patterns")
        health = subprocess.run(
            [sys.executable, "-m", "logsidecar", "health", "--ready", "--url", f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30, cwd=REPO_ROOT,
        )  # fmt: skip
        (empty / "site.log").write_text(access_line(2) + "\n")
        wait_for(lambda: process.count() == 1, 30, message="the new file's line")
        ready_status, ready_body = http_get(f"http://127.0.0.1:{port}/readyz")
    finally:
        process.terminate()
        locked.chmod(0o755)
    assert verdict["waiting"] == {
        str(empty / "*.log"): "no file matches",
        str(locked / "*.log"): f"unreadable: cannot list {locked} (Permission denied)",
        str(links / "*.log"): f"refused: {links / 'access.log'} (own_output)",
    }
    reason = verdict["reasons"][0]
    assert reason.startswith("following 0 files; patterns waiting: ")
    assert all(f"{pattern} ({why})" in reason for pattern, why in verdict["waiting"].items())
    assert health.returncode == 1, health.stdout + health.stderr
    assert health.stdout.strip() == verdict["summary"] == f"not ready: {reason}"
    assert ready_status == 200, ready_body
    assert json.loads(ready_body)["waiting"] == {
        str(locked / "*.log"): f"unreadable: cannot list {locked} (Permission denied)",
        str(links / "*.log"): f"refused: {links / 'access.log'} (own_output)",
    }  # one file followed: ready, and still saying what waits
