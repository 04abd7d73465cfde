"""The one model of every option and where values come from: `units` (durations, sizes, zones,
KEY=VALUE), `model` (Settings), `options` (each field's flag, variable and file key), `transport`
(OTLP endpoints and headers), `files` (TOML/YAML/JSON with ${VAR}), `sources` (file < env < flags),
`otel_env` (the OTEL_* variables, OTLP resolution), `errors`, `docs` (docs/configuration.md).
Without pydantic, for the running process (`logsidecar.runtime`): `resolved` (the validated settings
as plain values: what a run is built from), `values` (zones, HOST:PORT), `errors`. Kept light:
import the submodules."""
