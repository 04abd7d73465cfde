"""The per-format record builder of `AccessLogParser`: Python source generated from the fields.

`generate_builder` writes one function, `build(rows, bodies, observed) -> list[LogRecord]`, for a
compiled LogFormat: straight-line code per field (constant keys, no per-field dispatch), in the
order of the format. A row is the batch regex's tuple (the fields, then the "unmatched" slot); a
row that is None or flagged unmatched is re-matched with the strict regex (`exact_row`), and a line
that still fails goes to `unmatched`. Keys and constants enter the source through repr(), so any
header name is safe; no user text becomes code. `explain` (and `logsidecar parse --explain`)
prints the source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from logsidecar.parse.codegen import Emitter
from logsidecar.parse.escape import unescape_log_value
from logsidecar.parse.fields import (
    DURATION,
    HEXINT,
    INT,
    PROTOCOL,
    QUERY,
    REQUEST,
    STATUS,
    STR,
    TIME,
    USER,
    VALUE,
    FieldSpec,
    bounded_duration,
    bounded_int,
)
from logsidecar.parse.request_line import PROTOCOL_TABLE, protocol_info, request_attributes
from logsidecar.record import FORMAT, INVALID_UTF8, PARSE_ERROR, TIME_ORIGINAL, LogRecord, Severity

__all__ = ["Builder", "generate_builder", "status_info", "synthesizes_url_original"]

Builder = Callable[[Sequence[tuple[str, ...] | None], list[str], datetime], list[LogRecord]]

_SEVERITY_BY_CLASS = {
    "5": ("ERROR", int(Severity.ERROR)),
    "4": ("WARN", int(Severity.WARN)),
}
_INFO = ("INFO", int(Severity.INFO))

# Decimal digits that always fit in 64 bits (int() directly); longer values go through a bounded
# conversion (beyond 64 bits they stay text). Hex digits likewise: 15 always fit.
INT_FAST_DIGITS = 18
HEX_FAST_DIGITS = 15


def status_info(text: str) -> tuple[int, str, int]:
    """'404' → (404, 'WARN', 13): the status code with the severity it implies."""
    sev_text, sev_number = _SEVERITY_BY_CLASS.get(text[:1], _INFO) if len(text) == 3 else _INFO
    return int(text), sev_text, sev_number


STATUS_TABLE = {str(code): status_info(str(code)) for code in range(100, 1000)}

# Positional construction is measurably cheaper in the hot loop; fall back to keywords if
# LogRecord's field order ever changes. Passing `{}` for resource skips the factory call.
_POSITIONAL_FIELDS = ("body", "attributes", "timestamp", "observed_timestamp", "severity_text",
                      "severity_number", "resource")  # fmt: skip
if tuple(f.name for f in dataclasses.fields(LogRecord))[:7] == _POSITIONAL_FIELDS:
    _RECORD_CALL = "LogRecord(body, a, ts, observed, sev_text, sev_number, {})"
else:  # pragma: no cover - only if record.py changes
    _RECORD_CALL = (
        "LogRecord(body=body, attributes=a, timestamp=ts, observed_timestamp=observed,"
        " severity_text=sev_text, severity_number=sev_number)"
    )


def synthesizes_url_original(specs: Sequence[FieldSpec]) -> bool:
    """%U%q without %r: url.original is computed from two fields, as the request line would give it."""
    claimed = {k for s in specs for k in s.keys}
    return "url.original" not in claimed and any(
        s.directive.name == "U" and s.keys == ("url.path",) for s in specs
    )


def generate_builder(
    specs: Sequence[FieldSpec], time_specs: Sequence[FieldSpec], format_name: str, hooks: dict[str, Any]
) -> tuple[Builder, str]:
    """The compiled builder and its source. `hooks` are the parser's callables the code calls:
    bad_time, time_get, time_parse, unmatched, exact_row, request_get, request_cached."""
    emit = Emitter()
    names = [f"v{number}" for number in range(len(specs))]
    unpack = ", ".join([*names, "bad"]) + " = row"
    escapes_possible = any(spec.escapable for spec in specs if spec.kind != TIME and spec.keys) or any(
        spec.kind == REQUEST and spec.keys for spec in specs
    )
    time_vars = [names[n] for n, spec in enumerate(specs) if spec.kind == TIME and spec in time_specs]
    with emit.block("def build(rows, bodies, observed):"):
        emit.line("out = []", "append = out.append")
        with emit.block("for body, row in zip(bodies, rows):"):
            with emit.block("if row is None:"):
                emit.line("append(unmatched(body, observed))", "continue")
            emit.line(unpack)
            with emit.block("if bad or not body:"):  # the fast pattern rejected it: the strict regex
                emit.line("row = exact_row(body)")
                with emit.block("if row is None:"):
                    emit.line("append(unmatched(body, observed))", "continue")
                emit.line(unpack)
            emit.line("a = {FORMAT: format_name}", "sev_text = 'INFO'", "sev_number = 9")
            if escapes_possible:
                emit.line("esc = '\\\\' in body")
            for var, spec in zip(names, specs, strict=True):
                if spec.kind != TIME and spec.keys:
                    _emit_field(emit, var, spec)
            if synthesizes_url_original(specs):
                with emit.block("if 'url.path' in a:"):
                    emit.line(
                        "a['url.original'] = a['url.path'] + '?' + a['url.query'] if 'url.query' in a"
                        " else a['url.path']"
                    )
            _emit_time(emit, time_vars)
            emit.line(f"append({_RECORD_CALL})")
        emit.line("return out")
    namespace: dict[str, Any] = {
        "FORMAT": FORMAT,
        "INVALID_UTF8": INVALID_UTF8,
        "PARSE_ERROR": PARSE_ERROR,
        "TIME_ORIGINAL": TIME_ORIGINAL,
        "format_name": format_name,
        "LogRecord": LogRecord,
        "unescape": unescape_log_value,
        "status_get": STATUS_TABLE.get,
        "bounded_int": bounded_int,
        "bounded_duration": bounded_duration,
        "status_info": status_info,
        "proto_get": PROTOCOL_TABLE.get,
        "protocol_info": protocol_info,
        "request_attributes": request_attributes,
        **hooks,
    }
    build = emit.compile("build", namespace, f"<logformat {format_name}>")
    return build, emit.source()


def _emit_unescape(emit: Emitter, var: str, spec: FieldSpec) -> None:
    """Apache's escapes (`\\"`, `\\xhh` ...) undone, for a field that can hold them."""
    if spec.escapable:
        with emit.block(f"if esc and '\\\\' in {var}:"):
            emit.line(f"{var}, ok = unescape({var})")
            with emit.block("if not ok:"):
                emit.line("a[INVALID_UTF8] = True")


def _emit_field(emit: Emitter, var: str, spec: FieldSpec) -> None:
    key = repr(spec.keys[0])
    kind = spec.kind
    if kind == STR:
        with emit.block(f"if {var} != '-':"):
            _emit_unescape(emit, var, spec)
            emit.line(f"a[{key}] = {var}")
    elif kind == USER:  # `""` is how httpd writes an empty user name
        with emit.block(f"if {var} == '\"\"':"):
            emit.line(f"a[{key}] = ''")
        with emit.block(f"elif {var} != '-':"):
            _emit_unescape(emit, var, spec)
            emit.line(f"a[{key}] = {var}")
    elif kind == VALUE:  # never empty in a matched line; '' only in the fast path's blank rows
        with emit.block(f"if {var}:"):
            emit.line(f"a[{key}] = {var}")
    elif kind == INT:
        with emit.block(f"if {var} != '-':"):
            emit.line(f"a[{key}] = int({var}) if len({var}) <= {INT_FAST_DIGITS} else bounded_int({var})")
    elif kind == HEXINT:
        with emit.block(f"if {var} != '-':"):
            emit.line(
                f"a[{key}] = int({var}, 16) if len({var}) <= {HEX_FAST_DIGITS} else bounded_int({var}, 16)"
            )
    elif kind == DURATION:
        divisor = round(1 / spec.scale)
        # int / int is exact for the digits a duration has; beyond 64 bits they stay text
        expr = (
            f"(float({var}) if len({var}) <= {INT_FAST_DIGITS} else bounded_duration({var}, 1))"
            if divisor == 1
            else f"(int({var}) / {divisor} if len({var}) <= {INT_FAST_DIGITS}"
            f" else bounded_duration({var}, {divisor}))"
        )
        with emit.block(f"if {var} != '-':"):
            emit.line(f"a[{key}] = {expr}")
    elif kind == QUERY:
        with emit.block(f"if {var} and {var} != '-':"):
            _emit_unescape(emit, var, spec)
            emit.line(f"a[{key}] = {var}[1:] if {var}[0] == '?' else {var}")
    elif kind == STATUS:
        with emit.block(f"if {var} != '-':"):
            emit.line(f"st = status_get({var}) or status_info({var})", f"a[{key}] = st[0]")
            if spec.keys[0] == "http.response.status_code":  # the final status sets the severity
                emit.line("sev_text = st[1]", "sev_number = st[2]")
    elif kind == PROTOCOL:
        with emit.block(f"if {var} != '-':"):
            emit.line(f"pr = proto_get({var}) or protocol_info({var})")
            with emit.block("if pr:"):
                emit.line("a['network.protocol.name'] = pr[0]")
                with emit.block("if pr[1]:"):
                    emit.line("a['network.protocol.version'] = pr[1]")
    elif kind == REQUEST:
        with emit.block(f"if {var} != '-':"):
            with emit.block(f"if esc and '\\\\' in {var}:"):
                emit.line(f"a.update(request_attributes({var}))")
            with emit.block("else:"):
                emit.line(f"rq = request_get({var})")
                with emit.block("if rq is None:"):
                    emit.line(f"rq = request_cached({var})")
                emit.line("a.update(rq)")


def _emit_time(emit: Emitter, time_vars: list[str]) -> None:
    """The timestamp, cached per distinct time text; a time that is not a real instant is flagged."""
    if not time_vars:
        emit.line("ts = None")
        return
    key = time_vars[0] if len(time_vars) == 1 else "(" + ", ".join(time_vars) + ",)"
    emit.line(f"ts = time_get({key})")
    with emit.block("if ts is None:"):
        emit.line(f"ts = time_parse({key})")
        with emit.block("if ts is None:"):
            emit.line(f"bt = bad_time({key})")
            with emit.block("if bt is not None:"):
                emit.line("a[PARSE_ERROR] = bt[0]", "a[TIME_ORIGINAL] = bt[1]")
