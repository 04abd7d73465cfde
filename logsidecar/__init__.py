"""logsidecar: follow Apache httpd logs, parse them into OpenTelemetry records, forward them."""

__version__ = "0.1.0"
