"""encoding/otlp_response reads what the real protobuf classes write, and agrees with them on any
input: random messages encoded by protobuf (with unknown fields of every wire type mixed in, and
repeated occurrences that protobuf merges) decode to the same values; random bytes either decode to
what protobuf decodes or raise ResponseDecodeError exactly when protobuf refuses them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from logsidecar.encoding.otlp_response import (
    MAX_DEPTH,
    PartialSuccess,
    ResponseDecodeError,
    RpcStatus,
    export_logs_response,
    retry_delay_s,
    rpc_status,
)

INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


@st.composite
def unknown_field(draw: st.DrawFn, depth: int = 0, first_number: int = 4) -> bytes:
    """One field of any wire type (groups nest; a length-delimited one holds bytes or fields) with a
    number from `first_number` on: 4 and up, none of the three messages uses it; 1 and up, it may be
    a known field, of its own wire type or not, with a valid content or not."""
    number = draw(st.integers(first_number, 2**29 - 1) | st.integers(first_number, 5))
    wire_type = draw(st.sampled_from([0, 1, 2, 3, 5] if depth < 3 else [0, 1, 2, 5]))
    if wire_type == 0:
        return tag(number, 0) + varint(draw(st.integers(0, 2**64 - 1)))
    if wire_type == 1:
        return tag(number, 1) + draw(st.binary(min_size=8, max_size=8))
    if wire_type == 5:
        return tag(number, 5) + draw(st.binary(min_size=4, max_size=4))
    if wire_type == 2:
        fields = st.lists(unknown_field(depth + 1, first_number), max_size=3).map(b"".join)
        payload = draw(st.binary(max_size=20) | fields if depth < 3 else st.binary(max_size=20))
        return tag(number, 2) + varint(len(payload)) + payload
    inner = b"".join(draw(st.lists(unknown_field(depth + 1, first_number), max_size=3)))
    return tag(number, 3) + inner + tag(number, 4)


def with_unknown_fields(pieces: list[bytes], first_number: int = 4) -> st.SearchStrategy[bytes]:
    """The serialized pieces (protobuf merges their concatenation) with other fields between them."""
    fields = unknown_field(first_number=first_number)
    return st.lists(fields, min_size=len(pieces) + 1, max_size=len(pieces) + 1).map(
        lambda unknown: b"".join(u + p for u, p in zip(unknown, [*pieces, b""], strict=True))
    )


responses = st.builds(
    lambda rejected, message: ExportLogsServiceResponse(
        partial_success={"rejected_log_records": rejected, "error_message": message}
    ),
    INT64,
    st.text(max_size=30),
)
statuses = st.builds(
    lambda code, message, details: Status(code=code, message=message, details=details),
    INT32,
    st.text(max_size=30),
    st.lists(
        st.builds(
            lambda url, value: {"type_url": url, "value": value}, st.text(max_size=20), st.binary(max_size=20)
        ),
        max_size=2,
    ),
)
retry_infos = st.builds(
    lambda seconds, nanos: RetryInfo(retry_delay={"seconds": seconds, "nanos": nanos}), INT64, INT32
)


def theirs_response(data: bytes) -> Any:
    partial = ExportLogsServiceResponse.FromString(data).partial_success
    return PartialSuccess(partial.rejected_log_records, partial.error_message)


def theirs_status(data: bytes) -> Any:
    status = Status.FromString(data)
    return RpcStatus(status.code, status.message)


def theirs_retry(data: bytes) -> Any:
    delay = RetryInfo.FromString(data).retry_delay
    return delay.seconds + delay.nanos / 1e9


READERS: dict[str, tuple[Callable[[bytes], Any], Callable[[bytes], Any]]] = {
    "response": (export_logs_response, theirs_response),
    "status": (rpc_status, theirs_status),
    "retry_info": (retry_delay_s, theirs_retry),
}
MESSAGES = {"response": responses, "status": statuses, "retry_info": retry_infos}


@pytest.mark.parametrize("kind", READERS)
@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_messages_written_by_protobuf_read_the_same(kind: str, data: st.DataObject) -> None:
    ours, theirs = READERS[kind]
    messages = data.draw(st.lists(MESSAGES[kind], min_size=1, max_size=3))
    wire = data.draw(with_unknown_fields([m.SerializeToString() for m in messages]))
    assert ours(wire) == theirs(wire)


@pytest.mark.parametrize("kind", READERS)
@given(wire=st.binary(max_size=64))
@settings(max_examples=1500, deadline=None)
def test_random_bytes_agree_with_protobuf_or_raise_our_error(kind: str, wire: bytes) -> None:
    ours, theirs = READERS[kind]
    try:
        expected = theirs(wire)
    except DecodeError:
        with pytest.raises(ResponseDecodeError):
            ours(wire)
    else:
        assert ours(wire) == expected


@pytest.mark.parametrize("kind", READERS)
@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_mutated_messages_agree_with_protobuf_or_raise_our_error(kind: str, data: st.DataObject) -> None:
    """Near-valid input (a real message among fields that may reuse its field numbers with other
    wire types, then maybe cut short or with one byte changed) finds the edge cases random bytes
    rarely reach."""
    ours, theirs = READERS[kind]
    message = data.draw(MESSAGES[kind]).SerializeToString()
    wire = bytearray(data.draw(with_unknown_fields([message], first_number=1)))
    change = data.draw(st.sampled_from(["none", "byte", "cut"]))
    if wire and change == "byte":
        wire[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
    elif change == "cut":
        del wire[data.draw(st.integers(0, len(wire))) :]
    try:
        expected = theirs(bytes(wire))
    except DecodeError:
        with pytest.raises(ResponseDecodeError):
            ours(bytes(wire))
    else:
        assert ours(bytes(wire)) == expected


def test_hostile_nesting_is_our_error_not_a_recursion_error() -> None:
    deep = tag(9, 3) * 100_000 + tag(9, 4) * 100_000
    for ours, _ in READERS.values():
        with pytest.raises(ResponseDecodeError, match="nested too deeply"):
            ours(deep)
    shallow = tag(9, 3) * (MAX_DEPTH // 2) + tag(9, 4) * (MAX_DEPTH // 2)
    assert export_logs_response(shallow) == theirs_response(shallow) == PartialSuccess()


def test_the_fields_read_are_the_ones_that_matter() -> None:
    response = ExportLogsServiceResponse(
        partial_success={"rejected_log_records": 3, "error_message": "bad ts"}
    )
    assert export_logs_response(response.SerializeToString()) == PartialSuccess(3, "bad ts")
    assert export_logs_response(b"") == PartialSuccess()
    assert rpc_status(Status(code=3, message="invalid").SerializeToString()) == RpcStatus(3, "invalid")
    info = RetryInfo(retry_delay={"seconds": 2, "nanos": 500_000_000})
    assert retry_delay_s(info.SerializeToString()) == 2.5
