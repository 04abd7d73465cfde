#!/usr/bin/env bash
# Install what logsidecar's tests and demo need on a fresh Debian machine (idempotent, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(apache2 apache2-utils wrk logrotate docker.io docker-compose debootstrap procps curl busybox-static)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The apt package enables and starts apache2 where systemd runs; our tests start their own instances.
python3 -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v -e '^WARNING: Location' -e 'Running pip as the' || true
