"""The JSON-lines dialect of the fast path (`encoder.py`): stdout JSON written straight from access-log rows.

Each fast line is one f-string: constant text (`{"timestamp":`, the format attribute, the stamped
path/name/uid head, the resource) around the fields' pieces. On a fast line (no backslash, no
control character) a quote is the only character JSON escapes, so the body is escaped for the
whole batch with one `str.replace`, and quoted fields (fast pattern `[^"]*+`) are written as they
are. Other text goes through `json`'s C string escaper, which escapes exactly what orjson escapes.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from logsidecar.fastpath.batch_scan import offset_hex_list
from logsidecar.fastpath.encoder import DirectEncoder, HasCompiledFormat
from logsidecar.parse.access import CompiledFormat
from logsidecar.parse.access_builder import INT_FAST_DIGITS
from logsidecar.parse.codegen import Emitter
from logsidecar.parse.escape import unescape_log_value
from logsidecar.parse.request_line import COMMON_METHODS, PROTOCOL_TABLE, request_attributes
from logsidecar.record import FORMAT, LogRecord, encode_json
from logsidecar.stamp import BatchStamp

__all__ = ["JsonDialect", "json_encoder_for"]

# The C string escaper behind json.dumps: escapes '"', '\\' and control characters like orjson,
# leaves other characters as they are, and returns str (orjson returns bytes).
_json_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class JsonDialect:
    batch_arguments: tuple[str, ...] = ("head", "uid_head", "tail")
    bytes_rows = False  # the output is text: rows of str go into f-strings as they are
    no_time = "null"
    default_severity = '"severity_text":"INFO","severity_number":9'

    def __init__(self, format_name: str) -> None:
        self.format_name = format_name
        # Request-line pieces of the common methods and protocols, as `request_piece` writes them.
        self._method_texts = {m: f',"http.request.method":"{m}"' for m in COMMON_METHODS}
        self._protocol_texts = {
            p: "".join(f",{_json(k)}:{_json(v)}" for k, v in request_attributes(f"GET / {p}").items()
                       if k.startswith("network.protocol."))
            for p in PROTOCOL_TABLE
        }  # fmt: skip

    def namespace(self) -> dict[str, Any]:
        return {
            "enc": _json_string,
            "OPEN": '{"timestamp":',
            "BODY": ',"body":"',
            "FORMAT_HEAD": f'","attributes":{{{_json(FORMAT)}:{_json(self.format_name)}',
        }

    def text_field(
        self, emit: Emitter, number: int, var: str, key: str, quote_free: bool, namespace: dict[str, Any]
    ) -> None:
        key_text = f",{_json(key)}:"
        if quote_free:  # nothing to escape: the text goes into an f-string as it is
            emit.line(f"p{number} = '' if {var} == '-' else f'{key_text}\"{{{var}}}\"'")
        else:
            # On a fast line (no backslash, no control character) a quote is all there is to escape.
            emit.line(
                f"p{number} = '' if {var} == '-' else f'{key_text}\"{{{var}}}\"' if '\"' not in {var} "
                f"else {key_text!r} + enc({var})"
            )

    def int_field(
        self,
        emit: Emitter,
        number: int,
        var: str,
        key: str,
        namespace: dict[str, Any],
        to_slow: Callable[[Emitter], None],
    ) -> None:
        # Digits without a leading zero are their own JSON; anything else goes through int() (the
        # regex takes ASCII digits only; the isascii() check keeps this true whatever it becomes).
        # Beyond INT_FAST_DIGITS the int may not fit 64 bits: the line takes the ordinary path (text).
        key_text = f",{_json(key)}:"
        with emit.block(f"if {var} == '-':"):
            emit.line(f"p{number} = ''")
        with emit.block(f"elif len({var}) > {INT_FAST_DIGITS}:"):
            to_slow(emit)
        with emit.block(f"elif {var}.isascii() and ({var}[0] != '0' or len({var}) == 1):"):
            emit.line(f"p{number} = f'{key_text}{{{var}}}'")
        with emit.block("else:"):
            emit.line(f"p{number} = f'{key_text}{{int({var})}}'")

    def attributes_piece(self, attributes: dict[str, Any]) -> str:
        # One orjson call for the whole dict (its members, without the braces), not one per item.
        return "," + _json(attributes)[1:-1] if attributes else ""

    def request_piece(self, line: str) -> str:
        if line == "-":
            return ""
        parts = line.split(" ")
        # The common shape, written straight (the text the general path gives). A quote can be in
        # an unquoted %r; it needs escaping, which the general path does.
        if len(parts) == 3 and parts[1] and '"' not in line:
            method = self._method_texts.get(parts[0])
            protocol = self._protocol_texts.get(parts[2])
            if method is not None and protocol is not None:
                target = parts[1]
                if "?" not in target:
                    return f'{method},"url.original":"{target}","url.path":"{target}"{protocol}'
                path, _, query = target.partition("?")
                return (
                    f'{method},"url.original":"{target}","url.path":"{path}","url.query":"{query}"{protocol}'
                )
        return self.attributes_piece(request_attributes(line))

    def severity_piece(self, text: str | None, number: int) -> str:
        return f'"severity_text":{_json(text)},"severity_number":{number}'

    def time_piece(self, moment: datetime | None) -> str:
        return "null" if moment is None else _json(moment)

    def line(self, emit: Emitter, pieces: list[str], severity: str, uid_offset: str) -> None:
        text = (
            "{OPEN}{tp}{head}{"
            + severity
            + "}{BODY}{body}{FORMAT_HEAD}"
            + "".join("{" + p + "}" for p in pieces)
            + "{uid_head}{"
            + uid_offset
            + "}{tail}"
        )
        emit.line(f"append(f{text!r})")

    def bodies(self, text: str | None, lines: Sequence[bytes]) -> list[str]:
        # Fast lines hold no backslash and no control character: a quote is all JSON escapes.
        assert text is not None
        return text.replace('"', '\\"').split("\n")

    def offsets(self, end_offsets: Sequence[int]) -> list[str]:
        return offset_hex_list(end_offsets)

    def batch_values(self, observed: datetime, stamp: BatchStamp) -> tuple[str, str, str]:
        head = f',"observed_timestamp":{_json(observed)},'
        tail = f'"}},"resource":{stamp.json_resource()}}}\n'
        return head, stamp.json_uid_head(), tail

    def unescape(self, value: str) -> tuple[str, bool]:
        return unescape_log_value(value)

    def text_value(self, emit: Emitter, number: int, var: str, key: str, namespace: dict[str, Any]) -> None:
        emit.line(f"p{number} = {f',{_json(key)}:'!r} + enc({var})")

    def escaped_bodies(self, lines: Sequence[bytes], indices: Sequence[int]) -> list[str]:
        return [_json_string(lines[index].decode())[1:-1] for index in indices]

    def escaped_encoding(self, item: str) -> bytes:
        return item.encode()

    def record_encodings(self, records: list[LogRecord], observed: datetime) -> list[bytes]:
        return [encode_json(record) + b"\n" for record in records]

    def assemble(self, out: list[Any], done: list[int], encodings: list[bytes]) -> bytes:
        if not done:
            return "".join(out).encode()
        # Lines written apart may hold non-ASCII text (unescaped \xhh); joining them into the fast
        # lines' str would widen the whole batch. Fast runs are joined and encoded apart, then spliced.
        parts: list[bytes] = []
        previous = 0
        for index, encoding in zip(done, encodings, strict=True):
            if index > previous:
                parts.append("".join(out[previous:index]).encode())
            parts.append(encoding)
            previous = index + 1
        parts.append("".join(out[previous:]).encode())
        return b"".join(parts)


def json_encoder_for(parser: HasCompiledFormat) -> DirectEncoder | None:
    """The direct JSON-lines writer for `parser`'s format, or None when the format needs the ordinary path."""
    compiled: CompiledFormat = parser.compiled
    return DirectEncoder.build(compiled, JsonDialect(compiled.format_name))
