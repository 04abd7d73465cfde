#!/usr/bin/env bash
# Install what logsidecar's tests and demo need on a fresh Debian machine (idempotent, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# dnsmasq-base: a real DNS name for the gateway tests; prometheus: promtool for the alert-rule tests;
# podman (+ catatonit, its pause process): `podman kube play` of the Kubernetes manifests.
APT_PACKAGES=(apache2 apache2-utils wrk logrotate docker.io docker-compose debootstrap procps curl busybox-static fuse3
  dnsmasq-base prometheus podman catatonit)
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

# Python packages: exactly the locked versions, their hashes checked (requirements/test.txt: the runtime
# lock plus the test tools; scripts/upgrade-deps.sh refreshes it), then logsidecar itself without
# dependencies, so pip resolves nothing on its own and a new release upstream changes nothing here.
# Into whichever python3 comes first on PATH (a venv's, when one is active).
pip_install() {
  local out
  if ! out="$(python3 -m pip install -q --disable-pip-version-check "$@" 2>&1)"; then
    printf '%s\n' "$out" >&2
    echo "setup: pip install $* failed" >&2
    exit 1
  fi
  printf '%s\n' "$out" | grep -v -e '^WARNING: Location' -e 'Running pip as the' -e '^$' >&2 || true
}
pip_install --require-hashes -r requirements/test.txt
pip_install --no-deps -e .
