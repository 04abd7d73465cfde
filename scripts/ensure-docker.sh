#!/usr/bin/env bash
# Make a Docker engine answer on this machine (idempotent, as root):
#   1. install Debian's docker.io + docker-compose when the client or compose is missing;
#   2. start dockerd in the background when no engine answers (no systemd needed);
#   3. wait until `docker info` answers, or fail after LOGSIDECAR_DOCKER_WAIT_S seconds.
# The daemon's log goes to /var/log/logsidecar-dockerd.log.
set -euo pipefail

wait_s="${LOGSIDECAR_DOCKER_WAIT_S:-90}"
log=/var/log/logsidecar-dockerd.log

need=()
command -v docker >/dev/null 2>&1 || need+=(docker.io)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  need+=(docker-compose)
fi
if ((${#need[@]})); then
  echo "ensure-docker: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl start docker || true
  fi
fi
if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "ensure-docker: starting dockerd (log: $log)" >&2
  # containerd is started by dockerd itself when not running; setsid detaches it from our session
  # so the engine outlives this script and the test run that called it.
  setsid nohup dockerd >>"$log" 2>&1 </dev/null &
fi

for ((i = 0; i < wait_s * 2; i++)); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "ensure-docker: the engine did not answer within ${wait_s}s; last lines of $log:" >&2
tail -n 30 "$log" >&2 || true
exit 1
