"""Log levels → OpenTelemetry SeverityNumber.

Apache's levels (LogLevel: emerg alert crit error warn notice info debug trace1..trace8) map as:

    emerg  → FATAL  (21)     warn   → WARN  (13)     trace1 → TRACE4 (4)
    alert  → ERROR3 (19)     notice → INFO2 (10)     trace2 → TRACE4 (4)
    crit   → ERROR2 (18)     info   → INFO   (9)     trace3 → TRACE3 (3)   trace4 → TRACE3 (3)
    error  → ERROR  (17)     debug  → DEBUG  (5)     trace5 → TRACE2 (2)   trace6 → TRACE2 (2)
                                                     trace7 → TRACE  (1)   trace8 → TRACE  (1)

The trace choice: OpenTelemetry has four TRACE numbers and Apache has eight trace levels, so they
pair up two per step. A larger SeverityNumber means "more severe", and in Apache trace1 is the
least verbose (closest to debug), so trace1/trace2 get the highest trace number (TRACE4 = 4) and
trace7/trace8, the most verbose, get TRACE (1). Ordering is preserved: a backend filter such as
"severity >= TRACE3" keeps trace1..trace4, exactly like Apache's `LogLevel trace4`.

`severity_from_name` also understands the common names other software writes in JSON logs
(warning, err, critical, fatal, panic ...), case-insensitively. Unknown names → UNSPECIFIED (0).
"""

from __future__ import annotations

from logsidecar.record import Severity

__all__ = ["APACHE_LEVELS", "apache_severity", "severity_from_name"]

APACHE_LEVELS: dict[str, Severity] = {
    "emerg": Severity.FATAL,
    "alert": Severity.ERROR3,
    "crit": Severity.ERROR2,
    "error": Severity.ERROR,
    "warn": Severity.WARN,
    "notice": Severity.INFO2,
    "info": Severity.INFO,
    "debug": Severity.DEBUG,
    "trace1": Severity.TRACE4,
    "trace2": Severity.TRACE4,
    "trace3": Severity.TRACE3,
    "trace4": Severity.TRACE3,
    "trace5": Severity.TRACE2,
    "trace6": Severity.TRACE2,
    "trace7": Severity.TRACE,
    "trace8": Severity.TRACE,
}

# Names seen in other software's structured logs (syslog, log4j, Python logging, zap, bunyan ...).
_COMMON_NAMES: dict[str, Severity] = {
    **APACHE_LEVELS,
    "emergency": Severity.FATAL,
    "fatal": Severity.FATAL,
    "panic": Severity.FATAL,
    "critical": Severity.ERROR2,
    "err": Severity.ERROR,
    "warning": Severity.WARN,
    "information": Severity.INFO,
    "informational": Severity.INFO,
    "trace": Severity.TRACE,
    "verbose": Severity.TRACE,
}


def apache_severity(level: str) -> Severity:
    """Apache's level as written (lower case) → SeverityNumber; unknown → UNSPECIFIED."""
    return APACHE_LEVELS.get(level, Severity.UNSPECIFIED)


def severity_from_name(name: str) -> Severity:
    """Any common level name, case-insensitive → SeverityNumber; unknown → UNSPECIFIED."""
    severity = _COMMON_NAMES.get(name)
    if severity is None:
        severity = _COMMON_NAMES.get(name.strip().lower(), Severity.UNSPECIFIED)
    return severity
