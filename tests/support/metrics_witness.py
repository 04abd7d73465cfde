"""`MetricsWitness`: an OTLP/gRPC MetricsService receiver on grpcio + opentelemetry-proto that keeps
every request (the witnesses of otlp_receiver.py accept logs only)."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from tests.support.otlp_receiver import LOOPBACK, free_port, serve_on, typed_attributes


class MetricsWitness:
    """OTLP/gRPC metrics receiver that remembers every ExportMetricsServiceRequest. It can serve TLS
    (`tls` = (certificate chain PEM, private key PEM)) and demand a header (UNAUTHENTICATED without)."""

    def __init__(
        self, *, tls: tuple[bytes, bytes] | None = None, required_header: tuple[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.tls = tls
        self.required_header = required_header
        self.rejected = 0
        self.requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    def start(self) -> MetricsWitness:
        witness = self

        class Service(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
                if witness.required_header is not None:
                    key, expected = witness.required_header
                    if dict(context.invocation_metadata()).get(key) != expected:
                        witness.rejected += 1
                        context.abort(grpc.StatusCode.UNAUTHENTICATED, f"missing or wrong {key} header")
                with witness._lock:
                    witness.requests.append(request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Service(), server)
        self._server = serve_on(server, self.port, self.tls, what="metrics witness")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def latest_points(self, service_name: str) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
        """The newest data point per (metric name, attributes) for one service.name: exports are
        cumulative, so the newest point holds the totals."""
        with self._lock:
            requests = list(self.requests)
        latest: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
        for request in requests:
            for resource_metrics in request.resource_metrics:
                resource = typed_attributes(resource_metrics.resource.attributes)
                if resource.get("service.name", (None, None))[1] != service_name:
                    continue
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        kind = metric.WhichOneof("data")
                        for point in getattr(metric, kind).data_points:
                            attributes = tuple(
                                sorted((k, v) for k, (_, v) in typed_attributes(point.attributes).items())
                            )
                            key = (metric.name, attributes)
                            if key not in latest or point.time_unix_nano >= latest[key][1].time_unix_nano:
                                latest[key] = (metric, point)
        return latest
