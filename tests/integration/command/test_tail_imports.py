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
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.support.otlp_receiver import GrpcWitness, HttpWitness, free_port, self_signed_certificate, wait_for

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


def probed_environment(tmp_path: Path) -> dict[str, str]:
    """The environment of a command whose every interpreter runs PROBE (see `runtime_modules`)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(PROBE)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(probe), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "LOGSIDECAR_TEST_MODULES_FILE": str(tmp_path / "modules.txt"),
    }


def runtime_modules(tmp_path: Path) -> set[str]:
    """The modules the long-lived process had loaded at its exit (the last interpreter to exit)."""
    argv, _, modules = (tmp_path / "modules.txt").read_text().partition("\n")
    assert "-m logsidecar.runtime" in argv, argv  # the long-lived process, not `tail`'s own
    return set(modules.split())


def run_tail(tmp_path: Path, output_args: list[str], delivered: object) -> set[str]:
    log = tmp_path / "access.log"
    log.write_bytes(LINE)
    env = probed_environment(tmp_path)
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
    return runtime_modules(tmp_path)


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


@pytest.mark.parametrize("endpoint", [[], ["--http-addr", "127.0.0.1:0"]], ids=["alone", "with-http-addr"])
def test_tail_to_otlp_over_https_loads_ssl_and_delivers(tmp_path: Path, endpoint: list[str]) -> None:
    """The runtime imports asyncio without ssl (`logsidecar.runtime`); an output that needs TLS still
    imports it and delivers over it, with or without the /metrics endpoint (which loads ssl too)."""
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
                *endpoint,
            ],  # fmt: skip
            lambda: len(witness.bodies()) >= 1,
        )
    assert witness.url.startswith("https://")
    assert loaded(modules, SSL)
    assert bool(loaded(modules, PROMETHEUS)) == bool(endpoint)
    assert loaded(modules, RESOLVING) == []
    assert loaded(modules, CHARACTER_DETECTORS) == []


def test_tail_with_the_http_endpoint_loads_prometheus_but_not_the_settings_model(tmp_path: Path) -> None:
    modules = run_tail(tmp_path, ["--stdout-format", "json", "--http-addr", "127.0.0.1:0"], None)
    assert loaded(modules, PROMETHEUS)  # the endpoint runs ...
    assert loaded(modules, RESOLVING) == []  # ... and parses its address without pydantic


@pytest.mark.parametrize("with_endpoint", [False, True], ids=["stdout", "stdout-with-http-addr"])
def test_a_reload_that_adds_an_https_output_imports_ssl_then_and_delivers(
    tmp_path: Path, with_endpoint: bool
) -> None:
    """A stdout run imported asyncio without ssl and (without the endpoint) has no ssl at all; a SIGHUP
    that adds an OTLP/HTTP output over https imports ssl in the running process (requests, urllib3)
    and delivers over TLS, and the endpoint, when there is one, still answers after the reload."""
    log = tmp_path / "access.log"
    log.write_bytes(LINE)
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    endpoint = ["--http-addr", f"127.0.0.1:{port}"] if with_endpoint else []
    config = tmp_path / "logsidecar.toml"
    stdout_only = f'[[inputs]]\npaths = ["{log}"]\nformat = "combined"\n\n[[outputs]]\ntype = "stdout"\nformat = "json"\n'
    config.write_text(stdout_only)
    with HttpWitness(tls=(cert, key)) as witness:
        child = subprocess.Popen(
            [sys.executable, "-m", "logsidecar", "tail", "--config", str(config), "--start-at", "beginning",
             "--state-dir", str(tmp_path / "state"), "--log-format", "json", *endpoint],
            cwd=REPO, env=probed_environment(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert child.stdout is not None and child.stderr is not None
        try:
            assert b"/imports" in child.stdout.readline(), "no record on stdout"
            # Before the reload: ssl's extension module is mapped only if the endpoint brought it.
            maps = Path(f"/proc/{child.pid}/maps").read_text()
            assert ("/_ssl." in maps) == with_endpoint
            config.write_text(
                stdout_only + f'\n[[outputs]]\ntype = "otlp"\nprotocol = "http/protobuf"\n'
                f'endpoint = "{witness.url.removesuffix("/v1/logs")}"\nca_file = "{cert}"\n'
            )
            child.send_signal(signal.SIGHUP)
            for line in child.stderr:  # the new pipeline runs once this is said
                event = orjson.loads(line)["event"] if line.startswith(b"{") else None
                assert event != "config_error", line.decode()
                if event == "config_reloaded":
                    break
            with log.open("ab") as handle:
                handle.write(LINE.replace(b"/imports", b"/after-reload"))
            wait_for(
                lambda: any("/after-reload" in body for body in witness.bodies()),
                30,
                what="the record over TLS",
            )
            if with_endpoint:
                for path in ("/metrics", "/livez", "/readyz", "/healthz"):
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
                        assert answer.status == 200, path
        finally:
            child.send_signal(signal.SIGTERM)
            _, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr.decode()
    assert witness.url.startswith("https://")
    modules = runtime_modules(tmp_path)
    assert loaded(modules, SSL)
    assert bool(loaded(modules, PROMETHEUS)) == with_endpoint
