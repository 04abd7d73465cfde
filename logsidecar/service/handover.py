"""Handing a resolved run over to the lean runtime: `logsidecar tail` validates with click and
pydantic, then replaces itself (`exec_runtime`) with `python -m logsidecar.runtime --run-fd N`, which
reads the run (`read_run`) and runs it; on SIGHUP it resolves again in a child (`resolve_again`).
The process stays the same (PID, so PID 1 in a container stays PID 1; standard streams; the parent's
signals) but without the ~15 MiB that resolving cost.

The run goes through an inherited memfd, never argv or the environment: it may hold secrets (OTLP
headers), and /proc/PID/cmdline and /proc/PID/environ are readable by others. The bytes are JSON
(`ResolvedRun.to_bytes`, `settings.run_codec`), read strictly by the declared types: anyone can start
the runtime with a descriptor of their choosing, so reading them must build values, never run code
(as a pickle would).

SIGTERM is blocked across the exec (the mask survives it) so that a stop sent meanwhile is not lost:
as PID 1, a signal with the default disposition would be ignored. The runtime unblocks it once its
handler is set.
"""

from __future__ import annotations

import os
import signal
import sys

from logsidecar import events
from logsidecar.events import Level, Started
from logsidecar.settings.errors import ConfigError
from logsidecar.settings.resolved import ResolvedRun

RUNTIME_MODULE = "logsidecar.runtime"
RESOLVER_MODULE = "logsidecar.cli.resolve"
RESOLVE_TIMEOUT_S = 60.0  # a config file on a slow mount; the running pipeline waits meanwhile
RUN_FD_OPTION = "--run-fd"
# Blocked from the exec until the runtime has its handler (see the module docstring).
HELD_SIGNALS = {signal.SIGTERM}
# A resolved run is a few KiB; a descriptor that gives more was not handed over by `tail` (`read_run`).
MAX_RUN_BYTES = 16 * 1024 * 1024


def exec_runtime(run: ResolvedRun) -> None:
    """Replace this process with the runtime running `run`. Returns only when that is impossible
    (no memfd, no interpreter to run), having said why once at debug level: the caller then runs
    `run` in this process, as before."""
    why = _replace_process(run)
    events.emit(Started(component="runtime", reason=f"running in this process: {why}", level=Level.DEBUG))


def _replace_process(run: ResolvedRun) -> str:
    if not sys.executable:
        return "no Python interpreter to start (sys.executable is empty)"
    try:
        fd = os.memfd_create("logsidecar-run", 0)  # no MFD_CLOEXEC: the runtime inherits it
    except (AttributeError, OSError) as exc:  # AttributeError: not Linux
        return f"no memfd ({exc})"
    try:
        data = memoryview(run.to_bytes())
        while data:
            data = data[os.write(fd, data) :]
        os.lseek(fd, 0, os.SEEK_SET)
        os.set_inheritable(fd, True)
        for stream in (sys.stdout, sys.stderr):  # their buffers do not survive the exec
            stream.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
        try:
            os.execv(sys.executable, python_module_command(RUNTIME_MODULE, RUN_FD_OPTION, str(fd)))
        finally:  # reached only when the exec failed
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
    except OSError as exc:
        os.close(fd)
        return f"cannot start {sys.executable}: {exc.strerror or exc}"
    return "the exec returned"  # never: execv replaces the process or raises


def python_module_command(module: str, *arguments: str) -> list[str]:
    """`python -m MODULE ARGUMENTS` running this very logsidecar. `-m` puts the working directory
    first on sys.path, so a `logsidecar` directory there (a source checkout) would be run instead of
    the installed one `tail` runs from; -P leaves it out, unless it is where this logsidecar is."""
    import logsidecar

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(logsidecar.__file__)))
    try:
        from_working_directory = package_parent == os.getcwd()
    except OSError:  # the working directory was removed
        from_working_directory = False
    return [sys.executable, *([] if from_working_directory else ["-P"]), "-m", module, *arguments]


def read_run(fd: int) -> ResolvedRun:
    """The run handed over on descriptor `fd` (closed after reading). Raises OSError, or ValueError
    naming the field for bytes that are not a run; reads at most MAX_RUN_BYTES (the descriptor may be
    anything: /dev/zero would otherwise be read until memory runs out)."""
    with open(fd, "rb") as handle:
        data = handle.read(MAX_RUN_BYTES + 1)
    if len(data) > MAX_RUN_BYTES:
        raise ValueError(f"more than {MAX_RUN_BYTES} bytes: not a run handed over by `logsidecar tail`")
    return ResolvedRun.from_bytes(data)


def resolve_again(arguments: tuple[str, ...]) -> ResolvedRun:
    """The run of the command line `logsidecar ARGUMENTS` as of now (the config file read again), resolved
    in a short-lived child (`python -m logsidecar.cli.resolve`) so that click and pydantic never load
    into the long-lived process. Raises ConfigError with the child's error lines."""
    import subprocess

    command = python_module_command(RESOLVER_MODULE, *arguments)
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=RESOLVE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError([f"cannot resolve the configuration again: {exc}"]) from None
    if done.returncode == 0:
        return ResolvedRun.from_bytes(done.stdout)
    if done.returncode == 2 and done.stdout:
        raise ConfigError(done.stdout.decode("utf-8", "replace").splitlines())
    last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
    raise ConfigError(
        [f"resolving the configuration again failed (exit status {done.returncode}): {' '.join(last)}"]
    )
