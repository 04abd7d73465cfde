#!/usr/bin/env bash
# The whole test suite: unit, integration (real apache2, logrotate, rotel) and e2e (real Docker engine).
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec python3 -m pytest -q "$@" tests
