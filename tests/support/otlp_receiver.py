"""Real OTLP endpoints for the OTLP tests and benchmarks: a rotel collector and witness receivers.

- `RotelCollector` runs the real rotel collector binary (PyPI package `rotel`) on loopback ports; it
  receives OTLP over gRPC and HTTP and forwards to another OTLP endpoint (a witness) or, for
  throughput runs, to its blackhole exporter. It can be stopped and restarted on the same ports.
- `GrpcWitness` is an OTLP/gRPC logs receiver built on grpcio + opentelemetry-proto that stores every
  `ExportLogsServiceRequest` it receives, with its arrival time. It can demand a header (answers
  UNAUTHENTICATED, or `denial`, without it) and report partial success, which rotel never does.
- `HttpWitness` is the same over OTLP/HTTP (protobuf) on the standard library's HTTP server: it can
  demand a header (401, or `denial_status`), answer 503 with Retry-After for a number of requests,
  answer 400 (malformed) to a request holding a body that contains `malformed_marker`, and it can
  *hold* requests (`hold()`: store them but answer none until `release()`), so what a client has sent
  and not had acknowledged at a given moment is known exactly (`exports`, each with `answered`).

All of them listen on 127.0.0.1 only. `wait_for(predicate, timeout)` is the polling wait the tests use.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as ProtoLogRecord

from tests.support import helpers

LOOPBACK = "127.0.0.1"


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "") -> Any:
    """`helpers.wait_for` with this module's older signature (`what` for its message), kept for the
    many callers that import it from here; it raises `WaitTimedOut`, a TimeoutError too."""
    return helpers.wait_for(predicate, timeout=timeout, interval=interval, message=what or None)


def serve_on(
    server: grpc.Server,
    port: int,
    tls: tuple[bytes, bytes] | None,
    client_ca: bytes | None = None,
    *,
    what: str,
) -> grpc.Server:
    """Bind `server` to LOOPBACK:`port` (TLS with `tls` = (chain, key) when given; client certificates
    required when `client_ca` is), start it and return it. Raises RuntimeError when the port is taken."""
    address = f"{LOOPBACK}:{port}"
    if tls:
        chain, key = tls
        credentials = grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if bound != port:
        raise RuntimeError(f"{what} could not bind {address}")
    server.start()
    return server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def any_value_to_python(value: AnyValue) -> Any:
    """An AnyValue as (python value): keeps the OTLP type distinguishable (int vs float vs bool)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_to_python(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def typed_attributes(key_values: Any) -> dict[str, tuple[str | None, Any]]:
    """KeyValues as {key: (AnyValue kind, python value)}: asserts can check the wire type."""
    return {kv.key: (kv.value.WhichOneof("value"), any_value_to_python(kv.value)) for kv in key_values}


@dataclass(frozen=True)
class ReceivedLog:
    """One log record as the witness received it, with its enclosing resource and scope."""

    record: ProtoLogRecord
    resource: dict[str, tuple[str | None, Any]]
    scope_name: str
    scope_version: str
    received_at: float  # time.time() at arrival

    @property
    def body(self) -> str:
        return self.record.body.string_value

    @property
    def attributes(self) -> dict[str, tuple[str | None, Any]]:
        return typed_attributes(self.record.attributes)


@dataclass
class _Store:
    requests: list[tuple[float, logs_service_pb2.ExportLogsServiceRequest]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    record_count: int = 0

    def add(self, request: logs_service_pb2.ExportLogsServiceRequest) -> int:
        count = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        with self.lock:
            self.requests.append((time.time(), request))
            self.record_count += count
        return count

    def logs(self) -> list[ReceivedLog]:
        with self.lock:
            requests = list(self.requests)
        out: list[ReceivedLog] = []
        for received_at, request in requests:
            for resource_logs in request.resource_logs:
                resource = typed_attributes(resource_logs.resource.attributes)
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        out.append(
                            ReceivedLog(
                                record, resource, scope_logs.scope.name, scope_logs.scope.version, received_at
                            )
                        )
        return out

    def bodies(self) -> list[str]:
        return [log.body for log in self.logs()]

    @staticmethod
    def bodies_of(request: logs_service_pb2.ExportLogsServiceRequest) -> list[str]:
        return [
            record.body.string_value
            for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.record_count = 0


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, witness: GrpcWitness) -> None:
        self.witness = witness

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        witness = self.witness
        if witness.required_header is not None:
            key, expected = witness.required_header
            got = dict(context.invocation_metadata()).get(key)
            if got != expected:
                witness.rejected_requests += 1
                context.abort(witness.denial, f"missing or wrong {key} header")
        if witness.throttle_responses > 0:
            witness.throttle_responses -= 1
            witness.throttle_log.append(time.monotonic())
            from google.protobuf.duration_pb2 import Duration
            from google.rpc.error_details_pb2 import RetryInfo

            delay = Duration(
                seconds=int(witness.throttle_delay_s), nanos=int(witness.throttle_delay_s % 1 * 1e9)
            )
            context.set_trailing_metadata(
                (("google.rpc.retryinfo-bin", RetryInfo(retry_delay=delay).SerializeToString()),)
            )
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "witness: throttling on purpose")
        count = witness.store.add(request)
        response = logs_service_pb2.ExportLogsServiceResponse()
        if witness.partial_rejections:
            response.partial_success.rejected_log_records = min(witness.partial_rejections, count)
            response.partial_success.error_message = "witness: rejected on purpose"
        return response


class GrpcWitness:
    """OTLP/gRPC logs receiver that remembers everything. `stop()` + `start()` keeps the port."""

    def __init__(
        self,
        port: int | None = None,
        *,
        required_header: tuple[str, str] | None = None,
        partial_rejections: int = 0,
        tls: tuple[bytes, bytes] | None = None,
        client_ca: bytes | None = None,
        max_receive_bytes: int = 64 * 1024 * 1024,
        denial: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED,
    ) -> None:
        self.port = port or free_port()
        self.denial = denial  # the answer to a request without the required header
        self.client_ca = client_ca  # with tls: demand a client certificate signed by this CA (mTLS)
        self.required_header = required_header
        self.partial_rejections = partial_rejections
        self.tls = tls  # (certificate chain PEM, private key PEM): serve TLS
        self.max_receive_bytes = max_receive_bytes
        self.throttle_responses = 0  # answer RESOURCE_EXHAUSTED + RetryInfo to this many requests
        self.throttle_delay_s = 1.0
        self.throttle_log: list[float] = []
        self.rejected_requests = 0
        self.store = _Store()
        self._server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    def start(self) -> GrpcWitness:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[("grpc.max_receive_message_length", self.max_receive_bytes), ("grpc.so_reuseport", 0)],
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(self), server)
        self._server = serve_on(server, self.port, self.tls, self.client_ca, what="witness")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> GrpcWitness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def logs(self) -> list[ReceivedLog]:
        return self.store.logs()

    def bodies(self) -> list[str]:
        return self.store.bodies()

    @property
    def record_count(self) -> int:
        return self.store.record_count


@dataclass
class Export:
    """One export request as an `HttpWitness` received it: its records' bodies and `log.record.uid`s,
    the `epoch` the test had set when it arrived, and whether it was answered (held ones are not)."""

    epoch: int
    bodies: list[str]
    uids: list[str]
    answered: bool = False


class HttpWitness:
    """OTLP/HTTP (protobuf) logs receiver on http.server. Can require a header (→ 401), answer
    503 + Retry-After to the next `unavailable_responses` requests, and hold requests unanswered."""

    def __init__(
        self,
        *,
        required_header: tuple[str, str] | None = None,
        retry_after_s: float | None = None,
        tls: tuple[Path, Path] | None = None,
        denial_status: int = 401,
        malformed_marker: str | None = None,
    ) -> None:
        self.port = free_port()
        self.denial_status = denial_status  # the answer to a request without the required header
        self.malformed_marker = malformed_marker
        self.tls = tls  # (certificate PEM path, key PEM path): serve HTTPS
        self.required_header = required_header
        self.retry_after_s = retry_after_s
        self.unavailable_responses = 0
        self.status_log: list[tuple[float, int]] = []  # (time, status) of every answer
        self.store = _Store()
        self.exports: list[Export] = []  # every 200-bound request, in arrival order
        self.epoch = 0  # set by the test (e.g. which client instance is running); stamped on exports
        self._holding = False
        self._released = threading.Event()
        self._exports_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def hold(self) -> None:
        """From now on, store requests but answer none until `release()`."""
        with self._exports_lock:
            self._released.clear()
            self._holding = True

    def release(self) -> None:
        """Answer the held requests (a client that died meanwhile gets nothing) and stop holding."""
        with self._exports_lock:
            self._holding = False
            self._released.set()

    def bodies(self) -> list[str]:
        with self._exports_lock:
            return [body for export in self.exports for body in export.bodies]

    def held(self) -> list[Export]:
        with self._exports_lock:
            return [export for export in self.exports if not export.answered]

    def _note(self, request: logs_service_pb2.ExportLogsServiceRequest) -> tuple[Export, bool]:
        records = [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
        uids = [next((kv.value.string_value for kv in r.attributes if kv.key == "log.record.uid"), "")
                for r in records]  # fmt: skip
        with self._exports_lock:
            export = Export(self.epoch, [r.body.string_value for r in records], uids)
            self.exports.append(export)
            holding = self._holding
            if not holding:
                export.answered = True
        return export, holding

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}/v1/logs"

    def start(self) -> HttpWitness:
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                witness.status_log.append((time.monotonic(), status))
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - http.server name
                from google.rpc.status_pb2 import Status

                payload = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if witness.required_header is not None:
                    key, expected = witness.required_header
                    if self.headers.get(key) != expected:
                        message = Status(code=16, message=f"missing or wrong {key} header")
                        self._answer(witness.denial_status, message.SerializeToString())
                        return
                if witness.unavailable_responses > 0:
                    witness.unavailable_responses -= 1
                    headers = {}
                    if witness.retry_after_s is not None:
                        headers["Retry-After"] = str(int(witness.retry_after_s))
                    self._answer(503, Status(code=14, message="busy").SerializeToString(), headers)
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip

                    payload = gzip.decompress(payload)
                request = logs_service_pb2.ExportLogsServiceRequest.FromString(payload)
                marker = witness.malformed_marker
                if marker is not None and any(marker in body for body in _Store.bodies_of(request)):
                    message = Status(code=3, message="witness: malformed on purpose")
                    self._answer(400, message.SerializeToString())
                    return
                witness.store.add(request)
                export, held = witness._note(request)
                if held:
                    witness._released.wait()
                    export.answered = True
                try:
                    self._answer(200, logs_service_pb2.ExportLogsServiceResponse().SerializeToString())
                except OSError:
                    pass  # a held request's client died meanwhile (the point of holding it)

        self._server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        if self.tls:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HttpWitness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rotel_binary() -> Path:
    import rotel

    return Path(rotel.__file__).parent / "rotel-agent"


class RotelCollector:
    """The real rotel collector on loopback. `forward_to`: an OTLP/gRPC endpoint URL to export to,
    or None for rotel's blackhole exporter. `stop()` + `start()` reuse the same ports."""

    def __init__(
        self,
        workdir: Path,
        *,
        forward_to: str | None,
        batch_timeout: str = "20ms",
        extra_args: tuple[str, ...] = (),
        host: str = LOOPBACK,
        grpc_port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.host = host  # another loopback address (127.0.0.2 ...) lets two collectors share a port
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.forward_to = forward_to
        self.batch_timeout = batch_timeout
        self.extra_args = extra_args
        self.grpc_port = grpc_port or free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def grpc_endpoint(self) -> str:
        return f"http://{self.host}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def command(self) -> list[str]:
        args = [
            str(rotel_binary()),
            "start",
            "--otlp-grpc-endpoint",
            f"{self.host}:{self.grpc_port}",
            "--otlp-http-endpoint",
            f"{self.host}:{self.http_port}",
            "--pid-file",
            str(self.workdir / "rotel.pid"),
            "--log-file",
            str(self.workdir / "rotel.log"),
            "--logs-batch-timeout",
            self.batch_timeout,
        ]
        if self.forward_to is None:
            args += ["--exporter", "blackhole"]
        else:
            args += [
                "--exporter",
                "otlp",
                "--otlp-exporter-endpoint",
                self.forward_to,
                "--otlp-exporter-protocol",
                "grpc",
                "--otlp-exporter-retry-initial-backoff",
                "100ms",
                "--otlp-exporter-retry-max-backoff",
                "1s",
            ]
        return [*args, *self.extra_args]

    def start(self, timeout: float = 15.0) -> RotelCollector:
        log = open(self.workdir / f"rotel-stdout-{self.starts}.log", "wb")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.starts += 1
        wait_for(
            lambda: (
                port_accepts(self.grpc_port, self.host)
                and port_accepts(self.http_port, self.host)
                or self._died()
            ),
            timeout,
            what="rotel listening",
        )
        if self._died():
            raise RuntimeError(f"rotel exited with {self.process.returncode}: {self.output()[-2000:]}")
        return self

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self, *, kill: bool = False, timeout: float = 15.0) -> None:
        """SIGTERM (rotel flushes what it batched) or SIGKILL; wait until the ports are closed."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.process = None
        wait_for(lambda: not port_accepts(self.grpc_port, self.host), timeout, what="rotel port closed")

    def output(self) -> str:
        texts = []
        for path in sorted(self.workdir.glob("rotel-stdout-*.log")):
            texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)

    def __enter__(self) -> RotelCollector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def iter_records(requests: list[Any]) -> Iterator[ProtoLogRecord]:
    for request in requests:
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                yield from scope_logs.log_records


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def self_signed_certificate(directory: Path, host: str = LOOPBACK) -> tuple[Path, Path]:
    """A self-signed certificate for `host` (as IP SAN and CN) made with `cryptography`;
    returns (certificate PEM path, private key PEM path). The certificate is its own CA."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = Path(directory) / "cert.pem"
    key_path = Path(directory) / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path
