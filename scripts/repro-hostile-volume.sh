#!/usr/bin/env bash
# Reproducers of issue 13, findings 1-5 (a hostile log directory), on real processes and the real
# Docker engine. Prints one line per case; run it on two trees to compare:
#   bash scripts/repro-hostile-volume.sh [TREE]      (TREE: the source tree to run, default: this one)
# The Docker cases take /tmp/logsidecar-docker.lock (image tags are shared) and need the engine.
set -uo pipefail
TREE="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
export PYTHONPATH="$TREE"
W="$(mktemp -d /tmp/logsidecar-repro.XXXXXX)"
trap 'rm -rf "$W"' EXIT
tail_() { (cd "$TREE" && python3 -m logsidecar tail "$@"); }
echo "== $TREE"
printf 'SECRET-LINE-%d\n' 1 2 3 > "$W/secret"

# 1/2: a link out of the followed directory (access.log -> /etc/shadow, token.log -> /run/secrets/...)
mkdir "$W/l1"; ln -s "$W/secret" "$W/l1/access.log"; echo real-line > "$W/l1/real.log"
timeout -s INT 4 bash -c "$(declare -f tail_); TREE=$TREE tail_ --format raw --state-dir none '$W/l1/*.log'" > "$W/o1" 2>/dev/null
echo "1  link to a secret outside the directory: secret lines forwarded $(grep -c SECRET-LINE "$W/o1")"

# 1: the link swapped between the real log and the secret every 0.3 s
mkdir "$W/l2"; printf 'real-%d\n' $(seq 1 50) > "$W/l2/real.data"; ln -s real.data "$W/l2/access.log"
( end=$((SECONDS + 6)); while [ $SECONDS -lt $end ]; do
    ln -sfn "$W/secret" "$W/l2/tmp" && mv -T "$W/l2/tmp" "$W/l2/access.log"; sleep 0.3
    ln -sfn real.data "$W/l2/tmp" && mv -T "$W/l2/tmp" "$W/l2/access.log"; sleep 0.3; done ) &
timeout -s INT 6 bash -c "$(declare -f tail_); TREE=$TREE tail_ --format raw --state-dir none '$W/l2/access.log'" > "$W/o2" 2>/dev/null; wait
echo "1  link swapped every 0.3 s for 6 s: secret lines forwarded $(grep -c SECRET-LINE "$W/o2")"

# 3: access.log -> /proc/self/environ: our environment (a token) in checkpoints.sqlite?
mkdir "$W/l3"; ln -s /proc/self/environ "$W/l3/access.log"; echo "GET /?t=TOPSECRET-abc" > "$W/l3/real.log"
( umask 022; OTLP_TOKEN=Bearer-ENVSECRET-42 timeout -s INT 3 bash -c "$(declare -f tail_); TREE=$TREE tail_ --format raw --follow-symlinks anywhere --state-dir '$W/s3' '$W/l3/*.log'" > /dev/null 2>&1 \
  || OTLP_TOKEN=Bearer-ENVSECRET-42 timeout -s INT 3 bash -c "$(declare -f tail_); TREE=$TREE tail_ --format raw --state-dir '$W/s3' '$W/l3/*.log'" > /dev/null 2>&1 )
echo "3  state files holding the environment token: $(cat "$W"/s3/* 2>/dev/null | grep -ac ENVSECRET), a log's first bytes: $(cat "$W"/s3/* 2>/dev/null | grep -ac TOPSECRET-abc); modes $(stat -c '%a' "$W/s3" "$W/s3/checkpoints.sqlite" | tr '\n' ' ')"

# 4: access.log -> /dev/stdout with our stdout redirected to a file
mkdir "$W/l4"; ln -s /dev/stdout "$W/l4/access.log"; echo one-real-line > "$W/l4/real.log"
timeout -s INT 4 bash -c "$(declare -f tail_); TREE=$TREE tail_ --format raw --state-dir none '$W/l4/*.log'" > "$W/o4" 2>/dev/null
echo "4  access.log -> /dev/stdout, stdout to a file, 4 s: $(stat -c %s "$W/o4") bytes written"

# 5: --dry-run on a FIFO; a FIFO moved in while tailing, with a writer blocked on it
mkdir "$W/l5"; mkfifo "$W/l5/access.log"
start=$(date +%s%N); timeout 10 bash -c "$(declare -f tail_); TREE=$TREE tail_ --dry-run '$W/l5/*.log'" > /dev/null 2>&1; rc=$?
echo "5  --dry-run on a FIFO: exit $rc after $(( ($(date +%s%N) - start) / 1000000 )) ms$([ $rc = 124 ] && echo ' (hung: killed by timeout 10)')"
mkdir "$W/l6" "$W/away"; echo x > "$W/l6/a.log"
(cd "$TREE" && exec python3 -m logsidecar tail --format raw --state-dir none "$W/l6/*.log" > /dev/null 2>&1) & TP=$!
sleep 2; mkfifo "$W/away/b.log"
( timeout 5 sh -c "echo x > '$W/away/b.log'"; echo $? > "$W/rc6" ) & sleep 0.5
mv "$W/away/b.log" "$W/l6/b.log"; wait %2 2>/dev/null; sleep 5.2
rc=$(cat "$W/rc6"); kill -INT $TP; wait $TP 2>/dev/null
echo "5  FIFO moved in while tailing: the blocked writer $([ "$rc" = 124 ] && echo 'stayed blocked (never opened)' || echo "was released (exit $rc): the FIFO was opened for reading")"

# Docker: docker attach on the host, links planted by the container in its log volume
docker info > /dev/null 2>&1 || { echo "(no Docker engine: the attach cases are skipped)"; exit 0; }
exec 9> /tmp/logsidecar-docker.lock; flock 9
IMG=$(cd "$TREE" && python3 -c "import docker; from tests.support.busybox import ensure_busybox_image as e; print(e(docker.from_env()))")
attach() { (cd "$TREE" && timeout -s INT "$1" python3 -m logsidecar docker attach "${@:2}" --format raw --state-dir "$W/ds$RANDOM") 2>/dev/null; }
mkdir "$W/hs" "$W/hd" "$W/d1" "$W/d2"; printf 'HOST-SECRET-%d\n' 1 2 3 > "$W/hs/shadow"; printf 'HOST-DIR-%d\n' 1 2 > "$W/hd/s.log"
C1=$(docker run -d -v "$W/d1:/var/log/apache2" "$IMG" sh -c "cd /var/log/apache2 && echo real > error.log && busybox ln -s $W/hs/shadow access.log && mkdir site && echo real > site/x.log && busybox ln -s $W/hd apache2 && sleep 600")
sleep 1
echo "1  docker attach, access.log -> host secret planted: secret lines forwarded $(attach 6 "$C1" | grep -c HOST-SECRET)"
echo "1  docker attach --path '/var/log/apache2/*/*.log', apache2 -> host dir: secret lines forwarded $(attach 6 "$C1" --path '/var/log/apache2/*/*.log' | grep -c HOST-DIR)"
C2=$(docker run -d -v "$W/d2:/var/log/apache2" "$IMG" sh -c "cd /var/log/apache2; while true; do echo real >> real.data; busybox ln -sfn $W/hs/shadow access.log; sleep 0.3; busybox ln -sfn real.data access.log; sleep 0.3; done")
echo "1  docker attach, the container swaps the link every 0.3 s, 8 s: secret lines forwarded $(attach 8 "$C2" | grep -c HOST-SECRET)"
docker rm -f "$C1" "$C2" > /dev/null
