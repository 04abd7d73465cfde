#!/usr/bin/env bash
# The whole test suite: unit, integration (real apache2, logrotate, rotel) and e2e (real Docker engine).
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The versions this run tests (from the lock, requirements/test.txt), on one line for the record.
echo "test: installed $(python3 -m pip freeze 2>/dev/null | grep -iE '^(watchdog|grpcio|protobuf|opentelemetry-)' | tr '\n' ' ')"
exec python3 -m pytest -q "$@" tests
