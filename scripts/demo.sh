#!/usr/bin/env bash
# The main job, on a fresh machine, as root: Apache + logsidecar + a real OTLP collector via compose.
#   1. make a Docker engine answer (scripts/ensure-docker.sh installs/starts it when needed);
#   2. build the images (scripts/build-images.sh; a local Debian base when no registry answers);
#   3. `compose up` the demo (default compose/volumes-from.yml: data-only log volume container, Apache,
#      the sidecar reading the volume read-only, rotel, otlp-witness, a bounded traffic generator);
#   4. show parsed records arriving: the sidecar's stdout for DEMO_SECONDS (default 20), then what the
#      collector received, with one full record. Exits 1 if no record reached the collector.
# Usage: bash scripts/demo.sh [--variant volumes-from|named-volume|bind-mount] [--down]
#   --down  tear the demo down at the end (`down -v`); otherwise it keeps running and the commands to
#           look at it and to stop it are printed.
# Ports (loopback only): Apache APACHE_PORT (8080), collector's witness WITNESS_PORT (4319).
# Your own Apache image: APACHE_IMAGE=my/apache:tag (it must write access.log and error.log into
#   /var/log/apache2; see the README, "The official httpd image, and your own Apache container").
set -euo pipefail
cd "$(dirname "$0")/.."

variant="${DEMO_VARIANT:-volumes-from}"
teardown=0
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) variant="$2"; shift 2 ;;
    --variant=*) variant="${1#*=}"; shift ;;
    --down) teardown=1; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1" >&2; exit 2 ;;
  esac
done
file="compose/$variant.yml"
[ -f "$file" ] || { echo "demo: no such variant: $variant (see compose/)" >&2; exit 2; }
project="${DEMO_PROJECT:-logsidecar-demo}"
seconds="${DEMO_SECONDS:-20}"
export APACHE_PORT="${APACHE_PORT:-8080}" WITNESS_PORT="${WITNESS_PORT:-4319}"
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

say "1/4 Docker engine"
bash scripts/ensure-docker.sh
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
compose+=(-f "$file" -p "$project")
docker version --format 'engine {{.Server.Version}}' >&2
"${compose[@]}" version 2>/dev/null | head -n1 >&2 || true

say "2/4 images"
started=$SECONDS
bash scripts/build-images.sh
echo "images ready in $((SECONDS - started))s" >&2

say "3/4 compose up ($file, project $project)"
"${compose[@]}" up -d --no-build
"${compose[@]}" ps

say "4/4 parsed records arriving (sidecar stdout, ${seconds}s; traffic comes from the 'traffic' service)"
sidecar="$("${compose[@]}" ps -q logsidecar)"
# One readable line per record (the full JSON is what the sidecar prints; see the sample at the end).
summary_py=$(cat <<'PY'
import json, sys
for line in sys.stdin:
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if not isinstance(r, dict) or "body" not in r:
        continue
    a = r.get("attributes", {})
    if "http.request.method" in a:
        what = f"{a.get('http.response.status_code')}  {a.get('http.request.method')} {a.get('url.original', a.get('url.path'))}  <- {a.get('client.address')}"
    else:
        what = f"{r.get('severity_text')}  {str(r.get('body'))[:110]}"
    print(f"{r.get('timestamp', '')}  {what}  [{a.get('log.file.name')}]", flush=True)
PY
)
summarise() {
  if command -v python3 >/dev/null 2>&1; then python3 -u -c "$summary_py"; else cat; fi
}
timeout "$seconds" docker logs -f "$sidecar" 2>/dev/null | summarise || true

records() { curl -fsS "http://127.0.0.1:$WITNESS_PORT/records" 2>/dev/null || python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$WITNESS_PORT/records').read().decode())"; }
count="$(records | grep -c . || true)"
say "the collector (rotel -> otlp-witness) has received $count records"
if [ "${count:-0}" -eq 0 ]; then
  echo "demo: no record reached the collector; logs follow" >&2
  "${compose[@]}" logs --tail 30 >&2
  exit 1
fi
echo "one of them, as the collector received it:" >&2
records | tail -n 1 | { python3 -m json.tool 2>/dev/null || cat; }

cat >&2 <<HELP

Try it:   curl -s -o /dev/null 'http://127.0.0.1:$APACHE_PORT/index.html?hello=world'
Watch:    ${compose[*]} logs -f logsidecar collector
Records:  curl -s http://127.0.0.1:$WITNESS_PORT/records | tail -n 3
Stop:     ${compose[*]} down -v
HELP
if [ "$teardown" = 1 ]; then
  say "tearing down (down -v)"
  "${compose[@]}" down -v
fi
