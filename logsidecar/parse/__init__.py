"""Parsing: format specifications → parsers (see `base.Parser` for the contract).

Format specifications (the `--format` option):
  auto                      pick access or error per file, by name and content
  common, combined, vhost_combined, combinedio, referer, agent
                            Apache's preset LogFormats
  logformat:<LogFormat>     any mod_log_config LogFormat string, compiled
  error                     Apache error log, 2.4 default and 2.2 formats, detected per line
  errorlogformat:<fmt>      any ErrorLogFormat string, compiled
  json                      one JSON object per line
  raw                       the line as body, nothing parsed
"""

from __future__ import annotations

from datetime import UTC, tzinfo

from logsidecar.parse.base import FormatError, Parser

__all__ = ["FormatError", "Parser", "build_parser", "FORMAT_NAMES"]

ACCESS_PRESETS = ("common", "combined", "vhost_combined", "combinedio", "referer", "agent")
FORMAT_NAMES = (
    "auto",
    *ACCESS_PRESETS,
    "error",
    "json",
    "raw",
    "logformat:<LogFormat>",
    "errorlogformat:<fmt>",
)


def build_parser(spec: str, *, timezone: tzinfo = UTC, path: str | None = None) -> Parser:
    """Build a fresh parser for `spec`. `timezone` is used for times that carry no offset
    (Apache's error log); `path` (the file being parsed) lets `auto` guess by name. Raises
    FormatError with a message that names the bad part."""
    name, sep, arg = spec.partition(":")
    name = name.strip().lower()
    if name == "logformat" and sep:
        from logsidecar.parse.access import compile_logformat

        return compile_logformat(arg, timezone=timezone)
    if name == "errorlogformat" and sep:
        from logsidecar.parse.errorlog_compiled import compile_errorlogformat

        return compile_errorlogformat(arg, timezone=timezone)
    if sep:
        raise FormatError(
            f"unknown format {spec!r}: only 'logformat:' and 'errorlogformat:' take an argument"
        )
    if name in ACCESS_PRESETS:
        from logsidecar.parse.access import preset_parser

        return preset_parser(name)
    if name == "error":
        from logsidecar.parse.errorlog import ErrorLogParser

        return ErrorLogParser(timezone=timezone)
    if name == "json":
        from logsidecar.parse.simple import JsonParser

        return JsonParser()
    if name == "raw":
        from logsidecar.parse.simple import RawParser

        return RawParser()
    if name == "auto":
        from logsidecar.parse.detect import AutoParser

        return AutoParser(timezone=timezone, path=path)
    raise FormatError(f"unknown format {spec!r}; expected one of: {', '.join(FORMAT_NAMES)}")
