#!/usr/bin/env python3
"""otlp-witness: a minimal OTLP/HTTP logs receiver that remembers what it received.

Responsibility: accept `POST /v1/logs` (OTLP protobuf or JSON, optionally gzip-encoded), flatten each
log record with its resource and scope into one JSON object, append it to WITNESS_FILE (default
/data/records.jsonl) and keep it in memory; `GET /records` returns all of them as JSON lines and
`GET /healthz` answers 200. It stands behind the demo's real collector (rotel), which forwards to it.

Invariants: a request is acknowledged (200) only after all its records are appended and flushed, so the
collector retries anything not acknowledged; records are stored in arrival order. Standard library plus
opentelemetry-proto only.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def any_value_to_python(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_to_python(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def flatten(request: ExportLogsServiceRequest) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for resource_logs in request.resource_logs:
        resource = {kv.key: any_value_to_python(kv.value) for kv in resource_logs.resource.attributes}
        for scope_logs in resource_logs.scope_logs:
            for log in scope_logs.log_records:
                records.append(
                    {
                        "resource": resource,
                        "scope": scope_logs.scope.name,
                        "time_unix_nano": log.time_unix_nano,
                        "observed_time_unix_nano": log.observed_time_unix_nano,
                        "severity_number": log.severity_number,
                        "severity_text": log.severity_text,
                        "body": any_value_to_python(log.body),
                        "attributes": {kv.key: any_value_to_python(kv.value) for kv in log.attributes},
                    }
                )
    return records


class Store:
    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 (lives as long as the process)

    def append(self, records: list[dict[str, Any]]) -> None:
        lines = [json.dumps(r, sort_keys=True) for r in records]
        with self._lock:
            self._lines.extend(lines)
            if self._file is not None:
                self._file.write("".join(line + "\n" for line in lines))
                self._file.flush()

    def dump(self) -> str:
        with self._lock:
            return "".join(line + "\n" for line in self._lines)

    def __len__(self) -> int:
        with self._lock:
            return len(self._lines)


STORE = Store(os.environ.get("WITNESS_FILE", "/data/records.jsonl"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/records":
            self._reply(200, STORE.dump().encode(), "application/x-ndjson")
        elif self.path == "/healthz":
            self._reply(200, f"{len(STORE)}\n".encode(), "text/plain")
        else:
            self._reply(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/logs":
            self._reply(404, b"", "text/plain")
            return
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        request = ExportLogsServiceRequest()
        is_json = self.headers.get("Content-Type", "").startswith("application/json")
        try:
            if is_json:
                json_format.Parse(body, request)
            else:
                request.ParseFromString(body)
        except Exception as exc:  # a malformed request is the sender's bug: say so, keep serving
            self._reply(400, str(exc).encode(), "text/plain")
            return
        records = flatten(request)
        STORE.append(records)
        print(f"otlp-witness: received {len(records)} log records (total {len(STORE)})", flush=True)
        response = ExportLogsServiceResponse()
        if is_json:
            self._reply(200, json_format.MessageToJson(response).encode(), "application/json")
        else:
            self._reply(200, response.SerializeToString(), "application/x-protobuf")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        pass  # one summary line per export is printed instead of an access log


def main() -> None:
    port = int(os.environ.get("WITNESS_PORT", "4318"))
    server = ThreadingHTTPServer((os.environ.get("WITNESS_HOST", "0.0.0.0"), port), Handler)
    print(f"otlp-witness: listening on :{port}", file=sys.stderr, flush=True)
    # As PID 1 a process gets no default SIGTERM action: exit on it explicitly so `docker stop` is quick.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
