"""The configuration file, its model, and how it combines with the environment and the flags.

One file (TOML, or YAML/JSON) can say everything the `tail` flags can. Every key is the flag's name in
snake_case (`--max-line-bytes` is `max_line_bytes`); OTLP settings live in `[[outputs]]` entries.

    # logsidecar.toml
    state_dir = "/var/lib/logsidecar"
    start_at = "end"
    ignore_older = "24h"
    follow_symlinks = "within"             # never | within (the glob's fixed directory) | anywhere
    max_line_bytes = "1MiB"
    http_addr = "127.0.0.1:9464"
    derive_metrics = true                  # HTTP server metrics from access records, over OTLP
    docker_metadata = "auto"               # container.* of the writer when the Docker socket is mounted
    formats = ["*error*=error"]            # extra [GLOB=]SPEC rules, checked before the inputs' formats
    resource = { "deployment.environment" = "prod" }

    [[inputs]]
    paths = ["/logs/*access*log"]
    format = "combined"

    [[outputs]]
    type = "otlp"
    endpoint = "http://collector:4317"
    headers = { authorization = "Bearer ${OTLP_TOKEN}" }   # ${VAR} comes from the environment
    max_request_bytes = "4MiB"             # bigger batches are split (default: 4MiB gRPC, 20MiB HTTP)

Precedence, key by key: flags > environment (LOGSIDECAR_*, then the standard OTEL_*) > file > defaults.
`resolve(file_path, env, flags)` applies it and is pure (no os.environ, no clock): the file is read,
`env` is the mapping given, `flags` holds only the options given on the command line (click parameter
names of `logsidecar tail`, see `flags_from_click`).

Invariants:
- A bad key or value is rejected with its path and what was expected (`inputs[1].format: unknown format
  'combind'; expected one of: ...`), every error at once (`ConfigError.errors`). Values from the
  environment or flags are named by their variable or flag instead of the key path.
- Secrets (header values, URL credentials, any key containing "token", "password", "secret" or
  "api_key", and every value a `${VAR}` brought) never appear in an error message or in `masked()`
  (`logsidecar.redact`; a `${VAR}` value is shown as `${VAR}`). Header names and values are checked
  here: what HTTP/gRPC cannot carry (CR, LF, NUL, non-ASCII) is an error naming the header.
- A file is at most MAX_CONFIG_BYTES, and a YAML document at most MAX_CONFIG_NODES values once its
  aliases are expanded (an alias bomb is refused in milliseconds, naming the file).
- Durations are float seconds in `Settings` ("500ms", "30s", "5m", "24h", "7d", "1h30m" or a number of
  seconds in the file); sizes are int bytes ("1MiB", "64KiB", "1MB", "512k" or a number of bytes).
- OTEL_EXPORTER_OTLP_* variables (the LOGS_ variant first) configure every OTLP output; they do not
  add one. LOGSIDECAR_OUTPUT / --output choose the outputs, reusing the file's settings for each type.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from logsidecar import redact
from logsidecar.events import Level
from logsidecar.selflog import LogStyle
from logsidecar.tail.open_policy import FollowSymlinks
from logsidecar.tail.options import StartAt, TailOptions, WatchMode

__all__ = [
    "ConfigError",
    "Settings",
    "InputConfig",
    "StdoutOutput",
    "OtlpOutput",
    "resolve",
    "load_file",
    "flags_from_click",
    "parse_duration",
    "parse_size",
    "parse_http_addr",
    "parse_timezone",
    "format_duration",
    "unknown_env_vars",
    "endpoint_credentials",
    "header_problem",
]

ENV_PREFIX = "LOGSIDECAR_"
MASK = "***"
_SECRET_KEY_HINTS = ("token", "password", "secret", "api_key", "apikey")
MAX_CONFIG_BYTES = 1024 * 1024  # a configuration is a few KiB; anything this big is not one
MAX_CONFIG_NODES = 100_000  # values in a YAML document once its aliases are expanded


class ConfigError(ValueError):
    """Invalid configuration; `errors` holds one line per problem, each naming where it is."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


# -- values with units ----------------------------------------------------------------------------

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3,
}  # fmt: skip


def parse_duration(value: str | float) -> float:
    """'500ms', '30s', '5m', '24h', '7d', '1h30m' or a number of seconds -> seconds (>= 0)."""
    if isinstance(value, bool):
        raise ValueError(
            f"invalid duration {value!r}; expected a number and a unit (ms, s, m, h, d), e.g. '30s'"
        )
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            if not text or _DURATION_PART.sub("", text):
                raise ValueError(
                    f"invalid duration {value!r}; expected a number and a unit (ms, s, m, h, d), "
                    "e.g. '30s', '5m', '24h'"
                ) from None
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    if seconds < 0 or seconds != seconds:  # negative or NaN
        raise ValueError(f"invalid duration {value!r}; must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 86400 -> '1d', 90 -> '1m30s', 0.25 -> '250ms'."""
    if seconds == 0:
        return "0s"
    millis = round(seconds * 1000)
    if abs(millis - seconds * 1000) > 1e-6 or millis % 1000:
        return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"
    rest, parts = millis // 1000, []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def parse_size(value: str | float) -> int:
    """'1MiB', '64KiB', '1MB', '512k' or a number of bytes -> bytes (> 0)."""
    if isinstance(value, bool):
        raise ValueError(
            f"invalid size {value!r}; expected a number and a unit (B, KB, MB, GB, KiB, MiB, GiB)"
        )
    if isinstance(value, int | float):
        size = int(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(
                f"invalid size {value!r}; expected a number and a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. '1MiB'"
            )
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if size <= 0:
        raise ValueError(f"invalid size {value!r}; must be greater than 0")
    return size


def parse_http_addr(text: str) -> tuple[str, int]:
    """'127.0.0.1:9464', '[::1]:9464', 'localhost:9464', ':9464' or '9464' (both loopback) -> (host, port)."""
    raw = text.strip()
    if raw.isdigit():
        raw = ":" + raw
    match = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]\s]*))?:?(\d+)", raw)
    if not match or ":" not in raw:
        raise ValueError(f"invalid address {text!r}; expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464")
    host = match.group(1) or match.group(2) or "127.0.0.1"
    port = int(match.group(3))
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid address {text!r}; port must be between 0 and 65535")
    return host, port


def parse_timezone(text: str, env: Mapping[str, str] | None = None) -> tzinfo:
    """'local', 'UTC', '+02:00' / '-0730', or an IANA name like 'Europe/Paris'.

    'local' is the zone named by TZ (in `env`, default os.environ), else /etc/localtime: a real zone
    with its DST rules, not today's fixed offset (error-log times from last winter must stay right)."""
    from datetime import UTC, datetime, timedelta, timezone
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = text.strip()
    if name.lower() == "local":
        tz_name = (os.environ if env is None else env).get("TZ", "").lstrip(":")
        if tz_name:
            try:
                return ZoneInfo(tz_name)
            except (ZoneInfoNotFoundError, ValueError):
                pass
        try:
            with open("/etc/localtime", "rb") as handle:
                return ZoneInfo.from_file(handle, key="localtime")
        except (OSError, ValueError):
            return datetime.now().astimezone().tzinfo or UTC
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    match = re.fullmatch(r"([+-])(\d\d):?(\d\d)", name)
    if match:
        sign = 1 if match.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {text!r}; expected local, UTC, an offset like +02:00 or a name like Europe/Paris"
        ) from None


def _custom(validate: Any) -> Any:
    """Run `validate`, turning its ValueError into an error whose message is shown as is."""

    def run(value: Any) -> Any:
        try:
            return validate(value)
        except ValueError as exc:
            raise PydanticCustomError("logsidecar", str(exc)) from None

    return run


def _as_duration(value: Any) -> float:
    if not isinstance(value, str | int | float):
        raise ValueError("expected a duration such as '30s', '5m' or '24h'")
    return parse_duration(value)


def _as_size(value: Any) -> int:
    if not isinstance(value, str | int | float):
        raise ValueError("expected a size such as '1MiB'")
    return parse_size(value)


def _as_timezone(value: Any) -> str:
    if isinstance(value, tzinfo):
        return _timezone_name(value)
    if not isinstance(value, str):
        raise ValueError("expected a timezone name such as 'UTC' or 'Europe/Paris'")
    parse_timezone(value)
    return value.strip()


def _as_http_addr(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9464")
    host, port = parse_http_addr(value)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


Duration = Annotated[
    float, BeforeValidator(_custom(_as_duration)), PlainSerializer(format_duration, when_used="json")
]
Size = Annotated[int, BeforeValidator(_custom(_as_size))]
TimezoneName = Annotated[str, BeforeValidator(_custom(_as_timezone))]
HttpAddr = Annotated[str, BeforeValidator(_custom(_as_http_addr))]


def _timezone_name(tz: tzinfo) -> str:
    key = getattr(tz, "key", None)
    if key:
        return str(key)
    offset = tz.utcoffset(None)
    if offset is None or offset.total_seconds() == 0:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# -- the model --------------------------------------------------------------------------------------


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


HeaderName = Annotated[str, BeforeValidator(_custom(_as_header_name))]
HeaderValue = Annotated[str, BeforeValidator(_custom(_as_header_value))]


class InputConfig(_Strict):
    paths: list[str] = Field(min_length=1)  # paths or globs (`**` allowed)
    exclude: list[str] = []  # globs; the tailer applies the union of every input's excludes
    format: str = "auto"  # a format spec (see logsidecar.parse) for files matched by `paths`

    @field_validator("format")
    @classmethod
    def _valid_format(cls, spec: str) -> str:
        return _check_format_spec(spec)


class StdoutFormat(StrEnum):  # mirrors logsidecar.sinks.stdout.StdoutFormat
    JSON = "json"
    PRETTY = "pretty"
    RAW = "raw"
    AUTO = "auto"


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
        """This output as keyword arguments of `cli.otlp_options.build_otlp_sink`."""
        return {
            "otlp_endpoint": self.endpoint,
            "otlp_protocol": self.protocol,
            "otlp_header": tuple(self.headers.items()),
            "otlp_ca_file": self.ca_file,
            "otlp_client_cert": self.client_cert,
            "otlp_client_key": self.client_key,
            "otlp_insecure": self.insecure,
            "otlp_compression": self.compression,
            "otlp_timeout": self.timeout,
            "otlp_batch_size": self.batch_size,
            "otlp_batch_timeout": self.batch_timeout,
            "otlp_max_retry_time": self.max_retry_time,
            "otlp_max_request_bytes": self.max_request_bytes,
        }


Output = Annotated[StdoutOutput | OtlpOutput, Field(discriminator="type")]


def _default_outputs() -> list[StdoutOutput | OtlpOutput]:
    return [StdoutOutput()]


class Settings(_Strict):
    """The effective configuration. Field names are the `tail` flags' names (and the file's keys)."""

    inputs: list[InputConfig] = []
    formats: list[str] = []  # [GLOB=]SPEC rules (what --format gives), tried before the inputs' formats
    exclude: list[str] = []
    outputs: list[Output] = Field(default_factory=_default_outputs, min_length=1)
    state_dir: str | None = None  # None: the default ($XDG_STATE_HOME/logsidecar); "none": memory only
    start_at: StartAt = StartAt.BEGINNING
    watch: WatchMode = WatchMode.AUTO
    follow_symlinks: FollowSymlinks = FollowSymlinks.WITHIN  # never | within the glob's base | anywhere
    poll_interval: Duration = 0.25
    ignore_older: Duration | None = None
    max_line_bytes: Size = 1024 * 1024
    partial_line_flush: Duration = 5.0
    timezone: TimezoneName = "local"  # of error-log times, which carry no offset
    resource: dict[str, str] = {}
    service_name: str | None = None
    drain_timeout: Duration = 8.0  # on SIGTERM: read to the end, deliver, commit, within this
    max_in_flight_lines: int = Field(6144, gt=0)
    log_format: LogStyle = LogStyle.AUTO
    log_level: Level = Level.INFO
    http_addr: HttpAddr | None = None  # None: no HTTP endpoint
    unhealthy_after: Duration = 60.0
    derive_metrics: bool = False  # also send HTTP server metrics derived from access records (OTLP)
    metrics_route_depth: int = Field(1, gt=0)  # path segments kept in http.route
    metrics_interval: Duration = 10.0  # export period of the derived metrics
    docker_metadata: Literal["auto", "on", "off"] = "auto"  # container.* resource from the socket

    @field_validator("formats")
    @classmethod
    def _valid_rules(cls, rules: list[str]) -> list[str]:
        from logsidecar.pipeline import parse_format_rule

        plain = [r for r in rules if parse_format_rule(r).pattern is None]
        if len(plain) > 1:
            raise PydanticCustomError(
                "logsidecar",
                f"more than one format for all files: {', '.join(repr(p) for p in plain)}; "
                "use GLOB=SPEC to give files different formats",
            )
        for rule in rules:
            _check_format_spec(parse_format_rule(rule).spec)
        return rules

    # -- what the runtime consumes -----------------------------------------------------------------
    def tail_options(self) -> TailOptions:
        include = tuple(p for i in self.inputs for p in i.paths)
        exclude = tuple(dict.fromkeys([*self.exclude, *(e for i in self.inputs for e in i.exclude)]))
        state_dir = (
            None if self.state_dir is None or self.state_dir.lower() == "none" else Path(self.state_dir)
        )
        return TailOptions(
            include=include,
            exclude=exclude,
            state_dir=state_dir,
            watch=self.watch,
            start_at=self.start_at,
            ignore_older_s=self.ignore_older,
            max_line_bytes=self.max_line_bytes,
            partial_line_flush_s=self.partial_line_flush,
            poll_interval_s=self.poll_interval,
            follow_symlinks=self.follow_symlinks,
        )

    def format_rules(self) -> tuple[list[tuple[str, str]], str]:
        """(GLOB, SPEC) rules in match order, and the spec for files no rule matches: feed
        `pipeline.ParserSelector([FormatRule(g, s) for g, s in rules], default_spec=default)`."""
        from logsidecar.pipeline import parse_format_rule

        rules: list[tuple[str, str]] = []
        default = "auto"
        for text in self.formats:
            rule = parse_format_rule(text)
            if rule.pattern is None:
                default = rule.spec
            else:
                rules.append((rule.pattern, rule.spec))
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
            if _is_secret_key(key):
                redact.remember(value)


# -- masking ---------------------------------------------------------------------------------------


def _is_secret_key(key: str) -> bool:
    lowered = key.lower().replace("-", "_")
    return any(hint in lowered for hint in _SECRET_KEY_HINTS)


def _mask(data: Any, parent: str = "") -> Any:
    if isinstance(data, list):
        return [_mask(v, parent) for v in data]
    if not isinstance(data, dict):
        return data
    if parent == "headers":
        return {k: MASK for k in data}
    masked = {}
    for key, value in data.items():
        if _is_secret_key(key) and value is not None:
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


# -- reading the file --------------------------------------------------------------------------------


def load_file(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse the file by its extension (.toml; .yaml, .yml, .json) into plain data, with `${VAR}`
    replaced from `env` (`$${` is a literal `${`). Raises ConfigError with a one-line reason.
    Every value a `${VAR}` brought is remembered as a secret (`logsidecar.redact`)."""
    return _load(path, env, set())


def _load(
    path: str | os.PathLike[str], env: Mapping[str, str] | None, expanded: set[tuple[Any, ...]]
) -> dict[str, Any]:
    """load_file, adding to `expanded` the key path of every value that a `${VAR}` expansion built."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise ConfigError(
            [f"{file}: unsupported file type {suffix or '(none)'!r}; expected .toml, .yaml, .yml or .json"]
        )
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError([f"{file}: larger than {MAX_CONFIG_BYTES} bytes; not a configuration file"])
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{file}: cannot read: {reason}"]) from None
    try:
        if suffix == ".toml":
            try:
                data: Any = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError([f"{file}: invalid TOML: {exc}"]) from None
        else:
            data = _load_yaml(text, file)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                [f"{file}: expected a mapping of settings at the top level, got {type(data).__name__}"]
            )
        errors: list[str] = []
        result = _expand(data, env or {}, (), errors, expanded)
    except RecursionError:  # nesting (or a recursive alias) deeper than any configuration
        raise ConfigError([f"{file}: nested too deeply; not a configuration file"]) from None
    if errors:
        raise ConfigError(errors)
    return result


def _load_yaml(text: str, file: Path) -> Any:
    """YAML (or JSON) with safe types, refusing documents whose aliases expand to more than
    MAX_CONFIG_NODES values (an alias bomb: a few lines that expand to billions of nodes)."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        expanded = _expanded_nodes(node)
        if expanded > MAX_CONFIG_NODES:
            raise ConfigError(
                [
                    f"{file}: YAML aliases expand to more than {MAX_CONFIG_NODES} values "
                    "(an alias bomb?); write the values out instead"
                ]
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{file}: invalid YAML: {problem}{where}"]) from None
    finally:
        loader.dispose()


def _expanded_nodes(root: Any) -> int:
    """How many nodes the document has once every alias is replaced by what it names, computed
    on the composed graph (an alias is the same node object; each node's size is computed once)."""
    import yaml

    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a node that contains itself (a recursive alias) counts once
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        total = min(total, MAX_CONFIG_NODES + 1)  # enough to refuse; keeps the numbers small
        sizes[id(node)] = total
        return total

    return size(root)


def _load_file_lenient(
    path: str | os.PathLike[str], env: Mapping[str, str], expanded: set[tuple[Any, ...]]
) -> tuple[dict[str, Any], list[str]]:
    """Like load_file, but unset ${VAR}s are returned as errors next to the data (so that the
    validation errors can be reported in the same run)."""
    try:
        return _load(path, env, expanded), []
    except ConfigError as exc:
        if not all("environment variable" in e for e in exc.errors):
            raise
        data = _load(path, _EveryNameSet(env), expanded)
        return data, exc.errors


class _EveryNameSet(dict[str, str]):
    """An environment in which every variable exists (unset ones read as "")."""

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env)

    def __contains__(self, name: object) -> bool:
        return True

    def __missing__(self, name: str) -> str:
        return ""


_VARIABLE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(
    data: Any,
    env: Mapping[str, str],
    loc: tuple[Any, ...],
    errors: list[str],
    expanded: set[tuple[Any, ...]],
) -> Any:
    if isinstance(data, dict):
        return {k: _expand(v, env, (*loc, k), errors, expanded) for k, v in data.items()}
    if isinstance(data, list):
        return [_expand(v, env, (*loc, i), errors, expanded) for i, v in enumerate(data)]
    if isinstance(data, str) and "$" in data:

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "${"
            if name not in env:
                errors.append(f"{_format_loc(loc)}: environment variable {name} is not set")
                return ""
            expanded.add(loc)
            # Whatever the variable holds may be a secret: never shown again, as itself.
            redact.remember(env[name], f"${{{name}}}", whole_word=True)
            return env[name]

        return _VARIABLE.sub(substitute, data)
    return data


# -- precedence ----------------------------------------------------------------------------------------

# flag name -> (top-level key, LOGSIDECAR_ variable, how the environment value is split)
_SCALARS = {
    "state_dir": "STATE_DIR",
    "start_at": "START_AT",
    "watch": "WATCH",
    "follow_symlinks": "FOLLOW_SYMLINKS",
    "poll_interval": "POLL_INTERVAL",
    "ignore_older": "IGNORE_OLDER",
    "max_line_bytes": "MAX_LINE_BYTES",
    "partial_line_flush": "PARTIAL_LINE_FLUSH",
    "timezone": "TIMEZONE",
    "drain_timeout": "DRAIN_TIMEOUT",
    "max_in_flight_lines": "MAX_IN_FLIGHT_LINES",
    "log_format": "LOG_FORMAT",
    "log_level": "LOG_LEVEL",
    "http_addr": "HTTP_ADDR",
    "unhealthy_after": "UNHEALTHY_AFTER",
    "derive_metrics": "DERIVE_METRICS",
    "metrics_route_depth": "METRICS_ROUTE_DEPTH",
    "metrics_interval": "METRICS_INTERVAL",
    "docker_metadata": "DOCKER_METADATA",
}
_LISTS = {"PATHS", "FORMAT", "EXCLUDE", "OUTPUT", "RESOURCE", "STDOUT_FORMAT", "CONFIG", "DEFAULT_PATHS"}
# OtlpOutput field -> suffix of OTEL_EXPORTER_OTLP_(LOGS_)<suffix>
_OTEL_OTLP = {
    "endpoint": "ENDPOINT",
    "protocol": "PROTOCOL",
    "ca_file": "CERTIFICATE",
    "client_cert": "CLIENT_CERTIFICATE",
    "client_key": "CLIENT_KEY",
    "compression": "COMPRESSION",
    "insecure": "INSECURE",
}
# `tail` flag name -> OtlpOutput field
_OTLP_FLAGS = {
    "otlp_endpoint": "endpoint",
    "otlp_protocol": "protocol",
    "otlp_ca_file": "ca_file",
    "otlp_client_cert": "client_cert",
    "otlp_client_key": "client_key",
    "otlp_insecure": "insecure",
    "otlp_compression": "compression",
    "otlp_timeout": "timeout",
    "otlp_batch_size": "batch_size",
    "otlp_batch_timeout": "batch_timeout",
    "otlp_max_retry_time": "max_retry_time",
    "otlp_max_request_bytes": "max_request_bytes",
}


class _Layers:
    """The raw settings being assembled, and who set each key (for error messages)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.origin: dict[tuple[Any, ...], str] = {}
        self.errors: list[str] = []

    def set(self, key: str, value: Any, origin: str) -> None:
        self.data[key] = value
        self.origin[(key,)] = origin

    def outputs(self) -> list[dict[str, Any]]:
        outputs = self.data.get("outputs")
        if outputs is None:
            outputs = self.data["outputs"] = [{"type": "stdout"}]
        return [o for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else []

    def set_output_field(self, output_type: str, key: str, value: Any, origin: str) -> None:
        """Set `key` on every output of `output_type` (flags and env address all of them)."""
        self.outputs()
        for index, output in enumerate(self.data["outputs"]):
            if isinstance(output, dict) and output.get("type", "stdout") == output_type:
                output[key] = value
                self.origin[("outputs", index, key)] = origin

    def merge_output_mapping(
        self, output_type: str, key: str, values: Mapping[str, str], origin: str
    ) -> None:
        self.outputs()
        for index, output in enumerate(self.data["outputs"]):
            if isinstance(output, dict) and output.get("type", "stdout") == output_type:
                current = output.get(key)
                output[key] = {**(current if isinstance(current, dict) else {}), **values}
                for name in values:
                    self.origin[("outputs", index, key, name)] = origin

    def select_outputs(self, types: Sequence[str], origin: str) -> None:
        current = self.outputs()
        chosen: list[dict[str, Any]] = []
        for output_type in dict.fromkeys(types):
            existing = [o for o in current if o.get("type", "stdout") == output_type]
            if not existing:
                # A new output: any error in it (an unknown type) is the selecting variable's or flag's.
                self.origin[("outputs", len(chosen))] = origin
            chosen.extend(existing or [{"type": output_type}])
        self.data["outputs"] = chosen

    def merge_mapping(self, key: str, values: Mapping[str, str], origin: str) -> None:
        current = self.data.get(key)
        merged = dict(current) if isinstance(current, dict) else {}
        merged.update(values)
        self.data[key] = merged
        for name in values:
            self.origin[(key, name)] = origin


def resolve(
    file_path: str | os.PathLike[str] | None, env: Mapping[str, str], flags: Mapping[str, Any]
) -> Settings:
    """flags > env > file > defaults, validated. Raises ConfigError listing every problem.

    `flags`: only options given on the command line, by `tail` parameter name (paths, format_rules,
    exclude, state_dir, start_at, watch, follow_symlinks, poll_interval, ignore_older, max_line_bytes,
    partial_line_flush, outputs, stdout_format, timezone, resource, drain_timeout, max_in_flight_lines,
    log_format, log_level, http_addr, unhealthy_after, derive_metrics, metrics_route_depth, metrics_interval,
    docker_metadata, service_name, otlp_*); None or () means "not given".
    """
    expanded: set[tuple[Any, ...]] = set()
    data, expansion_errors = (
        _load_file_lenient(file_path, env, expanded) if file_path is not None else ({}, [])
    )
    layers = _Layers(data)
    layers.errors.extend(expansion_errors)
    flags = {k: v for k, v in flags.items() if v is not None and v != ()}
    # Choose the outputs first: env and flags then configure the outputs that will exist.
    if "outputs" in flags:
        layers.select_outputs(list(flags["outputs"]), "--output")
    elif (env.get("LOGSIDECAR_OUTPUT") or "").strip():
        layers.select_outputs(_split_words(env["LOGSIDECAR_OUTPUT"]), "LOGSIDECAR_OUTPUT")
    _apply_env(layers, env)
    _apply_flags(layers, flags)
    if not layers.data.get("inputs") and (env.get("LOGSIDECAR_DEFAULT_PATHS") or "").strip():
        # A default below the file (the container image sets it): a mounted config's [[inputs]] or
        # LOGSIDECAR_PATHS replace it, instead of the image's paths overriding the user's file.
        layers.set("inputs", [{"paths": env["LOGSIDECAR_DEFAULT_PATHS"].split()}], "LOGSIDECAR_DEFAULT_PATHS")
    if layers.data.get("state_dir") is None:
        layers.data["state_dir"] = str(_default_state_dir(env))
    # A value from ${VAR} is shown in no error (redact hides it in text; _describe where it is).
    try:
        settings = Settings.model_validate(layers.data)
    except ValidationError as exc:
        raise ConfigError(
            [
                redact.redact(line)
                for line in layers.errors
                + [_describe(error, layers.origin, expanded) for error in exc.errors()]
            ]
        ) from None
    if layers.errors:
        raise ConfigError([redact.redact(line) for line in layers.errors])
    settings.remember_secrets()
    return settings


def _default_state_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "logsidecar"


def _split_words(text: str) -> list[str]:
    return [part for part in re.split(r"[,\s]+", text) if part]


def _key_values(
    text: str, origin: str, errors: list[str], *, percent_encoded: bool = False
) -> dict[str, str]:
    result: dict[str, str] = {}
    for member in text.split(","):
        if not member.strip():
            continue
        key, sep, value = member.partition("=")
        if not sep or not key.strip():
            errors.append(f"{origin}: expected KEY=VALUE pairs separated by commas (value not shown)")
            continue
        key, value = key.strip(), value.strip()
        result[unquote(key) if percent_encoded else key] = unquote(value) if percent_encoded else value
    return result


def _apply_env(layers: _Layers, env: Mapping[str, str]) -> None:
    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value is not None and value.strip() else None

    # Standard OTel variables first, so that LOGSIDECAR_* ones (more specific to us) win over them.
    attributes = get("OTEL_RESOURCE_ATTRIBUTES")
    if attributes:
        values = _key_values(attributes, "OTEL_RESOURCE_ATTRIBUTES", layers.errors, percent_encoded=True)
        layers.merge_mapping("resource", values, "OTEL_RESOURCE_ATTRIBUTES")
    if get("OTEL_SERVICE_NAME"):
        layers.set("service_name", env["OTEL_SERVICE_NAME"].strip(), "OTEL_SERVICE_NAME")
    for field, suffix in _OTEL_OTLP.items():
        for name in (f"OTEL_EXPORTER_OTLP_LOGS_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
            value = get(name)
            if value:
                layers.set_output_field("otlp", field, value.strip(), name)
                break
    for name in ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        value = get(name)
        if value:
            try:
                layers.set_output_field("otlp", "timeout", float(value) / 1000.0, name)
            except ValueError:
                layers.errors.append(f"{name}: expected a number of milliseconds, got {value!r}")
            break
    for name in ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"):
        value = get(name)
        if value:
            headers = _key_values(value, name, layers.errors, percent_encoded=True)
            layers.merge_output_mapping("otlp", "headers", headers, name)
            break

    for key, suffix in _SCALARS.items():
        value = get(ENV_PREFIX + suffix)
        if value is not None:
            layers.set(key, value.strip(), ENV_PREFIX + suffix)
    if get("LOGSIDECAR_PATHS"):
        layers.set("inputs", [{"paths": env["LOGSIDECAR_PATHS"].split()}], "LOGSIDECAR_PATHS")
    if get("LOGSIDECAR_FORMAT"):
        rules = [line.strip() for line in env["LOGSIDECAR_FORMAT"].splitlines() if line.strip()]
        layers.set("formats", rules, "LOGSIDECAR_FORMAT")
    if get("LOGSIDECAR_EXCLUDE"):
        layers.set("exclude", _split_words(env["LOGSIDECAR_EXCLUDE"]), "LOGSIDECAR_EXCLUDE")
    if get("LOGSIDECAR_STDOUT_FORMAT"):
        layers.set_output_field(
            "stdout", "format", env["LOGSIDECAR_STDOUT_FORMAT"].strip(), "LOGSIDECAR_STDOUT_FORMAT"
        )
    if get("LOGSIDECAR_OTLP_MAX_REQUEST_BYTES"):
        layers.set_output_field(
            "otlp",
            "max_request_bytes",
            env["LOGSIDECAR_OTLP_MAX_REQUEST_BYTES"].strip(),
            "LOGSIDECAR_OTLP_MAX_REQUEST_BYTES",
        )
    if get("LOGSIDECAR_RESOURCE"):
        pairs = _key_values(
            ",".join(_split_words(env["LOGSIDECAR_RESOURCE"])), "LOGSIDECAR_RESOURCE", layers.errors
        )
        layers.merge_mapping("resource", pairs, "LOGSIDECAR_RESOURCE")


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _apply_flags(layers: _Layers, flags: Mapping[str, Any]) -> None:
    for key in _SCALARS:
        if key in flags:
            layers.set(key, flags[key], _flag_name(key))
    if "service_name" in flags:
        layers.set("service_name", flags["service_name"], "--service-name")
    if "paths" in flags:
        layers.set("inputs", [{"paths": list(flags["paths"])}], "PATH_OR_GLOB")
    if "format_rules" in flags:
        layers.set("formats", [_rule_text(r) for r in flags["format_rules"]], "--format")
    if "exclude" in flags:
        layers.set("exclude", list(flags["exclude"]), "--exclude")
    if "stdout_format" in flags:
        layers.set_output_field("stdout", "format", str(flags["stdout_format"]), "--stdout-format")
    if "resource" in flags:
        layers.merge_mapping("resource", dict(flags["resource"]), "--resource")
    for flag, field in _OTLP_FLAGS.items():
        if flag in flags:
            layers.set_output_field("otlp", field, flags[flag], _flag_name(flag))
    if "otlp_header" in flags:
        layers.merge_output_mapping("otlp", "headers", dict(flags["otlp_header"]), "--otlp-header")


def _rule_text(rule: Any) -> str:
    """A FormatRule (from the click type) or its text."""
    if isinstance(rule, str):
        return rule
    return f"{rule.pattern}={rule.spec}" if rule.pattern is not None else str(rule.spec)


def flags_from_click(ctx: Any) -> dict[str, Any]:
    """The parameters of a click context that were given on the command line (not defaults, not
    click's own envvar reading: `resolve` reads the environment itself, in the documented order)."""
    from click.core import ParameterSource

    return {
        name: value
        for name, value in ctx.params.items()
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }


def unknown_env_vars(env: Mapping[str, str]) -> list[str]:
    """LOGSIDECAR_* variables that nothing reads (a typo would otherwise be silently ignored)."""
    known = {ENV_PREFIX + s for s in (*_SCALARS.values(), *_LISTS)}
    return sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known)


# -- error messages --------------------------------------------------------------------------------


def _format_loc(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def _expected_list(expected: str) -> str:
    items = re.findall(r"'([^']*)'", expected)
    return ", ".join(items) if items else expected


def _describe(
    error: Mapping[str, Any],
    origin: Mapping[tuple[Any, ...], str],
    expanded: set[tuple[Any, ...]] = frozenset(),  # type: ignore[assignment]
) -> str:
    # Drop the union tag pydantic inserts after a list index (outputs[0].otlp.endpoint).
    loc = [
        p
        for i, p in enumerate(error["loc"])
        if not (i > 0 and isinstance(error["loc"][i - 1], int) and p in ("stdout", "otlp"))
    ]
    where = _format_loc(loc)
    for end in range(len(loc), 0, -1):
        if tuple(loc[:end]) in origin:
            where = origin[tuple(loc[:end])]
            if "headers" in loc[:-1]:  # a flag or variable sets several: say which one
                where += f" (header {loc[loc.index('headers') + 1]!r})"
            break
    key_error = bool(loc) and loc[-1] == "[key]"  # a key's name is shown: it is no secret
    secret = (
        "headers" in loc
        or any(isinstance(p, str) and _is_secret_key(p) for p in loc)
        or any(_overlaps(tuple(loc), e) for e in expanded)
    )
    value = error.get("input")
    shown = "" if secret else f", got {value!r}"
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "logsidecar":
        message = error["msg"]
        if secret and not key_error and isinstance(value, str) and value:
            message = message.replace(repr(value), "(value not shown)")
    elif kind == "extra_forbidden":
        message = f"unknown key; expected one of: {', '.join(sorted(_model_at(error['loc']).model_fields))}"
    elif kind == "missing":
        message = "required"
    elif kind in ("literal_error", "enum"):
        message = f"unknown value {value!r}; expected one of: {_expected_list(str(ctx.get('expected', '')))}"
        if secret:
            message = f"unknown value; expected one of: {_expected_list(str(ctx.get('expected', '')))}"
    elif kind == "union_tag_invalid":
        message = f"unknown output type {ctx.get('tag')!r}; expected one of: {_expected_list(str(ctx.get('expected_tags', '')))}"
    elif kind == "union_tag_not_found":
        message = "missing 'type'; expected one of: otlp, stdout"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        message = f"expected an integer{shown}"
    elif kind in ("float_parsing", "float_type"):
        message = f"expected a number{shown}"
    elif kind in ("bool_parsing", "bool_type"):
        message = f"expected true or false{shown}"
    elif kind == "string_type":
        message = f"expected a string{shown}"
    elif kind == "list_type":
        message = f"expected a list{shown}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"expected a table of settings{shown}"
    elif kind == "too_short":
        message = "must not be empty"
    elif kind == "greater_than":
        message = f"must be greater than {ctx.get('gt')}{shown}"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"


def _overlaps(loc: tuple[Any, ...], other: tuple[Any, ...]) -> bool:
    """One key path is the other or inside it."""
    shorter = min(len(loc), len(other))
    return shorter > 0 and loc[:shorter] == other[:shorter]


def _model_at(loc: Sequence[Any]) -> type[BaseModel]:
    """The model whose key is `loc[-1]` (for "expected one of" in unknown-key errors)."""
    nested: dict[str, type[BaseModel]] = {"inputs": InputConfig, "stdout": StdoutOutput, "otlp": OtlpOutput}
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        if isinstance(part, str) and part in nested:
            model = nested[part]
    return model
