"""The model of every option: `Settings` (top-level keys), `InputConfig` ([[inputs]]) and the
outputs (`StdoutOutput`, `OtlpOutput`): the one place a setting is defined.

Adding a setting is adding a field here, declared with `_option(default, help, ...)`; nothing else.
From the field, `settings.options` derives its `tail` flag, its LOGSIDECAR_* variable and its config
file key; `cli.model_options` its click option (type, choices, help and the default shown);
`settings.sources` reads it from the file, the environment and the flags; docs/configuration.md lists
it (`python -m logsidecar.settings.docs`). The names:
- a top-level field `max_line_bytes`: key `max_line_bytes`, flag `--max-line-bytes`, variable
  LOGSIDECAR_MAX_LINE_BYTES;
- a field of an output, `timeout` of `OtlpOutput`: key `timeout` in `[[outputs]] type = "otlp"`,
  flag `--otlp-timeout`, variable LOGSIDECAR_OTLP_TIMEOUT (for every output of that type);
- `_option(flag=...)` renames the flag (and so the variable): `formats` is `--format`.
The type decides the parsing, the same everywhere: `Duration` ('10s', '250ms'), `Size` ('5MiB'),
enums and literals (choices), bool (`--x/--no-x`), `int` with `gt=`, a list (a repeatable flag), a
mapping (a repeatable KEY=VALUE flag).

Invariants:
- Frozen; an unknown key is an error that says the closest valid one (and lists them, once).
- Header names and values, and endpoints, are checked (`settings.transport`): what HTTP/gRPC cannot
  carry (CR, LF, NUL, non-ASCII) is an error naming the header, never showing the value; an endpoint
  no attempt could reach (scheme, host, port) is an error at start-up.
- The model names the value types of the parts it configures (enums) but builds none of them:
  `service.plan` turns settings into running parts.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Sequence
from datetime import tzinfo
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from logsidecar import redact
from logsidecar.events import Level
from logsidecar.selflog import LogStyle
from logsidecar.settings.errors import is_secret_key
from logsidecar.settings.transport import HeaderName, HeaderValue, endpoint_credentials, endpoint_problem
from logsidecar.settings.units import (
    DEFAULT_TIMEZONE,
    Duration,
    HttpAddr,
    ReadableFile,
    Size,
    TimezoneName,
    custom,
    format_duration,
    format_size,
    parse_timezone,
)
from logsidecar.sinks.otlp_fit import DEFAULT_GRPC_MAX_REQUEST_BYTES, DEFAULT_HTTP_MAX_REQUEST_BYTES
from logsidecar.sinks.otlp_settings import DEFAULT_SERVICE_NAME
from logsidecar.sinks.stdout import StdoutFormat
from logsidecar.tail.open_policy import FollowSymlinks
from logsidecar.tail.options import StartAt, WatchMode

MASK = "***"

# The OTLP output's defaults (`settings.otel_env` applies them after the OTEL_* variables).
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_BATCH_SIZE = 2048
DEFAULT_BATCH_TIMEOUT_S = 0.2


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


def _option(
    default: Any,
    help: str,  # noqa: A002
    *,
    shown: str | None = None,
    flag: str | None = None,
    short: str | None = None,
    metavar: str | None = None,
    env_split: Literal["words", "lines", "commas"] | None = None,
    param: str | None = None,
    **constraints: Any,
) -> Any:
    """A field that is also a `tail` option (see the module docstring). `help`: its --help text and
    documentation; `shown`: the default displayed when the value itself says nothing (None: off,
    never, or computed at run time); `flag`: the flag's whole name without `--` when it is not the
    field's (an output's prefix included);
    `short`: a one-letter alias; `env_split`: how a list or mapping is written in its variable
    (words: `a,b c`; lines: one per line; commas: `k=v,k=v`, values may hold spaces); `param`: the
    click parameter's name when it is not the flag's (kept for callers of `settings.sources.resolve`)."""
    given = {"shown_default": shown, "flag": flag, "short": short, "metavar": metavar}
    given |= {"env_split": env_split, "param": param}
    extra = {k: v for k, v in given.items() if v is not None}
    if isinstance(default, types.FunctionType):  # a factory: each Settings gets its own value
        constraints["default_factory"] = default
    else:
        constraints["default"] = default
    return Field(description=help, json_schema_extra=extra or None, **constraints)  # type: ignore[arg-type]


def _as_format_rule(value: Any) -> str:
    """`SPEC` or `GLOB=SPEC` as its normalised text (the spec itself is checked by `Settings`)."""
    if not isinstance(value, str):
        raise ValueError("expected a format rule such as 'combined' or '*error*=error'")
    pattern, spec = split_format_rule(value)
    if not spec:
        raise ValueError(f"empty format spec in {value!r}")
    return spec if pattern is None else f"{pattern}={spec}"


FormatRuleText = Annotated[str, BeforeValidator(custom(_as_format_rule))]


class InputConfig(_Strict):
    paths: list[str] = Field(min_length=1, description="Paths or globs (`**` allowed) to follow.")
    exclude: list[str] = Field(
        [], description="Globs never to follow; the tailer applies the union of every input's excludes."
    )
    format: str = Field(
        "auto", description="The format spec of the files `paths` matches (see --format for the specs)."
    )

    @field_validator("format")
    @classmethod
    def _valid_format(cls, spec: str) -> str:
        return _check_format_spec(spec)


class StdoutOutput(_Strict):
    type: Literal["stdout"] = "stdout"
    format: StdoutFormat = _option(
        StdoutFormat.AUTO,
        "json lines, pretty (coloured, one line per record), raw bodies; auto: pretty on a terminal.",
    )


class OtlpOutput(_Strict):
    type: Literal["otlp"] = "otlp"
    protocol: Literal["grpc", "http/protobuf"] | None = _option(None, "Transport.", shown="grpc")
    endpoint: str | None = _option(
        None,
        "OTLP receiver: host:port, http(s)://host:4317 or dns:///name:4317 for gRPC; "
        "http(s)://host:4318 for HTTP (/v1/logs is appended when the URL has no path).",
        shown=f"{DEFAULT_GRPC_ENDPOINT} for gRPC, {DEFAULT_HTTP_ENDPOINT}/v1/logs for HTTP",
        metavar="URL",
        examples=["http://collector:4317"],
    )
    headers: dict[HeaderName, HeaderValue] = _option(
        {},
        "Extra request header KEY=VALUE (e.g. authorization=Bearer ...), repeatable; values are "
        "never logged.",
        flag="otlp-header",
        env_split="commas",
    )
    ca_file: ReadableFile | None = _option(
        None,
        "PEM CA bundle to verify the receiver's TLS certificate (TLS is used for https:// endpoints, "
        "and for gRPC endpoints without a scheme unless insecure).",
        metavar="FILE",
    )
    client_cert: ReadableFile | None = _option(None, "PEM client certificate for mutual TLS.", metavar="FILE")
    client_key: ReadableFile | None = _option(None, "PEM client private key for mutual TLS.", metavar="FILE")
    insecure: bool | None = _option(
        None,
        "gRPC: plaintext when the endpoint has no scheme (an http:// or https:// scheme decides by itself).",
        shown="off",
    )
    load_balancing: Literal["round_robin", "pick_first"] | None = _option(
        None,
        "gRPC: how exports spread over the addresses the endpoint resolves to (dns:///name:port behind "
        "a headless Service, ipv4:a:p,b:p); pick_first pins every export to one address.",
        shown="round_robin",
    )
    compression: Literal["gzip", "none"] | None = _option(
        None, "Request compression.", shown="none, as the OTel specification says"
    )
    timeout: Duration | None = _option(
        None, "Deadline of one export request.", shown=format_duration(DEFAULT_TIMEOUT_S)
    )
    batch_size: int | None = _option(
        None, "Most log records in one export request.", shown=str(DEFAULT_BATCH_SIZE), gt=0
    )
    batch_timeout: Duration | None = _option(
        None,
        "How long lines may wait to fill a batch before it is sent.",
        shown=format_duration(DEFAULT_BATCH_TIMEOUT_S),
    )
    max_retry_time: Duration | None = _option(
        None,
        "Give up retrying a batch after this long (it is then reported as rejected).",
        shown="retry forever; the log file is the buffer",
    )
    max_request_bytes: Size | None = _option(
        None,
        "Most bytes in one export request (serialized, before compression): bigger batches are split, "
        "a single bigger record is cut to fit and flagged logsidecar.truncated.",
        shown=f"{format_size(DEFAULT_GRPC_MAX_REQUEST_BYTES)} for gRPC (its default receive limit), "
        f"{format_size(DEFAULT_HTTP_MAX_REQUEST_BYTES)} for HTTP",
    )

    @field_validator("endpoint")
    @classmethod
    def _valid_endpoint(cls, endpoint: str | None, info: ValidationInfo) -> str | None:
        if endpoint is None:
            return None
        problem = endpoint_problem(endpoint, info.data.get("protocol"))
        if problem:
            raise PydanticCustomError("logsidecar", problem)
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
#: Each output type's model, by the name of its `type`.
OUTPUT_MODELS: dict[str, type[StdoutOutput | OtlpOutput]] = {"stdout": StdoutOutput, "otlp": OtlpOutput}

Output = Annotated[StdoutOutput | OtlpOutput, Field(discriminator="type")]


def _default_outputs() -> list[StdoutOutput | OtlpOutput]:
    return [StdoutOutput()]


class Settings(_Strict):
    """The effective configuration. Field names are the `tail` flags' names (and the file's keys)."""

    inputs: list[InputConfig] = _option(
        [],
        "Files to follow: paths or globs (`**` allowed), quoted so that the shell leaves the globs to us. "
        "In the file, [[inputs]] tables also give each their own format and excludes.",
        param="paths",
        metavar="PATH_OR_GLOB...",
    )
    formats: list[FormatRuleText] = _option(
        [],
        "Log format: auto, combined, common, error, logformat:<LogFormat>, ... Repeatable as GLOB=SPEC "
        "per file pattern (e.g. '*error*=error'); a plain SPEC applies to the other files.",
        shown="auto",
        flag="format",
        short="-f",
        param="format_rules",
        env_split="lines",  # a LogFormat holds spaces and commas
        metavar="[GLOB=]SPEC",
    )
    exclude: list[str] = _option([], "Glob of paths never to follow (repeatable).", metavar="GLOB")
    outputs: list[Output] = _option(
        _default_outputs,
        "Where records go: stdout, otlp, or both (repeatable, or comma-separated). In the file, "
        "[[outputs]] tables with type = 'stdout' or 'otlp' and that output's keys.",
        shown="stdout",
        flag="output",
        short="-o",
        param="outputs",
        min_length=1,
    )
    state_dir: str | None = _option(
        None,
        "Where checkpoints are kept; 'none' keeps them in memory only.",
        shown="$XDG_STATE_HOME/logsidecar, i.e. ~/.local/state/logsidecar",
        examples=["/var/lib/logsidecar"],
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
        DEFAULT_TIMEZONE,
        "Zone of error-log times (they carry no offset): local, UTC, +02:00, Europe/Paris ...",
    )
    resource: dict[str, str] = _option(
        {}, "Extra resource attribute KEY=VALUE on every record (repeatable).", env_split="words"
    )
    service_name: str | None = _option(
        None,
        "Resource service.name of every record.",
        shown=DEFAULT_SERVICE_NAME,
        metavar="NAME",
    )
    drain_timeout: Duration = _option(
        8.0,
        "On SIGTERM/SIGINT: stop discovering files, read every followed file to its end, deliver, "
        "commit, close the outputs and exit, all within this long (the default stays below docker "
        "stop's 10s); what is left then is named (file, offset, lines) in the last log line, at "
        "warning level, read after a restart, and the exit status is 3. A second signal exits at once.",
    )
    exit_when_exists: str | None = _option(
        None,
        "Once this file exists (the app's container writes it after the app has exited, e.g. "
        "/var/log/apache2/.app-stopped): stop as on SIGTERM (read every followed file to its end, "
        "deliver and commit within --drain-timeout) and exit 0, so a Job with a sidecar completes.",
        shown="off",
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
        "Serve /metrics and the /livez, /readyz and /healthz probes here, e.g. 127.0.0.1:9464 or :9464 "
        "(loopback).",
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


_NESTED: dict[str, tuple[type[BaseModel], str]] = {
    "inputs": (InputConfig, "in [[inputs]]"),
    "stdout": (StdoutOutput, "in [[outputs]] with type = 'stdout'"),
    "otlp": (OtlpOutput, "in [[outputs]] with type = 'otlp'"),
}


def _model_at(loc: Sequence[Any]) -> tuple[type[BaseModel], str]:
    found: tuple[type[BaseModel], str] = (Settings, "at the top level")
    for part in loc[:-1]:
        if isinstance(part, str) and part in _NESTED:
            found = _NESTED[part]
    return found


def keys_at(loc: Sequence[Any]) -> Iterable[str]:
    """The valid keys beside `loc[-1]` (for "did you mean" and the valid keys of unknown-key errors)."""
    return _model_at(loc)[0].model_fields


def place_at(loc: Sequence[Any]) -> str:
    """Where the key `loc[-1]` is, in words: 'at the top level', "in [[inputs]]" ..."""
    return _model_at(loc)[1]
