"""A real Apache httpd for tests: Debian's `apache2` binary run as our own foreground instance.

`ApacheServer` writes a minimal httpd.conf (modules loaded from /usr/lib/apache2/modules), picks a
free loopback port, listens on 127.0.0.1 and, when the host has it, on [::1], and writes the
CustomLogs and the ErrorLog the test asks for. It never touches the system instance (no systemctl,
no /etc/apache2): everything lives in a private runtime directory plus the log paths given.

Invariants and why:
- Started with `-DFOREGROUND` (the normal multi-process MPM, not the `-X` debug mode) so graceful
  restarts behave exactly as in production; the parent is our child process, in its own process
  group, so `stop()` can always reap it.
- Ready means "`AH00489 ... resuming normal operations` was written to the error log since we
  started (or signalled) it": Apache writes that notice (notices are logged whatever the
  LogLevel) after it has bound its listeners and (re)opened every log file. The same check tells that a graceful restart has
  reopened the logs, so rotation tests can rely on `graceful()` returning only then. No probe
  connections are made: they would add lines to the error log at trace levels.
- Run as root, the workers switch to `User`/`Group` (www-data); log files are opened by the root
  parent, so they may live anywhere (pytest's 0700 tmp dirs included), but the document root is
  read by the workers, so it lives in a world-readable temp dir of its own.
- The environment variables Debian's scripts define (APACHE_RUN_DIR, APACHE_LOCK_DIR ...) point at
  the runtime directory, so nothing reaches for /var/run/apache2.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.support.helpers import wait_for

APACHE_BINARY_CANDIDATES = ("/usr/sbin/apache2", "/usr/sbin/httpd")
MODULES_DIR = Path("/usr/lib/apache2/modules")

# (module identifier, shared object). Each is loaded only if it is not compiled in (Debian builds
# log_config, logio and unixd into the binary) and the .so exists.
BASE_MODULES: tuple[tuple[str, str], ...] = (
    ("authz_core_module", "mod_authz_core.so"),
    ("log_config_module", "mod_log_config.so"),
    ("logio_module", "mod_logio.so"),
    ("unixd_module", "mod_unixd.so"),
    ("mime_module", "mod_mime.so"),
    ("dir_module", "mod_dir.so"),
    ("setenvif_module", "mod_setenvif.so"),
    ("reqtimeout_module", "mod_reqtimeout.so"),
)

# Upstream httpd.conf / mod_log_config nicknames, plus Debian's vhost_combined. A CustomLog whose
# format has no '%' is taken by Apache as one of these nicknames.
PRESET_LOGFORMATS: dict[str, str] = {
    "common": '%h %l %u %t "%r" %>s %b',
    "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"',
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    "combinedio": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %I %O',
    "referer": "%{Referer}i -> %U",
    "agent": "%{User-agent}i",
}

READY_MARKER = b"resuming normal operations"
SERVER_NAME = "localhost"


class ApacheError(RuntimeError):
    """Apache did not start, restart or stop as asked; the message carries its own words."""


@dataclass(frozen=True, slots=True)
class CustomLog:
    """One `CustomLog path "format"` line. `format` is the LogFormat as Apache sees it after
    config parsing (write `"%r"`, not `\\"%r\\"`), or a preset nickname ("combined")."""

    path: Path
    format: str


def find_apache_binary() -> str | None:
    """Debian's apache2 binary, or None when it is not installed."""
    for candidate in (shutil.which("apache2"), *APACHE_BINARY_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def ipv6_loopback_available() -> bool:
    """Whether [::1] can be bound here (containers often run without IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with closing(socket.socket(socket.AF_INET6, socket.SOCK_STREAM)) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(ipv6: bool) -> int:
    """A port free on 127.0.0.1 (and on ::1 when `ipv6`). Apache binds it a moment later, so a
    race is possible; `start()` retries with another port if Apache cannot bind."""
    for _ in range(50):
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as v4:
            v4.bind(("127.0.0.1", 0))
            port = v4.getsockname()[1]
            if not ipv6:
                return int(port)
            try:
                with closing(socket.socket(socket.AF_INET6, socket.SOCK_STREAM)) as v6:
                    v6.bind(("::1", port))
                return int(port)
            except OSError:
                continue
    raise ApacheError("no loopback port free on both 127.0.0.1 and ::1")


def quote_directive_argument(value: str) -> str:
    """Quote a value for httpd.conf: backslashes and double quotes are escaped, so the directive
    receives exactly `value`."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _run_user() -> tuple[str, str] | None:
    """The User/Group for workers when we run as root (Apache refuses to serve as root)."""
    if os.geteuid() != 0:
        return None
    for name in ("www-data", "daemon", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, grp.getgrgid(entry.pw_gid).gr_name
    raise ApacheError("running as root but no unprivileged user (www-data, daemon, nobody) exists")


@dataclass(frozen=True, slots=True)
class LogMark:
    """Where a file ended at one moment: (device, inode) and size; None when it did not exist."""

    identity: tuple[int, int] | None
    size: int

    @classmethod
    def of(cls, path: Path) -> LogMark:
        try:
            status = path.stat()
        except FileNotFoundError:
            return cls(None, 0)
        return cls((status.st_dev, status.st_ino), status.st_size)

    def written_since(self, path: Path, needle: bytes) -> bool:
        """Whether `needle` was written to `path` after this mark: only the new bytes are read
        (the error log can be large at trace levels), all of them if the file was replaced or
        truncated since."""
        now = LogMark.of(path)
        if now.identity is None:
            return False
        start = self.size if now.identity == self.identity and now.size >= self.size else 0
        try:
            with open(path, "rb") as file:
                file.seek(start)
                return needle in file.read()
        except FileNotFoundError:
            return False


class ApacheServer:
    """One Apache instance. Use as a context manager or call start()/stop().

    `custom_logs`: CustomLog entries (CustomLog objects or (path, format) pairs).
    `error_log`: the ErrorLog path (default: <tmp_path>/error.log); `log_level`: LogLevel argument
    ("warn", "trace8", "info ssl:warn" ...).
    `request_read_timeout`: arguments of RequestReadTimeout (e.g. "header=1 body=1") to make
    Apache give up on slow requests quickly (408 with a `-` request line).
    `extra_modules`: more (identifier, .so) pairs, e.g. ("unique_id_module", "mod_unique_id.so").
    `extra_config`: raw httpd.conf text appended at the end (MPM tuning, Header lines ...).
    `documents`: files to create under the document root (relative path → content).
    `timezone`: the TZ Apache runs in (its logs carry local time), UTC by default; None inherits.
    """

    def __init__(
        self,
        tmp_path: Path,
        custom_logs: Sequence[CustomLog | tuple[Path | str, str]] = (),
        error_log: Path | str | None = None,
        log_level: str = "warn",
        request_read_timeout: str | None = None,
        extra_modules: Sequence[tuple[str, str]] = (),
        extra_config: str = "",
        documents: dict[str, bytes | str] | None = None,
        ipv6: bool | None = None,
        timezone: str | None = "UTC",
        mpm: str = "event",
        start_timeout_s: float = 10.0,
    ) -> None:
        binary = find_apache_binary()
        if binary is None:
            raise ApacheError("the apache2 binary is not installed")
        self.binary = binary
        self.tmp_path = Path(tmp_path)
        self.custom_logs = [
            entry if isinstance(entry, CustomLog) else CustomLog(Path(entry[0]), entry[1])
            for entry in custom_logs
        ]
        self.error_log = Path(error_log) if error_log is not None else self.tmp_path / "error.log"
        self.log_level = log_level
        self.request_read_timeout = request_read_timeout
        self.extra_modules = tuple(extra_modules)
        self.extra_config = extra_config
        self.documents: dict[str, bytes | str] = {"index.html": "hello from apache\n"}
        self.documents.update(documents or {})
        self.ipv6 = ipv6_loopback_available() if ipv6 is None else ipv6
        self.timezone = timezone
        self.mpm = mpm
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.runtime_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.config_text = ""

    # -- paths and addresses -------------------------------------------------------------------

    @property
    def docroot(self) -> Path:
        assert self.runtime_dir is not None, "start() first"
        return self.runtime_dir / "htdocs"

    @property
    def config_path(self) -> Path:
        assert self.runtime_dir is not None, "start() first"
        return self.runtime_dir / "httpd.conf"

    @property
    def pid(self) -> int:
        assert self.process is not None, "start() first"
        return self.process.pid

    def host(self, family: str = "ipv4") -> str:
        """The loopback address for `family` ("ipv4" or "ipv6")."""
        if family == "ipv4":
            return "127.0.0.1"
        if family == "ipv6":
            if not self.ipv6:
                raise ApacheError("IPv6 loopback is not available on this host")
            return "::1"
        raise ValueError(f"family must be 'ipv4' or 'ipv6', not {family!r}")

    def url(self, path: str = "/", family: str = "ipv4") -> str:
        """An http:// URL for `path` (which should start with '/')."""
        host = self.host(family)
        netloc = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        return f"http://{netloc}{path}"

    # -- configuration -------------------------------------------------------------------------

    def _module_lines(self) -> list[str]:
        mpm_so = f"mod_mpm_{self.mpm}.so"
        modules: list[tuple[str, str]] = [
            (f"mpm_{self.mpm}_module", mpm_so),
            *BASE_MODULES,
            *self.extra_modules,
        ]
        lines = []
        for identifier, shared_object in modules:
            so_path = MODULES_DIR / shared_object
            if not so_path.exists():
                # Compiled in (log_config on Debian) or not shipped; IfModule covers the first.
                continue
            lines += [
                f"<IfModule !{identifier}>",
                f"  LoadModule {identifier} {so_path}",
                "</IfModule>",
            ]
        return lines

    def render_config(self) -> str:
        """The httpd.conf text for the current settings (port and runtime dir must be set)."""
        assert self.runtime_dir is not None
        run = self.runtime_dir
        lines = [
            "# Generated by tests/support/apache.py",
            f"ServerRoot {quote_directive_argument(str(run))}",
            # With the port, %p and self-referencing URLs name the port we really listen on.
            f"ServerName {SERVER_NAME}:{self.port}",
            f"DefaultRuntimeDir {quote_directive_argument(str(run))}",
            f"PidFile {quote_directive_argument(str(run / 'httpd.pid'))}",
            *self._module_lines(),
        ]
        user = _run_user()
        if user is not None:
            lines += [f"User {user[0]}", f"Group {user[1]}"]
        lines.append(f"Listen 127.0.0.1:{self.port}")
        if self.ipv6:
            lines.append(f"Listen [::1]:{self.port}")
        mime_types = Path("/etc/mime.types")
        if not mime_types.exists():
            mime_types = run / "mime.types"
            mime_types.write_text("text/html html htm\n")
        lines += [
            f"TypesConfig {quote_directive_argument(str(mime_types))}",
            f"DocumentRoot {quote_directive_argument(str(self.docroot))}",
            "<Directory />",
            "  AllowOverride None",
            "  Require all granted",
            "</Directory>",
            "DirectoryIndex index.html",
            # Few processes: the machine is small and start-up must stay fast.
            "<IfModule mpm_event_module>",
            "  StartServers 1",
            "  MinSpareThreads 5",
            "  MaxSpareThreads 75",
            "  ThreadsPerChild 25",
            "  MaxRequestWorkers 150",
            "</IfModule>",
            "<IfModule mpm_prefork_module>",
            "  StartServers 2",
            "  MinSpareServers 2",
            "</IfModule>",
            f"ErrorLog {quote_directive_argument(str(self.error_log))}",
            f"LogLevel {self.log_level}",
        ]
        for nickname, fmt in PRESET_LOGFORMATS.items():
            lines.append(f"LogFormat {quote_directive_argument(fmt)} {nickname}")
        for entry in self.custom_logs:
            fmt = (
                entry.format if entry.format in PRESET_LOGFORMATS else quote_directive_argument(entry.format)
            )
            lines.append(f"CustomLog {quote_directive_argument(str(entry.path))} {fmt}")
        if self.request_read_timeout:
            lines.append(f"RequestReadTimeout {self.request_read_timeout}")
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def _environment(self) -> dict[str, str]:
        assert self.runtime_dir is not None
        user = _run_user() or (pwd.getpwuid(os.geteuid()).pw_name, "")
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C",
            # What /etc/apache2/envvars would define, pointed at our private directory.
            "APACHE_RUN_USER": user[0],
            "APACHE_RUN_GROUP": user[1] or user[0],
            "APACHE_RUN_DIR": str(self.runtime_dir),
            "APACHE_PID_FILE": str(self.runtime_dir / "httpd.pid"),
            "APACHE_LOCK_DIR": str(self.runtime_dir),
            "APACHE_LOG_DIR": str(self.error_log.parent),
            "APACHE_CONFDIR": str(self.runtime_dir),
        }
        # Apache writes local time; pin it so tests know the offset (None: inherit ours).
        timezone = self.timezone if self.timezone is not None else os.environ.get("TZ")
        if timezone:
            env["TZ"] = timezone
        return env

    def _prepare_runtime_dir(self) -> None:
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="logsidecar-apache-"))
        # Workers run as www-data: they must reach the document root.
        self.runtime_dir.chmod(0o755)
        self.docroot.mkdir(mode=0o755)
        for relative, content in self.documents.items():
            target = self.docroot / relative
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
            target.chmod(0o644)
        for entry in self.custom_logs:
            entry.path.parent.mkdir(parents=True, exist_ok=True)
        self.error_log.parent.mkdir(parents=True, exist_ok=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ApacheServer:
        """Start Apache and return once it serves and every log file is open."""
        if self.process is not None:
            raise ApacheError("already started")
        self._prepare_runtime_dir()
        assert self.runtime_dir is not None
        last_error = ""
        for _attempt in range(5):
            self.port = free_port(self.ipv6)
            self.config_text = self.render_config()
            self.config_path.write_text(self.config_text)
            before = LogMark.of(self.error_log)
            output = open(self.runtime_dir / "apache2.out", "ab")  # noqa: SIM115 - lives with the process
            try:
                self.process = subprocess.Popen(
                    [self.binary, "-f", str(self.config_path), "-DFOREGROUND"],
                    cwd=self.runtime_dir,
                    env=self._environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                output.close()
            outcome = self._wait_until_ready(before)
            if outcome is None:
                return self
            last_error = outcome
            self.process = None
            if "could not bind" not in outcome and "Address already in use" not in outcome:
                break
        self._remove_runtime_dir()
        raise ApacheError(f"apache2 did not start:\n{last_error}\nconfig:\n{self.config_text}")

    def _wait_until_ready(self, before: LogMark) -> str | None:
        """None once ready; otherwise what Apache said before it died or timed out."""
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if before.written_since(self.error_log, READY_MARKER):
                return None
            if self.process.poll() is not None:
                return self._diagnostics(f"exited with status {self.process.returncode}")
            time.sleep(0.01)
        diagnostics = self._diagnostics(f"not ready after {self.start_timeout_s}s")
        self._kill()
        return diagnostics

    def _diagnostics(self, what: str) -> str:
        assert self.runtime_dir is not None
        parts = [what]
        for path in (self.runtime_dir / "apache2.out", self.error_log):
            try:
                tail = path.read_bytes()[-4000:].decode("utf-8", "backslashreplace")
            except FileNotFoundError:
                continue
            parts.append(f"--- {path} ---\n{tail}")
        return "\n".join(parts)

    def graceful(self, timeout_s: float = 10.0, wait_for_old_workers: bool = False) -> None:
        """Graceful restart (SIGUSR1, what `apache2 -k graceful` sends): the parent rereads the
        config and reopens every log; old workers finish their requests (writing to the old
        files). Returns once the new generation runs, i.e. the logs are reopened. An old worker
        may still accept a connection in the moment before it notices the restart, so a request
        sent just after this returns can still land in the old file; `wait_for_old_workers`
        also waits until every worker of the previous generation has exited, after which
        nothing writes to the old files any more."""
        old_workers = self.worker_pids()
        self._signal_and_wait_until_ready(signal.SIGUSR1, "graceful restart", timeout_s)
        if wait_for_old_workers:
            wait_for(
                lambda: not (old_workers & self.worker_pids()),
                timeout=timeout_s,
                message="the previous generation of apache workers to exit",
            )

    def worker_pids(self) -> set[int]:
        """The pids of the parent's child processes (the workers), read from /proc."""
        parent = self._running_process().pid
        children: set[int] = set()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            # After the command name: state, ppid. A zombie has exited already.
            if int(fields[1]) == parent and fields[0] != b"Z":
                children.add(int(entry.name))
        return children

    def restart(self, timeout_s: float = 10.0) -> None:
        """Hard restart (SIGHUP): workers are killed, logs reopened."""
        self._signal_and_wait_until_ready(signal.SIGHUP, "restart", timeout_s)

    def _signal_and_wait_until_ready(self, signum: int, what: str, timeout_s: float) -> None:
        """Send `signum` to the parent and wait until the new generation says it runs (AH00489 in
        the error log); ApacheError if the parent exits instead."""
        process = self._running_process()
        before = LogMark.of(self.error_log)
        os.kill(process.pid, signum)
        wait_for(
            lambda: before.written_since(self.error_log, READY_MARKER) or process.poll() is not None,
            timeout=timeout_s,
            message=f"apache {what} to write AH00489 to the error log",
        )
        if process.poll() is not None:
            raise ApacheError(self._diagnostics(f"exited during {what} ({process.returncode})"))

    def stop(self, graceful: bool = False, timeout_s: float = 10.0) -> None:
        """Stop Apache (SIGTERM; SIGWINCH for a graceful stop that lets requests finish) and wait
        for the parent to exit; kill the process group if it does not. Idempotent."""
        process = self.process
        if process is None:
            return
        try:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGWINCH if graceful else signal.SIGTERM)
                try:
                    process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    self._kill()
        finally:
            self.process = None
            self._remove_runtime_dir()

    def _kill(self) -> None:
        process = self.process
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except OSError as error:
            if error.errno != errno.ESRCH:
                raise
        process.wait(timeout=10)

    def _remove_runtime_dir(self) -> None:
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def _running_process(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            raise ApacheError("apache is not running")
        return self.process

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> ApacheServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clients -------------------------------------------------------------------------------

    def send_raw(
        self,
        data: bytes,
        family: str = "ipv4",
        timeout_s: float = 10.0,
        half_close: bool = False,
    ) -> bytes:
        """Send raw bytes on a fresh connection and return everything Apache answers until it
        closes the connection (send `Connection: close` or a malformed request). `half_close`
        shuts our write side after sending, for requests that must end at EOF."""
        sock_family = socket.AF_INET6 if family == "ipv6" else socket.AF_INET
        with closing(socket.socket(sock_family, socket.SOCK_STREAM)) as sock:
            sock.settimeout(timeout_s)
            sock.connect((self.host(family), self.port))
            if data:
                sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)

    def request(
        self,
        method: str,
        target: str | bytes,
        headers: Sequence[tuple[str, str | bytes]] = (),
        body: bytes = b"",
        family: str = "ipv4",
        timeout_s: float = 10.0,
    ) -> bytes:
        """One HTTP/1.1 request written byte for byte (so targets and header values reach Apache
        exactly as given, quotes, backslashes and non-UTF-8 bytes included) with
        `Connection: close`; returns the raw response."""
        raw_target = target if isinstance(target, bytes) else target.encode("latin-1")
        host = f"Host: {SERVER_NAME}:{self.port}".encode()
        lines = [method.encode("ascii") + b" " + raw_target + b" HTTP/1.1", host]
        for name, value in headers:
            raw_value = value if isinstance(value, bytes) else value.encode("latin-1")
            lines.append(name.encode("ascii") + b": " + raw_value)
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}".encode())
        lines.append(b"Connection: close")
        return self.send_raw(b"\r\n".join(lines) + b"\r\n\r\n" + body, family=family, timeout_s=timeout_s)


#: The `apache_factory` fixture's type: call it with ApacheServer's keyword options.
ApacheFactory = Callable[..., ApacheServer]


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response."""
    status_line = response.split(b"\r\n", 1)[0]
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise AssertionError(f"not an HTTP response: {response[:200]!r}")
    return int(parts[1])


@contextmanager
def running_apache(tmp_path: Path, **options: object) -> Iterator[ApacheServer]:
    """`with running_apache(tmp_path, custom_logs=[...]) as apache:` — start, yield, stop."""
    server = ApacheServer(tmp_path, **options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()
