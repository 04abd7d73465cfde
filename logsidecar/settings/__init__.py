"""The one model of every option and where values come from: `units` (durations, sizes, zones,
KEY=VALUE), `model` (Settings), `files` (TOML/YAML/JSON with ${VAR}), `sources` (file < env < flags),
`otel_env` (the OTEL_* variables, OTLP resolution), `errors`. Kept light: import the submodules."""
