#!/usr/bin/env bash
# Refresh the dependency lock (requirements/*.txt: exact versions with hashes) and try it: an upgrade is
# a decision, taken by committing the new lock, never something pip does to us on a fresh machine.
#
# Usage: bash scripts/upgrade-deps.sh            # newest releases within pyproject.toml's ranges
#        bash scripts/upgrade-deps.sh --keep     # keep every pin that still fits (after editing the
#                                                #   ranges in pyproject.toml or requirements/build.in)
#        bash scripts/upgrade-deps.sh [--keep] --no-test   # lock only
#        bash scripts/upgrade-deps.sh -- --ignore=tests/e2e  # pytest arguments for scripts/test.sh
# Steps:
#   1. pip-compile (pip-tools, in a throwaway venv under /tmp) writes, each with hashes:
#      requirements/runtime.txt    pyproject's dependencies (what docker/Dockerfile installs),
#      requirements/test.txt       the same pins plus the [test] extra (scripts/setup.sh, CI),
#      requirements/build.txt      the wheel build backend docker/Dockerfile uses (build.in),
#      requirements/collector.txt  the demo collector image, docker/collector (collector.in);
#   2. prints what changed (package: old -> new);
#   3. runs the whole suite (bash scripts/test.sh) in a fresh venv that installs exactly the new lock,
#      so the global environment is left alone.
# Then review the diff and commit requirements/ (or `git checkout requirements/` to drop it).
# Target: CPython 3.11 on Linux (the Docker image's python3.11 on Debian bookworm): pip-compile resolves
# for the interpreter it runs on, so python3 here must be 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."

upgrade=(--upgrade)
run_tests=1
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) upgrade=() ;;
    --no-test) run_tests=0 ;;
    --) shift; break ;;
    *) echo "usage: bash scripts/upgrade-deps.sh [--keep] [--no-test] [-- pytest args]" >&2; exit 2 ;;
  esac
  shift
done

python="${PYTHON:-python3}"
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$version" != 3.11 ]; then
  echo "upgrade-deps: $python is Python $version; the lock is for 3.11 (set PYTHON=python3.11)" >&2
  exit 2
fi

# pip-tools: the lock tool pip's own maintainers' ecosystem keeps (jazzband), reading pyproject.toml
# directly and writing plain pip requirement files with --hash lines that `pip install --require-hashes`
# checks; nothing but pip is needed to install from its output.
tools=/tmp/logsidecar-lock-tools
if [ ! -x "$tools/bin/pip-compile" ]; then
  rm -rf "$tools"
  "$python" -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check 'pip-tools==7.7.0'
fi

before="$(mktemp -d /tmp/logsidecar-lock-before.XXXXXX)"
trap 'rm -rf "$before"' EXIT
cp requirements/*.txt "$before/" 2>/dev/null || true

compile() { # output input... [pip-compile options]
  local output="$1"
  shift
  CUSTOM_COMPILE_COMMAND="bash scripts/upgrade-deps.sh" "$tools/bin/pip-compile" -q \
    --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-trusted-host \
    --no-emit-find-links --resolver=backtracking "${upgrade[@]}" --output-file "$output" "$@"
}
compile requirements/runtime.txt pyproject.toml
# The test lock is constrained by the runtime lock: the tests run against the very versions the image ships.
compile requirements/test.txt --extra test --constraint requirements/runtime.txt pyproject.toml
compile requirements/build.txt requirements/build.in
compile requirements/collector.txt requirements/collector.in

echo "upgrade-deps: changes (package: old -> new):"
pins() { # name version, names in their canonical form (PEP 503), sorted for join
  awk -F'==' '/^[A-Za-z0-9]/ && /==/ {n = tolower($1); gsub(/[-_.]+/, "-", n); split($2, v, " "); print n, v[1]}' \
    "$1" 2>/dev/null | sort
}
changed=0
for lock in runtime test build collector; do
  while read -r line; do
    echo "  $lock: $line"
    changed=1
  done < <(join -a1 -a2 -e '-' -o 0,1.2,2.2 <(pins "$before/$lock.txt") <(pins "requirements/$lock.txt") |
    awk '$2 != $3 {print $1 ": " $2 " -> " $3}')
done
[ "$changed" = 1 ] || echo "  (none)"

[ "$run_tests" = 1 ] || exit 0
# A fresh venv with exactly the lock, then the whole suite in it (scripts/test.sh installs the lock
# into whichever python3 comes first on PATH).
venv="$(mktemp -d /tmp/logsidecar-upgrade-venv.XXXXXX)"
trap 'rm -rf "$before" "$venv"' EXIT
"$python" -m venv "$venv"
echo "upgrade-deps: running the suite in $venv"
PATH="$venv/bin:$PATH" bash scripts/test.sh "$@"
