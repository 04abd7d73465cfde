"""The OTLP dialect of the fast path (`encoder.py`): protobuf `LogRecord`s written straight from access-log rows.

Each fast line becomes the bytes `LogsRequestEncoder` would write for its stamped record (one
`ScopeLogs.log_records` field: tag, length, message), joined from constant pieces (the format
attribute, the stamped path/name/uid head, the observed time) and the fields' pieces. The body is
the line's own bytes. Rows are bytes: the batch regex runs over the raw bytes of an ASCII batch
(other batches take the record path), so values need no decoding and no re-encoding. Text
attributes are written flat
(`KeyValue{key, AnyValue{string_value}}` with one-byte lengths) from a per-key table of heads.
The sink wraps a batch's records in one ResourceLogs/ScopeLogs (`LogsRequestEncoder.encode_records`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from logsidecar.encoding.otlp_wire import (
    SMALL_VARINTS,
    TAG_ATTRIBUTE,
    TAG_BODY,
    TAG_INT,
    TAG_LEN_1,
    TAG_LEN_2,
    TAG_OBSERVED_TIME,
    TAG_SEVERITY_NUMBER,
    TAG_SEVERITY_TEXT,
    TAG_TIME,
    LogsRequestEncoder,
    datetime_to_unix_nano,
    encode_key_value,
    field,
    pack_fixed64,
    string_value,
    varint,
)
from logsidecar.fastpath.batch_scan import offset_hex_list
from logsidecar.fastpath.encoder import PIECE_CACHE_MAX, DirectEncoder, HasCompiledFormat
from logsidecar.parse.access import CompiledFormat
from logsidecar.parse.access_builder import INT_FAST_DIGITS
from logsidecar.parse.codegen import Emitter
from logsidecar.parse.escape import unescape_log_value
from logsidecar.parse.fields import bounded_int
from logsidecar.parse.request_line import COMMON_METHODS, PROTOCOL_TABLE, request_attributes
from logsidecar.record import FORMAT, HOST_PATH, LOG_FILE_NAME, LOG_FILE_PATH, LOG_RECORD_UID, LogRecord
from logsidecar.stamp import BatchStamp

__all__ = ["OtlpDialect", "otlp_encoder_for"]

# Text values shorter than this have one-byte lengths at every level of their KeyValue.
_FLAT_MAX = 120
_URL_ORIGINAL, _URL_PATH, _URL_QUERY = "url.original", "url.path", "url.query"
# A uid is 32 hex digits.
_UID_LENGTH = 32
# A varint of a 64-bit value takes up to 10 bytes.
_MAX_VARINT_BYTES = 10


def _flat_heads(key: str) -> list[bytes]:
    """For each value length n < _FLAT_MAX: the bytes of a text KeyValue before its value."""
    prefix = string_value(key)
    return [
        TAG_ATTRIBUTE + SMALL_VARINTS[len(prefix) + n + 4] + prefix + TAG_LEN_2 + SMALL_VARINTS[n + 2]
        + TAG_LEN_1 + SMALL_VARINTS[n]
        for n in range(_FLAT_MAX)
    ]  # fmt: skip


def _text_key_value(key_prefix: bytes, data: bytes) -> bytes:
    return field(TAG_ATTRIBUTE, key_prefix + field(TAG_LEN_2, field(TAG_LEN_1, data)))


def _long_head(key_prefix: bytes, length: int, cache: dict[int, bytes]) -> bytes:
    """The bytes of a text KeyValue before a value of `length` bytes (any length), kept in `cache`."""
    if len(cache) >= PIECE_CACHE_MAX:
        cache.clear()
    head = cache[length] = _text_key_value(key_prefix, bytes(length))[:-length]
    return head


def _bounded_int_key_value(key: str, value: bytes) -> bytes:
    return encode_key_value(TAG_ATTRIBUTE, key, bounded_int(value.decode()))


def _body_head(length: int) -> bytes:
    inner = varint(length)
    return TAG_BODY + varint(length + 1 + len(inner)) + TAG_LEN_1 + inner


class OtlpDialect:
    batch_arguments: tuple[str, ...] = ("stamp_head", "observed")
    bytes_rows = True  # values go into the message as the bytes the line holds
    no_time = b""

    def __init__(self, format_name: str) -> None:
        self.format_name = format_name
        self.default_severity = self.severity_piece("INFO", 9)
        self._record_encoder = LogsRequestEncoder({})  # for the slow lines' records
        self._flat_heads: dict[str, list[bytes]] = {}  # request-line attribute name → heads
        self._url_heads = (_flat_heads(_URL_ORIGINAL), _flat_heads(_URL_PATH), _flat_heads(_URL_QUERY))
        # Request-line pieces of the common methods and protocols, as `request_piece` writes them.
        self._method_pieces = {
            m.encode(): encode_key_value(TAG_ATTRIBUTE, "http.request.method", m) for m in COMMON_METHODS
        }
        self._protocol_pieces = {
            p.encode(): self.attributes_piece(
                {
                    k: v
                    for k, v in request_attributes(f"GET / {p}").items()
                    if k.startswith("network.protocol.")
                }
            )
            for p in PROTOCOL_TABLE
        }

    def namespace(self) -> dict[str, Any]:
        body_heads: dict[int, bytes] = {}

        def body_head(length: int) -> bytes:
            if len(body_heads) >= PIECE_CACHE_MAX:
                body_heads.clear()
            head = body_heads[length] = _body_head(length)
            return head

        return {
            "SMALL": SMALL_VARINTS,
            "varint": varint,
            "RECORD": TAG_LEN_2,
            "FORMAT_KV": encode_key_value(TAG_ATTRIBUTE, FORMAT, self.format_name),
            "bget": body_heads.get,
            "bhead": body_head,
            "join": b"".join,
        }

    def text_field(
        self, emit: Emitter, number: int, var: str, key: str, quote_free: bool, namespace: dict[str, Any]
    ) -> None:
        with emit.block(f"if {var} == b'-':"):
            emit.line(f"p{number} = b''")
        with emit.block("else:"):
            self.text_value(emit, number, var, key, namespace)

    def int_field(
        self,
        emit: Emitter,
        number: int,
        var: str,
        key: str,
        namespace: dict[str, Any],
        to_slow: Callable[[Emitter], None],
    ) -> None:
        # KeyValue{key, AnyValue{int_value}} for up to INT_FAST_DIGITS: a per-key head for each varint
        # length, then the varint. Longer values go through `bounded_int` (they may not fit 64 bits).
        prefix = string_value(key)
        namespace[f"I{number}"] = [
            TAG_ATTRIBUTE + varint(len(prefix) + 3 + n) + prefix + TAG_LEN_2 + varint(1 + n) + TAG_INT
            for n in range(_MAX_VARINT_BYTES + 1)
        ]
        namespace["bounded_kv"] = _bounded_int_key_value
        namespace[f"KEY{number}"] = key
        with emit.block(f"if {var} == b'-':"):
            emit.line(f"p{number} = b''")
        with emit.block(f"elif len({var}) <= {INT_FAST_DIGITS}:"):
            emit.line(  # most sizes are below SMALL's bound: a list index instead of a call
                f"iv = int({var})",
                f"vb = SMALL[iv] if iv < {len(SMALL_VARINTS)} else varint(iv)",
                f"p{number} = I{number}[len(vb)] + vb",
            )
        with emit.block("else:"):
            emit.line(f"p{number} = bounded_kv(KEY{number}, {var})")

    def attributes_piece(self, attributes: dict[str, Any]) -> bytes:
        return b"".join(
            encode_key_value(TAG_ATTRIBUTE, key, value)
            for key, value in attributes.items()
            if value is not None
        )

    def request_piece(self, line: bytes) -> bytes:
        if line == b"-":
            return b""
        parts = line.split(b" ")
        if len(parts) == 3 and parts[1]:  # the common shape, written straight (same bytes as below)
            method = self._method_pieces.get(parts[0])
            protocol = self._protocol_pieces.get(parts[2])
            if method is not None and protocol is not None:
                target = parts[1]
                path, sep, query = target.partition(b"?")
                if len(target) < _FLAT_MAX:  # path and query are shorter: one-byte lengths everywhere
                    original, path_heads, query_heads = self._url_heads
                    if sep:
                        return b"".join(
                            (method, original[len(target)], target, path_heads[len(path)], path,
                             query_heads[len(query)], query, protocol)
                        )  # fmt: skip
                    return b"".join(
                        (method, original[len(target)], target, path_heads[len(path)], path, protocol)
                    )
                url = self._text(_URL_ORIGINAL, target) + self._text(_URL_PATH, path)
                if sep:
                    url += self._text(_URL_QUERY, query)
                return method + url + protocol
        return self.attributes_piece(request_attributes(line.decode()))

    def _text(self, key: str, data: bytes) -> bytes:
        """A text KeyValue (one-byte lengths from the per-key heads when short enough)."""
        heads = self._flat_heads.get(key)
        if heads is None:
            heads = self._flat_heads[key] = _flat_heads(key)
        n = len(data)
        return heads[n] + data if n < _FLAT_MAX else _text_key_value(string_value(key), data)

    def severity_piece(self, text: str | None, number: int) -> bytes:
        number_piece = TAG_SEVERITY_NUMBER + varint(number) if number else b""
        text_piece = field(TAG_SEVERITY_TEXT, text.encode("utf-8", "backslashreplace")) if text else b""
        return number_piece + text_piece

    def time_piece(self, moment: datetime | None) -> bytes:
        if moment is None:
            return b""
        return TAG_TIME + pack_fixed64(datetime_to_unix_nano(moment) & 0xFFFFFFFFFFFFFFFF)

    def line(self, emit: Emitter, pieces: list[str], severity: str, uid_offset: str) -> None:
        parts = ", ".join(
            [
                "tp",
                severity,
                "bh",
                "body",
                "FORMAT_KV",
                *pieces,
                "stamp_head",
                uid_offset,
                "observed",
            ]
        )
        emit.line("n = len(body)", "bh = bget(n)")
        with emit.block("if bh is None:"):
            emit.line("bh = bhead(n)")
        emit.line(
            f"rec = join(({parts}))",
            "n = len(rec)",
            f"append(RECORD + (SMALL[n] if n < {len(SMALL_VARINTS)} else varint(n)) + rec)",
        )

    def bodies(self, text: str | None, lines: Sequence[bytes]) -> Sequence[bytes]:
        return lines

    def offsets(self, end_offsets: Sequence[int]) -> list[bytes]:
        return offset_hex_list(end_offsets, encoded=True)

    def batch_values(self, observed: datetime, stamp: BatchStamp) -> tuple[bytes, bytes]:
        shown = stamp.shown_path or stamp.path
        stamp_head = (
            encode_key_value(TAG_ATTRIBUTE, LOG_FILE_PATH, shown)
            + encode_key_value(TAG_ATTRIBUTE, LOG_FILE_NAME, os.path.basename(shown))
            + (encode_key_value(TAG_ATTRIBUTE, HOST_PATH, stamp.path) if stamp.shown_path else b"")
            + _flat_heads(LOG_RECORD_UID)[_UID_LENGTH]
            + stamp.uid_prefix.encode()
        )
        observed_piece = TAG_OBSERVED_TIME + pack_fixed64(datetime_to_unix_nano(observed))
        return stamp_head, observed_piece

    def unescape(self, value: bytes) -> tuple[bytes, bool]:
        # Bytes rows come from ASCII batches: decoding cannot fail; an unescaped value holds no
        # surrogate, so UTF-8 is what `string_value` writes.
        text, valid = unescape_log_value(value.decode())
        return text.encode(), valid

    def text_value(self, emit: Emitter, number: int, var: str, key: str, namespace: dict[str, Any]) -> None:
        # Short values: a head per length, made up front. Longer ones (a user agent is often
        # longer): a head per length met, cached (bounded), instead of building the KeyValue.
        namespace[f"H{number}"] = _flat_heads(key)
        namespace[f"K{number}"] = string_value(key)
        namespace[f"L{number}"] = {}
        namespace["long_head"] = _long_head
        emit.line(f"n = len({var})")
        with emit.block(f"if n < {_FLAT_MAX}:"):
            emit.line(f"p{number} = H{number}[n] + {var}")
        with emit.block("else:"):
            emit.line(f"h = L{number}.get(n)")
            with emit.block("if h is None:"):
                emit.line(f"h = long_head(K{number}, n, L{number})")
            emit.line(f"p{number} = h + {var}")

    def escaped_bodies(self, lines: Sequence[bytes], indices: Sequence[int]) -> list[bytes]:
        return [lines[index] for index in indices]

    def escaped_encoding(self, item: bytes) -> bytes:
        return item

    def record_encodings(self, records: list[LogRecord], observed: datetime) -> list[bytes]:
        observed_ns = datetime_to_unix_nano(observed)
        encode = self._record_encoder.encode_record
        return [encode(record, observed_ns) for record in records]

    def assemble(self, out: list[Any], done: list[int], encodings: list[bytes]) -> list[bytes]:
        for index, encoding in zip(done, encodings, strict=True):
            out[index] = encoding
        return out


def otlp_encoder_for(parser: HasCompiledFormat) -> DirectEncoder | None:
    """The direct OTLP writer for `parser`'s format, or None when the format needs the ordinary path."""
    compiled: CompiledFormat = parser.compiled
    return DirectEncoder.build(compiled, OtlpDialect(compiled.format_name))
