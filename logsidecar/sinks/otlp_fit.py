"""How big one OTLP export request may be, and how a single record too big for it is made to fit.

Caps (`--otlp-max-request-bytes`, on the serialized, uncompressed ExportLogsServiceRequest, which is
what a receiver's limit applies to):
- gRPC: 4 MiB, the default receive limit of grpc servers (grpc-go, grpc-core, tonic; rotel and the
  OpenTelemetry Collector keep it). A bigger request is answered RESOURCE_EXHAUSTED or OUT_OF_RANGE.
- HTTP: 20 MiB: the OTLP/HTTP specification says clients SHOULD keep requests below it.

A batch whose request would exceed the cap is split before sending (see `OtlpSink`). A single record
whose request alone exceeds it is truncated to fit, not sent whole and not dropped: its string values
(body and attributes) are cut to a common length, on UTF-8 character boundaries, as little as needed,
and it is flagged `logsidecar.truncated: true`, as lines cut at `--max-line-bytes` are. Why truncate
rather than send it alone: sent alone it would exceed the receiver's limit anyway and be refused,
which loses the whole line; the head of a line is what identifies it (time, client, request).
"""

from __future__ import annotations

from dataclasses import dataclass

from logsidecar.record import TRUNCATED

DEFAULT_GRPC_MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEFAULT_HTTP_MAX_REQUEST_BYTES = 20 * 1024 * 1024
# A collector that refuses a record even truncated to this is broken, not strict: the record is
# then reported as rejected rather than cut to nothing.
SMALLEST_TRUNCATION_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Truncated:
    """A one-record request cut to fit: the new request and what the record was."""

    request: bytes
    original_bytes: int
    path: str  # the record's log.file.path, "" when it has none
    uid: str  # the record's log.record.uid, "" when it has none


def truncate_single_record(request: bytes, limit: int) -> Truncated | None:
    """The serialized one-record ExportLogsServiceRequest `request`, with its record's strings cut
    so the request is at most `limit` bytes and the record flagged truncated. None when it cannot
    fit (not one record, or too big without any string content)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    message = ExportLogsServiceRequest.FromString(request)
    records = [r for rl in message.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    if len(records) != 1:
        return None
    record = records[0]
    attributes = {kv.key: kv.value for kv in record.attributes}
    path = attributes["log.file.path"].string_value if "log.file.path" in attributes else ""
    uid = attributes["log.record.uid"].string_value if "log.record.uid" in attributes else ""
    flag = attributes.get(TRUNCATED)
    if flag is None:
        flag = record.attributes.add(key=TRUNCATED).value
    flag.bool_value = True
    texts = [
        (value, value.string_value.encode())
        for value in (record.body, *(kv.value for kv in record.attributes))
        if value.WhichOneof("value") == "string_value"
    ]
    if not texts:
        return None

    def cut_to(length: int) -> int:
        for value, encoded in texts:
            value.string_value = encoded[:length].decode("utf-8", "ignore")
        return message.ByteSize()

    # The longest common length that fits: every string longer than it is cut, shorter ones kept.
    low, high = 0, max(len(encoded) for _, encoded in texts)
    if cut_to(low) > limit:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if cut_to(middle) <= limit:
            low = middle
        else:
            high = middle - 1
    cut_to(low)
    return Truncated(message.SerializeToString(), len(request), path, uid)
