"""`python -m logsidecar.runtime --run-fd N`: the long-lived process of `logsidecar tail`.

`logsidecar tail` validates everything with click and pydantic (every error message, exit 2, the
state directory check), then replaces itself with this module (`service.handover`): same PID, same
standard streams, and `ps` shows `python -m logsidecar.runtime --run-fd 3`. The resolved run comes on
the inherited descriptor N. This process imports only what the run uses: no click, no pydantic, no
settings model, no ssl unless an output or the /metrics endpoint needs it (prometheus_client cannot
be imported without it: `service.metrics_registry`). SIGHUP with --config resolves again in a
short-lived child (`python -m logsidecar.cli.resolve` with the command's own arguments), so a reload
adds nothing to this process either.

The exit statuses and messages are `logsidecar tail`'s: 0 after a graceful stop (or our stdout was
closed by its reader), 1 when an output or the tailer failed for good ("Error: stopped: ..."), 3 when
--drain-timeout passed before every line was delivered, 128 + N after a second signal N.
"""

from __future__ import annotations

import signal
import sys
from typing import Any


def _exit_on_early_sigterm(signum: int, frame: object) -> None:
    # Nothing has been read yet, so there is nothing to flush: leave at once, successfully.
    sys.exit(0)


# As in `logsidecar.cli`: handled from the first moment (PID 1 ignores a signal left at its default),
# then let through what was held across the exec (`service.handover`).
signal.signal(signal.SIGTERM, _exit_on_early_sigterm)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

STARTED_BY = "started by `logsidecar tail`, not by hand"
USAGE = f"usage: python -m logsidecar.runtime --run-fd N ({STARTED_BY})"


def import_asyncio_without_ssl() -> None:
    """asyncio imports ssl (with _ssl, ~4.6 MiB of RSS) only to offer TLS on its own streams, which
    nothing here uses: the /metrics endpoint is plain HTTP, OTLP/gRPC brings its own TLS and
    OTLP/HTTP's client imports ssl itself. (prometheus_client, for the endpoint, cannot be imported
    without ssl, so it brings ssl in: `service.metrics_registry`.) A None in sys.modules is the
    import system's documented way to make an import fail: asyncio catches the ImportError and sets
    its ssl to None. The entry is removed at once, so that a later `import ssl` (an https OTLP
    output, one added by a reload) loads it as usual."""
    if "ssl" in sys.modules or "asyncio" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        import asyncio  # noqa: F401
    finally:
        if "ssl" in sys.modules and sys.modules["ssl"] is None:
            del sys.modules["ssl"]


def import_hashlib_without_openssl() -> None:
    """hashlib's OpenSSL backend (_hashlib) maps libcrypto: ~3.4 MiB of RSS for the two digests we
    take (`stamp`: blake2b of file keys; `tail.identity`: sha256 of file fingerprints, stored in the
    checkpoints), which Python's own implementations compute bit for bit (the same standard
    algorithms). Imported the way asyncio is above; a build without those implementations (some
    FIPS builds) gets hashlib as usual, its complaint about the missing ones silenced meanwhile. An
    https output loads libcrypto through ssl anyway; hmac and ssl import _hashlib themselves."""
    if "_hashlib" in sys.modules or "hashlib" in sys.modules:
        return
    import logging  # already loaded by asyncio

    logging.disable(logging.CRITICAL)
    sys.modules["_hashlib"] = None  # type: ignore[assignment]
    try:
        import hashlib

        if not (hasattr(hashlib, "sha256") and hasattr(hashlib, "blake2b")):
            del sys.modules["hashlib"]
    finally:
        if "_hashlib" in sys.modules and sys.modules["_hashlib"] is None:
            del sys.modules["_hashlib"]
        logging.disable(logging.NOTSET)
    import hashlib  # noqa: F401, F811 - as usual, when the first import lacked a digest


def main(argv: list[str]) -> int:
    """Run the handed-over run; returns the exit status."""
    if len(argv) != 2 or argv[0] != "--run-fd" or not argv[1].isdigit():
        sys.stderr.write(USAGE + "\n")
        return 2
    import_asyncio_without_ssl()
    import_hashlib_without_openssl()
    from logsidecar import redact
    from logsidecar.service.handover import read_run
    from logsidecar.service.telemetry import SelfLog

    try:
        run = read_run(int(argv[1]))
    except (OSError, ValueError) as exc:  # not started by `tail`: bytes that are not a run
        # One line (the reason has no newline: the codec quotes what it shows of the bytes).
        sys.stderr.write(f"Error: cannot read the run on descriptor {argv[1]} ({STARTED_BY}): {exc}\n")
        return 2
    redact.remember_all(run.secrets)
    own_logs = SelfLog()
    own_logs.install(run)
    try:
        return _serve(run, own_logs)
    finally:
        own_logs.uninstall()


def _serve(run: Any, own_logs: Any) -> int:
    """Build the plan and run it; every error becomes one readable line (never a traceback)."""
    from logsidecar.parse.base import FormatError
    from logsidecar.redact import redact
    from logsidecar.service.plan import build_plan
    from logsidecar.service.supervisor import Supervisor, run_until_exit
    from logsidecar.sinks.stdout import OutputClosed, silence_stdout

    try:
        plan = build_plan(run)  # validated by `tail` already: this fails only if the world changed
    except (FormatError, ValueError) as exc:
        sys.stderr.write(f"Error: {redact(str(exc))}\n")
        return 2
    try:
        return run_until_exit(Supervisor(plan, _rebuild(run.reload_arguments), own_logs).run())
    except OutputClosed:
        silence_stdout()
        return 0
    except Exception as exc:  # noqa: BLE001 - one readable line, not a traceback
        sys.stderr.write(f"Error: {redact(f'stopped: {type(exc).__name__}: {exc}')}\n")
        return 1


def _rebuild(arguments: tuple[str, ...] | None) -> Any:
    """SIGHUP's new plan: the command line resolved again in a child, which a worker thread waits for
    (the event loop goes on), then built on the loop (`service.supervisor.Reload`). None: no config
    file."""
    if arguments is None:
        return None
    from logsidecar.service.supervisor import Reload

    def resolve() -> Any:
        from logsidecar.service.handover import resolve_again

        return resolve_again(arguments)

    def build(run: Any) -> Any:
        from logsidecar import redact
        from logsidecar.service.plan import build_plan

        redact.remember_all(run.secrets)
        return build_plan(run)

    return Reload(resolve=resolve, build=build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
