"""The model of every option: `Settings` (top-level keys), `InputConfig` ([[inputs]]) and the
outputs (`StdoutOutput`, `OtlpOutput`). Field names are the config file's keys, the `tail` flags'
names in snake_case (`--max-line-bytes` is `max_line_bytes`) and, upper-cased after `LOGSIDECAR_`,
the environment variables (see `settings.sources`).

Invariants:
- Frozen; an unknown key is an error that lists the valid ones.
- Header names and values are checked here: what HTTP/gRPC cannot carry (CR, LF, NUL, non-ASCII)
  is an error naming the header, never showing the value.
- The model names the value types of the parts it configures (enums) but builds none of them:
  `service.plan` turns settings into running parts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import tzinfo
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from logsidecar import redact
from logsidecar.events import Level
from logsidecar.selflog import LogStyle
from logsidecar.settings.errors import is_secret_key
from logsidecar.settings.units import Duration, HttpAddr, Size, TimezoneName, custom, parse_timezone
from logsidecar.sinks.otlp_settings import is_grpc_name
from logsidecar.sinks.stdout import StdoutFormat
from logsidecar.tail.open_policy import FollowSymlinks
from logsidecar.tail.options import StartAt, WatchMode

MASK = "***"


def split_format_rule(text: str) -> tuple[str | None, str]:
    """`GLOB=SPEC` -> (GLOB, SPEC); a plain `SPEC` -> (None, SPEC). A spec may itself contain `=`
    (inside a LogFormat), so the text is a rule only when what precedes the first `=` looks like a
    glob: no `:` and no `%`."""
    head, sep, tail = text.partition("=")
    if sep and head.strip() and ":" not in head and "%" not in head:
        return head.strip(), tail.strip()
    return None, text.strip()


class _Strict(BaseModel):
    """Frozen; unknown keys are errors (reported with the keys that would be valid, see `_describe`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_format_spec(spec: str) -> str:
    from logsidecar.parse import FormatError, build_parser

    try:
        build_parser(spec)
    except FormatError as exc:
        raise PydanticCustomError("logsidecar", str(exc)) from None
    return spec


_HEADER_NAME = re.compile(r"[0-9a-z_.\-]+")  # gRPC metadata keys (HTTP tokens accept them too)
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")  # printable ASCII: what gRPC metadata values allow
_BAD_HEADER_VALUE = (
    "the value has a character that HTTP headers and gRPC metadata cannot carry (a control "
    "character such as a newline, or a non-ASCII character); value not shown"
)


def _as_header_name(name: Any) -> str:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name.lower()):
        raise ValueError(
            f"header name {name!r} is not valid: use letters, digits, '-', '_' and '.' "
            "(HTTP headers and gRPC metadata)"
        )
    return name


def _as_header_value(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    if not _HEADER_VALUE.fullmatch(value):
        raise ValueError(_BAD_HEADER_VALUE)
    return value


HeaderName = Annotated[str, BeforeValidator(custom(_as_header_name))]
HeaderValue = Annotated[str, BeforeValidator(custom(_as_header_value))]


class InputConfig(_Strict):
    paths: list[str] = Field(min_length=1)  # paths or globs (`**` allowed)
    exclude: list[str] = []  # globs; the tailer applies the union of every input's excludes
    format: str = "auto"  # a format spec (see logsidecar.parse) for files matched by `paths`

    @field_validator("format")
    @classmethod
    def _valid_format(cls, spec: str) -> str:
        return _check_format_spec(spec)


class StdoutOutput(_Strict):
    type: Literal["stdout"] = "stdout"
    format: StdoutFormat = StdoutFormat.AUTO


class OtlpOutput(_Strict):
    type: Literal["otlp"] = "otlp"
    endpoint: str | None = None  # None: the protocol's default (localhost:4317 / :4318/v1/logs)
    protocol: Literal["grpc", "http/protobuf"] | None = None  # None: grpc
    headers: dict[HeaderName, HeaderValue] = {}
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    insecure: bool | None = None
    load_balancing: Literal["round_robin", "pick_first"] | None = None  # None: round_robin (gRPC)
    compression: Literal["gzip", "none"] | None = None  # None: none (the OTel default)
    timeout: Duration | None = None  # None: 10s
    batch_size: int | None = Field(None, gt=0)
    batch_timeout: Duration | None = None
    max_retry_time: Duration | None = None  # None: retry forever (the log file is the buffer)
    max_request_bytes: Size | None = None  # None: 4MiB for gRPC, 20MiB for HTTP (see sinks.otlp_fit)

    @field_validator("endpoint")
    @classmethod
    def _valid_endpoint(cls, endpoint: str | None) -> str | None:
        if endpoint is None:
            return None
        if is_grpc_name(endpoint):  # dns:///gateway:4317 ...: grpc resolves it (gRPC only)
            return endpoint
        try:
            parts = urlsplit(endpoint if "://" in endpoint else f"grpc://{endpoint}")
            valid = parts.scheme in ("http", "https", "grpc") and bool(parts.hostname)
        except ValueError:  # e.g. an unbalanced [ in the host
            valid = False
        if not valid:
            raise PydanticCustomError(
                "logsidecar",
                f"invalid endpoint {redact.redact(endpoint)!r}; expected a URL like http://collector:4317",
            )
        return endpoint

    @model_validator(mode="after")
    def _one_source_of_credentials(self) -> OtlpOutput:
        if self.endpoint and endpoint_credentials(self.endpoint)[1] is not None:
            explicit = [k for k in self.headers if k.lower() == "authorization"]
            if explicit:
                raise PydanticCustomError(
                    "logsidecar",
                    f"the endpoint has user:password@ credentials and header {explicit[0]!r} is set "
                    "too: give only one (the URL's credentials become an authorization header)",
                )
        return self

    def otlp_flags(self) -> dict[str, Any]:
        """This output as the `--otlp-*` parameters (`otlp_<field>`; headers: `otlp_header` pairs)
        that `settings.otel_env.resolve_otlp_settings` reads."""
        flags = {f"otlp_{name}": getattr(self, name) for name in OTLP_FLAG_FIELDS}
        flags["otlp_header"] = tuple(self.headers.items())
        return flags


#: The OtlpOutput fields that are one `--otlp-<field>` flag each (headers: --otlp-header, repeated).
OTLP_FLAG_FIELDS = tuple(name for name in OtlpOutput.model_fields if name not in ("type", "headers"))

Output = Annotated[StdoutOutput | OtlpOutput, Field(discriminator="type")]


def _option(default: Any, help: str, *, shown: str | None = None, **constraints: Any) -> Any:  # noqa: A002
    """A field that is also a command-line option: `help` is its --help text; `shown` is the default
    displayed there when the value itself says nothing (None: off, never, or computed at run time)."""
    extra: dict[str, Any] | None = {"shown_default": shown} if shown is not None else None
    return Field(default, description=help, json_schema_extra=extra, **constraints)  # type: ignore[arg-type]


def _default_outputs() -> list[StdoutOutput | OtlpOutput]:
    return [StdoutOutput()]


class Settings(_Strict):
    """The effective configuration. Field names are the `tail` flags' names (and the file's keys)."""

    inputs: list[InputConfig] = []
    formats: list[str] = []  # [GLOB=]SPEC rules (what --format gives), tried before the inputs' formats
    exclude: list[str] = []
    outputs: list[Output] = Field(default_factory=_default_outputs, min_length=1)
    # Every option below is also a `tail` flag and a LOGSIDECAR_* variable (see `settings.sources`):
    # its help text and the default shown in --help come from here (`cli.model_options`).
    state_dir: str | None = _option(
        None,
        "Where checkpoints are kept; 'none' keeps them in memory only.",
        shown="$XDG_STATE_HOME/logsidecar, i.e. ~/.local/state/logsidecar",
    )
    start_at: StartAt = _option(StartAt.BEGINNING, "Where to start in files that have no checkpoint.")
    watch: WatchMode = _option(
        WatchMode.AUTO,
        "How changes are noticed: inotify (with a slow stat safety net), poll, or auto by filesystem.",
    )
    follow_symlinks: FollowSymlinks = _option(
        FollowSymlinks.WITHIN,
        "Follow a symlink never, only when it resolves inside the glob's fixed directory (within), or "
        "anywhere. Only regular files are read; our own stdout/stderr never.",
    )
    poll_interval: Duration = _option(0.25, "Stat period in poll mode.")
    ignore_older: Duration | None = _option(
        None, "Skip files not modified for this long (e.g. 24h, 30m).", shown="never"
    )
    max_line_bytes: Size = _option(1024 * 1024, "Longer lines are cut here and flagged logsidecar.truncated.")
    partial_line_flush: Duration = _option(
        5.0, "A last line without its newline is forwarded after this long."
    )
    timezone: TimezoneName = _option(
        "local", "Zone of error-log times (they carry no offset): local, UTC, +02:00, Europe/Paris ..."
    )
    resource: dict[str, str] = {}
    service_name: str | None = None
    drain_timeout: Duration = _option(
        8.0,
        "On SIGTERM/SIGINT: stop discovering files, read every followed file to its end, deliver and "
        "commit, within this long; what is left then is named (file, offset, lines) in the last log "
        "line and read after a restart. Closing the outputs may take 1s more: the default stays below "
        "docker stop's 10s.",
    )
    # ~5 read batches of 229-byte lines: enough to keep 4 OTLP requests in flight while one batch is
    # parsed, and ~5 MiB of encoded JSON (peak RSS of tail -> stdout: ~59 MiB)
    max_in_flight_lines: int = _option(
        6144,
        "Lines read but not yet delivered, at most; beyond it reading pauses (the files are the buffer).",
        gt=0,
    )
    log_format: LogStyle = _option(LogStyle.AUTO, "Our own logs on stderr.")
    log_level: Level = _option(Level.INFO, "Our own logs: the least severe level shown.")
    http_addr: HttpAddr | None = _option(
        None,
        "Serve /metrics, /healthz and /readyz here, e.g. 127.0.0.1:9464 or :9464 (loopback).",
        shown="off",
    )
    unhealthy_after: Duration = _option(60.0, "/healthz fails once a sink has been failing this long.")
    derive_metrics: bool = _option(
        False,
        "Also send HTTP server metrics derived from access records over OTLP (same OTLP settings as "
        "the logs).",
    )
    metrics_route_depth: int = _option(1, "Path segments kept in the http.route of derived metrics.", gt=0)
    metrics_interval: Duration = _option(10.0, "Export period of derived metrics.")
    docker_metadata: Literal["auto", "on", "off"] = _option(
        "auto",
        "Add container.* resource attributes of the container writing the tailed directories, read "
        "from the Docker socket (auto: when the socket is reachable).",
    )

    @field_validator("formats")
    @classmethod
    def _valid_rules(cls, rules: list[str]) -> list[str]:
        plain = [r for r in rules if split_format_rule(r)[0] is None]
        if len(plain) > 1:
            raise PydanticCustomError(
                "logsidecar",
                f"more than one format for all files: {', '.join(repr(p) for p in plain)}; "
                "use GLOB=SPEC to give files different formats",
            )
        for rule in rules:
            _check_format_spec(split_format_rule(rule)[1])
        return rules

    def format_rules(self) -> tuple[list[tuple[str, str]], str]:
        """(GLOB, SPEC) rules in match order, and the spec for files no rule matches: feed
        `pipeline.ParserSelector([FormatRule(g, s) for g, s in rules], default_spec=default)`."""
        rules: list[tuple[str, str]] = []
        default = "auto"
        for text in self.formats:
            pattern, spec = split_format_rule(text)
            if pattern is None:
                default = spec
            else:
                rules.append((pattern, spec))
        for item in self.inputs:
            # Only a format the input names: an input that says none (PATH_OR_GLOB arguments,
            # LOGSIDECAR_PATHS) takes the plain --format like any other file.
            if "format" in item.model_fields_set:
                rules.extend((path, item.format) for path in item.paths)
        return rules, default

    def tzinfo(self) -> tzinfo:
        return parse_timezone(self.timezone)

    def masked(self) -> dict[str, Any]:
        """The settings as plain data for display: secrets replaced by ***, values from ${VAR} by
        ${VAR}, URL credentials hidden (`logsidecar.redact`)."""
        return redact.redact_value(_mask(self.model_dump(mode="json")))  # type: ignore[no-any-return]

    def remember_secrets(self) -> None:
        """Make this configuration's secrets known to `logsidecar.redact`: header values, URL
        credentials of endpoints, values of secret-looking keys (resource `api_key` ...)."""
        for output in self.outputs:
            if isinstance(output, OtlpOutput):
                redact.remember_header_values(output.headers)
                if output.endpoint:
                    credentials = endpoint_credentials(output.endpoint)[1]
                    if credentials:
                        redact.remember(credentials)
                        redact.remember(credentials.partition(":")[2])  # the password alone
        for key, value in self.resource.items():
            if is_secret_key(key):
                redact.remember(value)


# -- masking ---------------------------------------------------------------------------------------


def _mask(data: Any, parent: str = "") -> Any:
    if isinstance(data, list):
        return [_mask(v, parent) for v in data]
    if not isinstance(data, dict):
        return data
    if parent == "headers":
        return {k: MASK for k in data}
    masked = {}
    for key, value in data.items():
        if is_secret_key(key) and value is not None:
            masked[key] = MASK
        else:
            masked[key] = _mask(value, key)
    return masked


def endpoint_credentials(endpoint: str) -> tuple[str, str | None]:
    """(the endpoint without credentials, the credentials `user:password` or None). The userinfo
    of a URL (`http://user:pw@host:4318`) or of a gRPC target without scheme (`user:pw@host:4317`)."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        scheme, rest = "", endpoint
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return endpoint, None
    userinfo, _, host = authority.rpartition("@")
    return f"{scheme}{sep}{host}{slash}{path}", userinfo


def header_problem(key: str, value: str) -> str | None:
    """Why `key: value` cannot be sent as an HTTP header or gRPC metadata, or None. Never quotes
    the value (a secret); a bad value would otherwise be refused at every request, or split the
    header (CR/LF) into another one."""
    try:
        _as_header_name(key)
    except ValueError as exc:
        return str(exc)
    if not _HEADER_VALUE.fullmatch(value):
        return f"header {key!r}: {_BAD_HEADER_VALUE}"
    return None


def keys_at(loc: Sequence[Any]) -> Iterable[str]:
    """The valid keys beside `loc[-1]` (for "expected one of" in unknown-key errors)."""
    nested: dict[str, type[BaseModel]] = {"inputs": InputConfig, "stdout": StdoutOutput, "otlp": OtlpOutput}
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        if isinstance(part, str) and part in nested:
            model = nested[part]
    return model.model_fields
