"""`logsidecar tail` imports only what its configuration uses: every module costs resident memory
for the life of the sidecar, once per Pod (benchmarks/import_memory.py measures how much).

The real command (`python -m logsidecar tail ...`, which replaces itself with the lean runtime,
`python -m logsidecar.runtime`) runs in a subprocess on a real file, into a real sink (stdout; the
OTLP witnesses of tests/integration/otlp_receiver.py), until its first record is delivered; it is
then stopped with SIGTERM, and the modules the long-lived process had loaded by its exit are compared
with what the configuration needs. A `sitecustomize` on PYTHONPATH registers the report in every
interpreter of the command; the one that replaced itself never exits, so the report is the
runtime's. The OTLP cases are the other side of the same check: they show that the probe sees grpc
when it is loaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.otlp_receiver import GrpcWitness, HttpWitness, self_signed_certificate, wait_for

REPO = Path(__file__).resolve().parents[2]
LINE = b'192.0.2.7 - - [05/Dec/2026:10:00:00 +0000] "GET /imports HTTP/1.1" 200 12 "-" "probe/1"\n'

# Imported by every interpreter of the command (a `sitecustomize` on PYTHONPATH): writes its
# sys.modules at exit, and its argv, into the file named by the environment.
PROBE = textwrap.dedent(
    """
    import atexit, os, sys
    def write_modules():
        with open(os.environ["LOGSIDECAR_TEST_MODULES_FILE"], "w") as handle:
            handle.write(" ".join(sys.orig_argv[1:4]) + "\\n" + "\\n".join(sorted(sys.modules)))
    atexit.register(write_modules)
    """
)

# Loaded only for the configurations that use them.
GRPC = ("grpc",)
OTEL_SDK = ("opentelemetry.sdk",)
DOCKER_SDK = ("docker",)
PROTOBUF = ("google.protobuf",)
HTTP_CLIENT = ("requests", "urllib3")
# requests' guess at a response's encoding, which we never ask for (sinks/otlp_connection.import_requests)
CHARACTER_DETECTORS = ("charset_normalizer", "chardet")
PROMETHEUS = ("prometheus_client",)
# What resolving the command costs, none of it needed while it runs (click, the settings model).
RESOLVING = ("pydantic", "pydantic_core", "click", "logsidecar.cli", "logsidecar.settings.model")
SSL = ("ssl", "_ssl")
OPENSSL_HASHES = ("_hashlib",)  # libcrypto, for digests Python computes itself (logsidecar.runtime)


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def run_tail(tmp_path: Path, output_args: list[str], delivered: object) -> set[str]:
    log = tmp_path / "access.log"
    log.write_bytes(LINE)
    modules_file = tmp_path / "modules.txt"
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(PROBE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(probe), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "LOGSIDECAR_TEST_MODULES_FILE": str(modules_file),
    }
    command = [
        sys.executable, "-m", "logsidecar", "tail", "--format", "combined",
        "--state-dir", str(tmp_path / "state"), "--start-at", "beginning", *output_args, str(log),
    ]  # fmt: skip
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if delivered is None:  # stdout: the record itself
            assert child.stdout is not None
            assert child.stdout.readline(), child.stderr.read().decode() if child.stderr else ""
        else:
            wait_for(delivered, 30, what="the record at the receiver")
    finally:
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr.decode()
    argv, _, modules = modules_file.read_text().partition("\n")
    assert "-m logsidecar.runtime" in argv, argv  # the long-lived process, not `tail`'s own
    return set(modules.split())


def test_tail_to_stdout_imports_no_sdk_grpc_or_docker(tmp_path: Path) -> None:
    modules = run_tail(tmp_path, ["--stdout-format", "json"], None)
    assert "logsidecar.sinks.stdout" in modules  # the probe saw the running command
    for packages in (
        GRPC,
        OTEL_SDK,
        DOCKER_SDK,
        PROTOBUF,
        HTTP_CLIENT,
        PROMETHEUS,
        RESOLVING,
        SSL,
        OPENSSL_HASHES,
    ):
        assert loaded(modules, packages) == []


def test_tail_to_otlp_grpc_loads_grpc_but_no_sdk_protobuf_or_http_client(tmp_path: Path) -> None:
    with GrpcWitness() as witness:
        modules = run_tail(
            tmp_path,
            ["--output", "otlp", "--otlp-endpoint", witness.endpoint],
            lambda: witness.record_count >= 1,
        )
    assert loaded(modules, GRPC)
    for packages in (OTEL_SDK, DOCKER_SDK, PROTOBUF, HTTP_CLIENT, PROMETHEUS, RESOLVING):
        assert loaded(modules, packages) == []


def test_tail_to_otlp_http_loads_no_grpc_or_protobuf(tmp_path: Path) -> None:
    with HttpWitness() as witness:
        modules = run_tail(
            tmp_path,
            [
                "--output",
                "otlp",
                "--otlp-protocol",
                "http/protobuf",
                "--otlp-endpoint",
                witness.url.removesuffix("/v1/logs"),
            ],
            lambda: len(witness.bodies()) >= 1,
        )
    assert loaded(modules, HTTP_CLIENT)
    for packages in (GRPC, OTEL_SDK, DOCKER_SDK, PROTOBUF, PROMETHEUS, RESOLVING, CHARACTER_DETECTORS):
        assert loaded(modules, packages) == []


def test_tail_to_otlp_over_https_loads_ssl_and_delivers(tmp_path: Path) -> None:
    """The runtime imports asyncio without ssl (`logsidecar.runtime`); an output that needs TLS still
    imports it and delivers over it."""
    cert, key = self_signed_certificate(tmp_path)
    with HttpWitness(tls=(cert, key)) as witness:
        modules = run_tail(
            tmp_path,
            [
                "--output",
                "otlp",
                "--otlp-protocol",
                "http/protobuf",
                "--otlp-endpoint",
                witness.url.removesuffix("/v1/logs"),
                "--otlp-ca-file",
                str(cert),
            ],  # fmt: skip
            lambda: len(witness.bodies()) >= 1,
        )
    assert witness.url.startswith("https://")
    assert loaded(modules, SSL)
    assert loaded(modules, RESOLVING) == []
    assert loaded(modules, CHARACTER_DETECTORS) == []


def test_tail_with_the_http_endpoint_loads_prometheus_but_not_the_settings_model(tmp_path: Path) -> None:
    modules = run_tail(tmp_path, ["--stdout-format", "json", "--http-addr", "127.0.0.1:0"], None)
    assert loaded(modules, PROMETHEUS)  # the endpoint runs ...
    assert loaded(modules, RESOLVING) == []  # ... and parses its address without pydantic
