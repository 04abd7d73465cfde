#!/bin/sh
# Send TRAFFIC_REQUESTS requests (default 300) to TRAFFIC_TARGET (default http://apache), one every
# TRAFFIC_INTERVAL_S seconds (default 0.5), cycling through a few paths and statuses (200, 404, query
# strings), then exit. Bounded by design: a demo never sends unbounded traffic.
set -eu
target="${TRAFFIC_TARGET:-http://apache}"
total="${TRAFFIC_REQUESTS:-300}"
interval="${TRAFFIC_INTERVAL_S:-0.5}"
trap 'exit 0' TERM INT
# Wait (at most 30 s) for the server to answer before counting requests.
tries=0
until curl -s -o /dev/null "$target/"; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "traffic: $target does not answer"; exit 1; }
  sleep 0.5
done
i=0
while [ "$i" -lt "$total" ]; do
  i=$((i + 1))
  case $((i % 4)) in
    0) path="/" ;;
    1) path="/index.html?demo=$i" ;;
    2) path="/missing-$i" ;;
    3) path="/server-status?auto" ;;
  esac
  curl -s -o /dev/null -A "logsidecar-traffic/1.0" -w "traffic: %{http_code} $path\n" "$target$path" || echo "traffic: request $i failed"
  sleep "$interval"
done
echo "traffic: sent $total requests, done"
