"""The running service: `plan` (settings -> parsers, sinks, options), `supervisor` (signals, reload,
drain, exit), `telemetry` (our own logs, metrics, health and the HTTP endpoint across reloads)."""
