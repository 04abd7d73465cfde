#!/usr/bin/env bash
# Build the demo's images on the local engine (idempotent; Docker's layer cache makes an unchanged
# rebuild take seconds):
#   logsidecar/logsidecar:local      docker/Dockerfile (context: repository root)
#   logsidecar/apache-demo:local     docker/apache
#   logsidecar/logvolume:local       docker/logvolume
#   logsidecar/otlp-collector:local  docker/collector (rotel + otlp-witness)
#   logsidecar/traffic:local         docker/traffic
#   logsidecar/prometheus:local      docker/prometheus (Debian's prometheus; the fleet demo only, built on request)
# The base image comes from scripts/build-base-image.sh: the official images when a registry answers,
# else a local debootstrapped Debian bookworm. pip inside the builds trusts the host's CA bundle and
# uses the host's package index, both read here from the host's pip configuration at build time
# (never written into the repository or the final images).
# Usage: bash scripts/build-images.sh [image-name ...]   (names: logsidecar apache-demo logvolume otlp-collector traffic prometheus)
set -euo pipefail
cd "$(dirname "$0")/.."

official_python="python:3.11-slim-bookworm"
base="$(bash scripts/build-base-image.sh)"
base_args=()
[ "$base" = "$official_python" ] || base_args=(--build-arg "BASE_IMAGE=$base")

# pip settings the builds need, from the host: environment first, then pip's own configuration.
pip_get() { python3 -m pip config get "$1" 2>/dev/null || true; }
ca_file="${PIP_CERT:-$(pip_get global.cert)}"
[ -n "$ca_file" ] || ca_file="${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
index_url="${PIP_INDEX_URL:-$(pip_get global.index-url)}"
case "$index_url" in http://* | https://*) ;; *) index_url="" ;; esac
pip_args=()
[ -n "$index_url" ] && pip_args+=(--build-arg "PIP_INDEX_URL=$index_url")

# Images whose build runs pip get a temporary build context: the files they need plus the host's CA
# bundle as build-ca.pem (a build arg cannot carry it: one argument is limited to 128 KiB).
tmp_contexts=()
trap 'rm -rf "${tmp_contexts[@]}"' EXIT
pip_context() { # file-or-dir ... -> prints a temporary context directory
  local dir
  dir="$(mktemp -d /tmp/logsidecar-build.XXXXXX)"
  tmp_contexts+=("$dir")
  cp -a "$@" "$dir/"
  find "$dir" -name __pycache__ -prune -exec rm -rf {} + 
  [ -r "$ca_file" ] && cp "$ca_file" "$dir/build-ca.pem"
  echo "$dir"
}
proxy_args=()
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -n "${!v:-}" ] && proxy_args+=(--build-arg "$v=${!v}")
done

build() { # name context [dockerfile] [extra args...]
  local name="$1" context="$2" dockerfile="$3"
  shift 3
  local started=$SECONDS
  echo "build-images: logsidecar/$name:local" >&2
  # The legacy builder's deprecation notice is noise here (BuildKit is not required).
  docker build -q -t "logsidecar/$name:local" -f "$dockerfile" "${base_args[@]}" "${proxy_args[@]}" "$@" "$context" 2> >(grep -v -e DEPRECATED -e 'legacy builder' -e buildx -e '^ *$' >&2) >/dev/null
  echo "build-images: logsidecar/$name:local built in $((SECONDS - started))s ($(docker image inspect -f '{{.Size}}' "logsidecar/$name:local" | awk '{printf "%.0f MB", $1 / 1e6}'))" >&2
}

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(logvolume apache-demo traffic otlp-collector logsidecar)
for name in "${wanted[@]}"; do
  case "$name" in
    logsidecar)
      ctx="$(pip_context pyproject.toml README.md logsidecar requirements)"
      build logsidecar "$ctx" docker/Dockerfile "${pip_args[@]}"
      # Tag the build stages (all cached: a second or two) so they stay as cache, then drop the
      # images that earlier builds of this Dockerfile left untagged (each source change leaves some).
      for stage in requirements wheels venv; do
        docker build -q -t "logsidecar/logsidecar-cache:$stage" --target "$stage" -f docker/Dockerfile \
          "${base_args[@]}" "${proxy_args[@]}" "${pip_args[@]}" "$ctx" >/dev/null 2>&1
      done
      docker image prune -f --filter label=io.logsidecar.build >/dev/null ;;
    apache-demo) build apache-demo docker/apache docker/apache/Dockerfile ;;
    logvolume) build logvolume docker/logvolume docker/logvolume/Dockerfile ;;
    otlp-collector)
      ctx="$(pip_context docker/collector/witness.py requirements/collector.txt)"
      build otlp-collector "$ctx" docker/collector/Dockerfile "${pip_args[@]}"
      # Keep the (untagged) venv stage as cache: an image prune would otherwise drop it.
      docker build -q -t logsidecar/otlp-collector-cache:venv --target venv -f docker/collector/Dockerfile \
        "${base_args[@]}" "${proxy_args[@]}" "${pip_args[@]}" "$ctx" >/dev/null 2>&1 ;;
    traffic) build traffic docker/traffic docker/traffic/Dockerfile ;;
    prometheus) build prometheus docker/prometheus docker/prometheus/Dockerfile ;;
    *) echo "build-images: unknown image $name" >&2; exit 2 ;;
  esac
done
