"""`logsidecar parse`: JSON lines on stdout, summary and errors on stderr, exit codes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from logsidecar.cli import main
from logsidecar.cli.parse import iter_line_batches

ERROR_24 = (
    b"[Sat Nov 28 02:09:07.632088 2026] [core:info] [pid 12682:tid 12692] [client 127.0.0.1:43346] "
    b"AH00128: File does not exist: /tmp/errlab/htdocs/nope, referer: http://a/b"
)
COMBINED = b'127.0.0.1 - - [28/Nov/2026:02:09:06 +0000] "GET / HTTP/1.1" 200 3 "-" "curl/7.88.1"'


def run(args: list[str], stdin: bytes | None = None, tz: str = "UTC"):
    # TZ: error-log times are read in the local zone by default, this one
    return CliRunner(env={"TZ": tz}).invoke(main, ["parse", *args], input=stdin)


def records_of(output: bytes) -> list[dict]:
    return [orjson.loads(line) for line in output.splitlines()]


def test_parses_an_error_log_file_to_json_lines(tmp_path: Path):
    log = tmp_path / "error.log"
    log.write_bytes(ERROR_24 + b"\r\n" + b"garbage\n" + ERROR_24)  # CRLF, and no final newline
    result = run([str(log)])
    assert result.exit_code == 0, result.stderr
    records = records_of(result.stdout_bytes)
    assert [r["body"] for r in records] == [ERROR_24.decode(), "garbage", ERROR_24.decode()]
    assert records[0]["attributes"]["apache.error.code"] == "AH00128"
    assert records[0]["timestamp"] == "2026-11-28T02:09:07.632088+00:00"
    assert records[0]["severity_number"] == 9
    assert records[1]["attributes"]["logsidecar.parse_error"]
    assert result.stderr.startswith("logsidecar parse: 3 lines, 2 parsed, 1 unparsed (1 file, ")


def test_auto_detects_per_file(tmp_path: Path):
    error_log = tmp_path / "error.log"
    access_log = tmp_path / "access.log"
    error_log.write_bytes(ERROR_24 + b"\n")
    access_log.write_bytes(COMBINED + b"\n" + COMBINED + b"\n")
    result = run([str(error_log), str(access_log)])
    assert result.exit_code == 0
    formats = [r["attributes"]["logsidecar.format"] for r in records_of(result.stdout_bytes)]
    assert formats == ["error", "combined", "combined"]
    assert "3 lines, 3 parsed, 0 unparsed (2 files" in result.stderr


def test_reads_stdin_with_dash_and_by_default():
    for args in (["-"], []):
        result = run(["--format", "error", *args], stdin=ERROR_24 + b"\n")
        assert result.exit_code == 0
        assert [r["attributes"]["apache.module"] for r in records_of(result.stdout_bytes)] == ["core"]


def test_timezone_option_applies_to_error_log_times():
    result = run(["-f", "error", "--timezone", "America/New_York", "-"], stdin=ERROR_24 + b"\n")
    assert result.exit_code == 0
    [record] = records_of(result.stdout_bytes)
    assert record["timestamp"] == "2026-11-28T02:09:07.632088-05:00"


def test_error_log_times_are_local_by_default():
    result = run(["-f", "error", "-"], stdin=ERROR_24 + b"\n", tz="Asia/Kolkata")
    assert result.exit_code == 0
    [record] = records_of(result.stdout_bytes)
    assert record["timestamp"] == "2026-11-28T02:09:07.632088+05:30"


def test_nothing_parsed_exits_3_showing_the_first_line_why_and_the_closest_format():
    custom = COMBINED + b" 0.5 x"  # combined with two fields appended that no variant knows
    result = run([], stdin=custom + b"\n" + custom + b"\n")
    assert result.exit_code == 3, result.stderr
    assert len(records_of(result.stdout_bytes)) == 2  # every line still printed, flagged
    lines = result.stderr.splitlines()
    assert lines[0].startswith("logsidecar parse: 2 lines, 0 parsed, 2 unparsed")
    assert lines[1:] == [
        "logsidecar parse: no line parsed with --format auto",
        f"  first line: {custom.decode()}",
        "  why: no known format matched; closest: combinedio, which does not match LogFormat at field 11 (%O)",
        "  fix: give the LogFormat your server writes, --format 'logformat:<the LogFormat string of your "
        "CustomLog>' (or --format error, json, raw)",
    ]


def test_some_lines_parsed_or_no_line_at_all_exit_0():
    assert run([], stdin=COMBINED + b"\nnot a log line\n").exit_code == 0
    assert run([], stdin=b"").exit_code == 0


def test_bad_timezone_is_a_usage_error():
    result = run(["--timezone", "Mars/Olympus", "-"], stdin=b"")
    assert result.exit_code == 2
    assert "Mars/Olympus" in result.stderr


def test_invalid_format_exits_2_pointing_at_the_directive(tmp_path: Path):
    log = tmp_path / "x.log"
    log.write_bytes(ERROR_24 + b"\n")
    result = run(["--format", "errorlogformat:[%t] %Q %M", str(log)])
    assert result.exit_code == 2
    assert result.stdout_bytes == b""
    assert "unrecognized ErrorLogFormat directive %Q at position 6" in result.stderr
    assert "[%t] %Q %M\n        ^" in result.stderr


def test_unknown_format_name_exits_2():
    result = run(["--format", "nope", "-"], stdin=b"")
    assert result.exit_code == 2
    assert "unknown format 'nope'" in result.stderr


def test_missing_file_is_reported_and_the_others_still_parsed(tmp_path: Path):
    log = tmp_path / "error.log"
    log.write_bytes(ERROR_24 + b"\n")
    missing = tmp_path / "missing.log"
    result = run([str(missing), str(log), str(tmp_path)])
    assert result.exit_code == 1
    assert len(records_of(result.stdout_bytes)) == 1
    assert f"cannot read {missing}: No such file or directory" in result.stderr
    assert f"cannot read {tmp_path}: Is a directory" in result.stderr
    assert "1 lines, 1 parsed, 0 unparsed (1 file," in result.stderr


def test_empty_file_gives_no_records(tmp_path: Path):
    log = tmp_path / "error.log"
    log.write_bytes(b"")
    result = run([str(log)])
    assert result.exit_code == 0
    assert result.stdout_bytes == b""
    assert "0 lines, 0 parsed, 0 unparsed" in result.stderr


def test_batches_larger_than_batch_lines_keep_every_line_in_order(tmp_path: Path):
    log = tmp_path / "app.log"
    lines = [f'{{"n": {i}}}'.encode() for i in range(25)]
    log.write_bytes(b"\n".join(lines) + b"\n")
    result = run(["--format", "json", "--batch-lines", "4", str(log)])
    assert result.exit_code == 0
    assert [r["attributes"]["n"] for r in records_of(result.stdout_bytes)] == list(range(25))


@pytest.mark.parametrize(
    ("data", "batch_lines", "expected"),
    [
        (b"a\nb\n", 10, [[b"a", b"b"]]),
        (b"a\r\nb", 10, [[b"a"], [b"b"]]),
        (b"a\nb\nc\n", 2, [[b"a", b"b"], [b"c"]]),
        (b"\n\n", 10, [[b"", b""]]),
        (b"", 10, []),
        (b"x\r", 10, [[b"x"]]),
    ],
)
def test_line_framing(data, batch_lines, expected):
    batches = list(iter_line_batches(io.BytesIO(data), batch_lines))
    assert [lines for lines, _ in batches] == expected
    assert all(not truncated for _, truncated in batches)


def test_line_framing_across_read_chunks():
    class TinyReads(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = data

        def readable(self) -> bool:
            return True

        def read1(self, n: int = -1) -> bytes:  # 3 bytes per read: lines span chunks
            chunk, self._data = self._data[:3], self._data[3:]
            return chunk

    batches = list(iter_line_batches(TinyReads(b"alpha\nbeta\r\ngamma"), 100))  # type: ignore[arg-type]
    assert [line for batch, _ in batches for line in batch] == [b"alpha", b"beta", b"gamma"]


def test_python_dash_m_entry_point(tmp_path: Path):
    log = tmp_path / "error.log"
    log.write_bytes(ERROR_24 + b"\n" + COMBINED + b"\n")
    proc = subprocess.run(
        [sys.executable, "-m", "logsidecar", "parse", "--format", "error", str(log)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    records = records_of(proc.stdout)
    assert [r["attributes"].get("logsidecar.parse_error") is None for r in records] == [True, False]
    assert proc.stderr.decode().startswith("logsidecar parse: 2 lines, 1 parsed, 1 unparsed (1 file, ")


def test_python_dash_m_stops_quietly_when_the_reader_goes_away(tmp_path: Path):
    log = tmp_path / "error.log"
    log.write_bytes((ERROR_24 + b"\n") * 50_000)
    proc = subprocess.run(
        f"{sys.executable} -m logsidecar parse {log} | head -n 1",
        shell=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert len(proc.stdout.splitlines()) == 1
    assert b"Traceback" not in proc.stderr
