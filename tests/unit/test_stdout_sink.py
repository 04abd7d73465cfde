"""StdoutSink: json/raw/pretty encodings, delivery = written and flushed, order kept across concurrent
sends, a closed pipe raises OutputClosed, auto picks pretty only on a terminal."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from logsidecar.record import LogRecord, Severity, encode_json_lines
from logsidecar.sinks.stdout import (
    PIPE_BYTES,
    OutputClosed,
    StdoutFormat,
    StdoutSink,
    format_pretty_line,
    grow_pipe,
    resolve_format,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def access_record(status: int = 200, body: str = "GET line") -> LogRecord:
    return LogRecord(
        body=body,
        timestamp=datetime(2026, 11, 28, 2, 30, 5, 123456, tzinfo=UTC),
        attributes={
            "http.request.method": "GET",
            "url.path": "/index.html",
            "url.query": "a=1",
            "http.response.status_code": status,
            "client.address": "192.0.2.7",
            "http.response.body.size": 5120,
            "http.server.request.duration": 0.0123,
            "log.file.path": "/var/log/apache2/access.log",
        },
        resource={"service.name": "apache-httpd"},
    )


def error_record() -> LogRecord:
    return LogRecord(
        body="[Sat Nov 28 02:30:05.1 2026] [core:error] [pid 1] AH00126: Invalid URI in request",
        timestamp=datetime(2026, 11, 28, 2, 30, 5, 100000, tzinfo=UTC),
        severity_text="error",
        severity_number=Severity.ERROR,
        attributes={
            "apache.module": "core",
            "apache.error.code": "AH00126",
            "apache.message": "Invalid URI in request",
        },
    )


async def send_all(sink: StdoutSink, batches: list[list[LogRecord]]) -> None:
    await sink.start()
    try:
        for records in batches:
            await sink.send(records)
    finally:
        await sink.close()


def test_json_output_is_one_json_line_per_record_and_written_when_send_returns(tmp_path: Path) -> None:
    out = tmp_path / "out"
    records = [access_record(200, "one"), access_record(404, "two")]

    async def scenario() -> bytes:
        with out.open("wb") as stream:
            sink = StdoutSink(StdoutFormat.JSON, stream)
            await sink.start()
            await sink.send(records)
            written = out.read_bytes()  # delivered means flushed: visible to another reader now
            await sink.close()
            return written

    written = asyncio.run(scenario())
    assert written == encode_json_lines(records)
    assert [orjson.loads(line)["body"] for line in written.splitlines()] == ["one", "two"]


def test_concurrent_sends_are_written_in_call_order(tmp_path: Path) -> None:
    out = tmp_path / "out"

    async def scenario() -> None:
        with out.open("wb") as stream:
            sink = StdoutSink(StdoutFormat.RAW, stream)
            await sink.start()
            await asyncio.gather(
                *(sink.send([LogRecord(body=f"{i}-{j}") for j in range(3)]) for i in range(100))
            )
            await sink.close()

    asyncio.run(scenario())
    assert out.read_text().splitlines() == [f"{i}-{j}" for i in range(100) for j in range(3)]


def test_raw_output_is_the_bodies(tmp_path: Path) -> None:
    out = tmp_path / "out"

    async def scenario() -> None:
        with out.open("wb") as stream:
            await send_all(
                StdoutSink(StdoutFormat.RAW, stream), [[LogRecord(body="a b"), LogRecord(body="\\xff")]]
            )

    asyncio.run(scenario())
    assert out.read_bytes() == b"a b\n\\xff\n"


def test_pretty_access_line_shows_time_status_method_target_client_and_size() -> None:
    line = format_pretty_line(access_record(503), colour=False)
    assert re.fullmatch(r"02:30:05\.123 503 GET +/index\.html\?a=1 +192\.0\.2\.7 +5120 +12\.3ms", line), line


def test_pretty_colours_status_by_class() -> None:
    assert "\x1b[1;31m503" in format_pretty_line(access_record(503))
    assert "\x1b[32m200" in format_pretty_line(access_record(200))
    assert "\x1b[33m404" in format_pretty_line(access_record(404))


def test_pretty_error_line_shows_level_module_and_message() -> None:
    line = format_pretty_line(error_record())
    assert "\x1b[1;31m" in line  # error severity in red
    assert ANSI.sub("", line) == "02:30:05.100 error   [core] AH00126: Invalid URI in request"


def test_pretty_line_of_an_unparsed_record_shows_the_body_and_the_reason() -> None:
    record = LogRecord(body="garbage", attributes={"logsidecar.parse_error": "no match"})
    assert format_pretty_line(record, colour=False) == "--:--:--.--- -       garbage (unparsed: no match)"


def test_closed_pipe_raises_output_closed() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)

    async def scenario() -> None:
        with os.fdopen(write_fd, "wb") as stream:
            sink = StdoutSink(StdoutFormat.JSON, stream)
            await sink.start()
            with pytest.raises(OutputClosed):
                await sink.send([access_record()])
            with pytest.raises(OutputClosed):  # and stays closed
                await sink.send([access_record()])
            await sink.close()

    try:
        asyncio.run(scenario())
    except BrokenPipeError:  # closing the stream flushes nothing new; tolerate the platform's report
        pass


def test_auto_format_is_pretty_on_a_terminal_and_json_on_a_pipe() -> None:
    leader, follower = os.openpty()
    read_fd, write_fd = os.pipe()
    try:
        with os.fdopen(os.dup(follower), "wb") as tty, os.fdopen(os.dup(write_fd), "wb") as pipe:
            assert resolve_format(StdoutFormat.AUTO, tty) is StdoutFormat.PRETTY
            assert resolve_format(StdoutFormat.AUTO, pipe) is StdoutFormat.JSON
            assert resolve_format(StdoutFormat.RAW, tty) is StdoutFormat.RAW
    finally:
        for fd in (leader, follower, read_fd, write_fd):
            os.close(fd)


def test_write_to_a_pipe_with_room_is_in_the_pipe_when_send_returns() -> None:
    read_fd, write_fd = os.pipe()
    payload = [LogRecord(body=f"line {i}") for i in range(100)]

    async def scenario() -> bytes:
        with os.fdopen(write_fd, "wb") as stream:
            sink = StdoutSink(StdoutFormat.RAW, stream)
            await sink.start()
            await sink.send(payload)
            os.set_blocking(read_fd, False)
            written = os.read(read_fd, 1 << 20)
            await sink.close()
            return written

    try:
        assert asyncio.run(scenario()) == b"".join(f"line {i}\n".encode() for i in range(100))
    finally:
        os.close(read_fd)


def test_write_to_a_full_pipe_does_not_block_the_event_loop_and_keeps_order() -> None:
    read_fd, write_fd = os.pipe()

    async def scenario() -> tuple[bool, bytes, int]:
        with os.fdopen(write_fd, "wb") as stream:
            sink = StdoutSink(StdoutFormat.RAW, stream)
            await sink.start()  # (grows the pipe)
            capacity = fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ)
            big = [LogRecord(body="x" * 999) for _ in range(capacity // 1000 + 8)]  # more than the pipe holds
            first = asyncio.create_task(sink.send(big))
            second = asyncio.create_task(sink.send([LogRecord(body="after")]))
            ticks = 0
            for _ in range(20):  # the loop keeps running while nobody reads our stdout
                await asyncio.sleep(0.005)
                ticks += 1
            blocked = not first.done() and ticks == 20
            received = bytearray()

            def drain() -> None:
                while not received.endswith(b"after\n"):
                    received.extend(os.read(read_fd, 1 << 16))

            await asyncio.gather(asyncio.to_thread(drain), first, second)
            await sink.close()
            return blocked, bytes(received), len(big)

    try:
        blocked, received, records = asyncio.run(scenario())
    finally:
        os.close(read_fd)
    assert blocked
    assert received == (b"x" * 999 + b"\n") * records + b"after\n"


def test_a_pipe_on_stdout_is_grown_so_that_a_batch_goes_in_few_writes() -> None:
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)  # the smallest: whatever the system default is
    allowed = int(Path("/proc/sys/fs/pipe-max-size").read_text())

    async def scenario() -> int:
        with os.fdopen(write_fd, "wb") as stream:
            sink = StdoutSink(StdoutFormat.RAW, stream)
            await sink.start()
            grown = fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ)
            await sink.close()
            return grown

    try:
        assert asyncio.run(scenario()) == min(PIPE_BYTES, allowed)
    finally:
        os.close(read_fd)


def test_grow_pipe_never_shrinks_and_says_what_it_has() -> None:
    read_fd, write_fd = os.pipe()
    try:
        before = fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ)
        assert grow_pipe(write_fd, 4096) == before  # asked for less: left as it was
        assert fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ) == before
    finally:
        os.close(read_fd)
        os.close(write_fd)
