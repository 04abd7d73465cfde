"""HTTP server metrics derived from parsed access records (`--derive-metrics`), sent over OTLP.

- `aggregate`: which records count, their series (method, status, route, server) and the
  cumulative request counts and duration histograms.
- `export`: the totals as the SDK's `MetricsData`, the OTLP metric exporter, the export thread.
- `sink`: the `Sink` that feeds the aggregate and runs the export.

It depends on sinks (the `Sink` contract and the resolved `OtlpSettings`), never on cli: the caller
resolves the settings. Metric names and attributes: docs/metrics.md.
"""
