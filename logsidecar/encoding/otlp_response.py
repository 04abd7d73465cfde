"""The three small protobuf messages an OTLP collector answers with, read from their wire bytes.

- `ExportLogsServiceResponse` (opentelemetry/proto/collector/logs/v1/logs_service.proto):
  partial_success = 1 → `ExportLogsPartialSuccess` {rejected_log_records = 1 (int64), error_message = 2};
- `google.rpc.Status` (google/rpc/status.proto): code = 1 (int32), message = 2, details = 3 (skipped);
- `google.rpc.RetryInfo` (google/rpc/error_details.proto): retry_delay = 1 → `google.protobuf.Duration`
  {seconds = 1 (int64), nanos = 2 (int32)}.

Why not the generated protobuf classes: the sink writes its requests itself (`otlp_wire`), and these
answers were all protobuf was imported for; google.protobuf and the opentelemetry-proto / googleapis
modules cost ~1.5 MiB of resident memory for the life of the sidecar, once per Pod.

The reader follows the protobuf wire format (protobuf.dev/programming-guides/encoding) as the upb
parser does: fields in any order, the last occurrence of a scalar wins, repeated occurrences of a
message field merge, a known field number with another wire type is an unknown field, and unknown
fields of every wire type (groups included, nested up to `MAX_DEPTH`) are skipped. Anything that is
not a valid message (truncated, a varint longer than 10 bytes, field number 0, wire type 6 or 7, an
unmatched group end, a string that is not UTF-8) raises `ResponseDecodeError` and nothing else; every
step consumes input, so no input can make it loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

MAX_DEPTH = 100  # nesting of groups and messages, as upb's default decode depth limit

_VARINT, _FIXED64, _LEN, _START_GROUP, _END_GROUP, _FIXED32 = range(6)
_UINT64 = (1 << 64) - 1
_MAX_FIELD_NUMBER = (1 << 29) - 1


class ResponseDecodeError(ValueError):
    """The bytes are not a valid encoding of the expected message."""


@dataclass(frozen=True, slots=True)
class PartialSuccess:
    """`ExportLogsServiceResponse.partial_success`; all zero when the export was accepted in full."""

    rejected_log_records: int = 0
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class RpcStatus:
    """`google.rpc.Status` without its details."""

    code: int = 0
    message: str = ""


def export_logs_response(data: bytes) -> PartialSuccess:
    rejected, message = 0, ""
    for number, wire_type, a, b in _fields(data, 0, len(data), 0):
        if number == 1 and wire_type == _LEN:
            for inner, inner_type, c, d in _fields(data, a, b, 1):
                if inner == 1 and inner_type == _VARINT:
                    rejected = _int64(c)
                elif inner == 2 and inner_type == _LEN:
                    message = _string(data, c, d)
    return PartialSuccess(rejected, message)


def rpc_status(data: bytes) -> RpcStatus:
    code, message = 0, ""
    for number, wire_type, a, b in _fields(data, 0, len(data), 0):
        if number == 1 and wire_type == _VARINT:
            code = _int32(a)
        elif number == 2 and wire_type == _LEN:
            message = _string(data, a, b)
        elif number == 3 and wire_type == _LEN:
            # A detail (google.protobuf.Any) is not used, but is parsed as protobuf would: its
            # type_url (1) must be UTF-8, its value (2) is bytes.
            for inner, inner_type, c, d in _fields(data, a, b, 1):
                if inner == 1 and inner_type == _LEN:
                    _string(data, c, d)
    return RpcStatus(code, message)


def retry_delay_s(data: bytes) -> float:
    """`RetryInfo.retry_delay` in seconds (0.0 when absent, as protobuf's default Duration)."""
    seconds, nanos = 0, 0
    for number, wire_type, a, b in _fields(data, 0, len(data), 0):
        if number == 1 and wire_type == _LEN:
            for inner, inner_type, c, _ in _fields(data, a, b, 1):
                if inner == 1 and inner_type == _VARINT:
                    seconds = _int64(c)
                elif inner == 2 and inner_type == _VARINT:
                    nanos = _int32(c)
    return seconds + nanos / 1e9


# --- the wire format -------------------------------------------------------------------------------


def _fields(data: bytes, pos: int, end: int, depth: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, a, b) of the fields in data[pos:end]: for a varint, a is its
    unsigned 64-bit value; for a length-delimited field, data[a:b] is its content. Fields of the
    other wire types are checked and skipped, not yielded."""
    if depth > MAX_DEPTH:
        raise ResponseDecodeError("message nested too deeply")
    while pos < end:
        tag, pos = _varint(data, pos, end)
        number, wire_type = _split_tag(tag)
        if wire_type == _VARINT:
            value, pos = _varint(data, pos, end)
            yield number, wire_type, value, 0
        elif wire_type == _LEN:
            length, pos = _varint(data, pos, end)
            if length > end - pos:
                raise ResponseDecodeError("truncated length-delimited field")
            yield number, wire_type, pos, pos + length
            pos += length
        elif wire_type == _FIXED64 or wire_type == _FIXED32:
            pos += 8 if wire_type == _FIXED64 else 4
            if pos > end:
                raise ResponseDecodeError("truncated fixed-width field")
        elif wire_type == _START_GROUP:
            pos = _skip_group(data, pos, end, number, depth + 1)
        else:  # an end-group tag with no group open
            raise ResponseDecodeError("unexpected end of group")


def _skip_group(data: bytes, pos: int, end: int, number: int, depth: int) -> int:
    """The position after the end-group tag that closes group `number` opened before `pos`.
    Iterative: nested groups are a stack of field numbers, bounded by MAX_DEPTH."""
    open_groups = [number]
    while True:
        if depth + len(open_groups) - 1 > MAX_DEPTH:
            raise ResponseDecodeError("message nested too deeply")
        if pos >= end:
            raise ResponseDecodeError("truncated group")
        tag, pos = _varint(data, pos, end)
        inner, wire_type = _split_tag(tag)
        if wire_type == _VARINT:
            _, pos = _varint(data, pos, end)
        elif wire_type == _LEN:
            length, pos = _varint(data, pos, end)
            if length > end - pos:
                raise ResponseDecodeError("truncated length-delimited field")
            pos += length
        elif wire_type == _FIXED64 or wire_type == _FIXED32:
            pos += 8 if wire_type == _FIXED64 else 4
            if pos > end:
                raise ResponseDecodeError("truncated fixed-width field")
        elif wire_type == _START_GROUP:
            open_groups.append(inner)
        elif inner != open_groups.pop():
            raise ResponseDecodeError("mismatched end of group")
        elif not open_groups:
            return pos


def _split_tag(tag: int) -> tuple[int, int]:
    number, wire_type = tag >> 3, tag & 7
    if number == 0 or number > _MAX_FIELD_NUMBER:
        raise ResponseDecodeError(f"invalid field number {number}")
    if wire_type > _FIXED32:
        raise ResponseDecodeError(f"invalid wire type {wire_type}")
    return number, wire_type


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= end:
            raise ResponseDecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & _UINT64, pos
    raise ResponseDecodeError("varint longer than 10 bytes")


def _int64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def _string(data: bytes, start: int, end: int) -> str:
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError as error:
        raise ResponseDecodeError("string field is not UTF-8") from error
