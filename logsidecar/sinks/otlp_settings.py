"""What the OTLP sink (and the metrics exporter) is given: endpoint, protocol, TLS, headers, batching
and retry limits, already resolved from flags, environment and the configuration file by the caller.
A value, no behaviour: the transports and the sink read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DEFAULT_SERVICE_NAME = "apache-httpd"


# gRPC name syntax (grpc/doc/naming.md), given to grpc as is: `dns:[//dns-server/]host[:port]`
# resolves to every address of the name (one per Pod of a headless Service); `ipv4:`/`ipv6:` list
# addresses (`ipv4:10.0.0.1:4317,10.0.0.2:4317`).
GRPC_NAME_SCHEMES = ("dns:", "ipv4:", "ipv6:")


def is_grpc_name(endpoint: str) -> bool:
    """Whether a gRPC endpoint is in gRPC name syntax (`dns:///gateway:4317`, `ipv4:...`)."""
    return endpoint.strip().lower().startswith(GRPC_NAME_SCHEMES)


class OtlpProtocol(StrEnum):
    GRPC = "grpc"
    HTTP_PROTOBUF = "http/protobuf"


class LoadBalancing(StrEnum):
    """How a gRPC channel spreads exports over the addresses its target resolves to."""

    ROUND_ROBIN = "round_robin"  # every connected address in turn (a fleet toward a gateway)
    PICK_FIRST = "pick_first"  # grpc's default: the first address that connects, only


class Compression(StrEnum):
    GZIP = "gzip"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    """Everything the OTLP sink needs, already resolved (flags > env > defaults; see cli.otlp_options)."""

    endpoint: str  # gRPC: [scheme://]host:port or dns:///host:port; HTTP: the full URL of the logs path
    protocol: OtlpProtocol = OtlpProtocol.GRPC
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # secrets: never shown
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    insecure: bool = False  # gRPC only, endpoints without a scheme
    load_balancing: LoadBalancing = LoadBalancing.ROUND_ROBIN  # gRPC only
    compression: Compression = Compression.NONE
    timeout_s: float = 10.0  # deadline of one export attempt
    batch_size: int = 2048  # most records per export request
    batch_timeout_s: float = 0.2  # for the pipeline: how long lines may wait to fill a batch
    max_concurrent_sends: int = 4  # for the pipeline: export requests in flight at once
    max_retry_time_s: float | None = None  # None: retry for as long as it takes
    max_request_bytes: int | None = None  # None: the protocol's default (see otlp_fit)
    resource: dict[str, Any] = field(default_factory=lambda: {"service.name": DEFAULT_SERVICE_NAME})
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
