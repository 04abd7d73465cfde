#!/usr/bin/env bash
# Provide the base images our Dockerfiles build FROM when no image registry is reachable.
#
# Usage: bash scripts/build-base-image.sh            # prints the base image tag to use on stdout
#
# Steps, each skipped when its result already exists (so reruns take well under a second):
#   1. if the engine already has $LOGSIDECAR_BASE_IMAGE (default logsidecar-base:bookworm-r<recipe>),
#      print it, done;
#   2. if `docker pull python:3.11-slim-bookworm` works, print that official image, done
#      (set LOGSIDECAR_BASE_TRY_PULL=0 to skip the attempt);
#   3. debootstrap a Debian bookworm minbase rootfs with python3, python3-venv, python3-pip and
#      ca-certificates from the same Debian mirror the host's apt uses, packed as a tarball under
#      $LOGSIDECAR_CACHE_DIR (default /var/cache/logsidecar) and reused between runs;
#   4. `docker import` the tarball as $LOGSIDECAR_BASE_IMAGE and print its tag.
# The printed tag is then passed as --build-arg BASE_IMAGE=... to every Dockerfile in docker/.
# The mirror's address is read from the host's apt configuration at run time, never stored in the repo.
set -euo pipefail

# Bump `recipe` when the rootfs recipe below changes: it names both the cached tarball and the image,
# so machines that cached an older recipe build the new one instead of reusing a stale base.
recipe=2
image="${LOGSIDECAR_BASE_IMAGE:-logsidecar-base:bookworm-r$recipe}"
official="python:3.11-slim-bookworm"
cache_dir="${LOGSIDECAR_CACHE_DIR:-/var/cache/logsidecar}"
tarball="$cache_dir/bookworm-minbase-python3-r$recipe.tar"
log() { echo "build-base-image: $*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi
if [ "${LOGSIDECAR_BASE_TRY_PULL:-1}" = 1 ] && timeout 60 docker pull -q "$official" >/dev/null 2>&1; then
  echo "$official"
  exit 0
fi

# The first Debian archive URI the host's apt uses (deb822 *.sources or one-line sources.list);
# the security archive is recognised by its name and added as a second source when present.
apt_uris() {
  {
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'
  } | grep -E '/debian(-security)?/?$' | sed 's:/*$::' | awk '!seen[$0]++'
}
mirror="${LOGSIDECAR_DEBIAN_MIRROR:-$(apt_uris | grep -v -- '-security$' | head -n1 || true)}"
security="${LOGSIDECAR_DEBIAN_SECURITY_MIRROR:-$(apt_uris | grep -- '-security$' | head -n1 || true)}"

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  mkdir -p "$cache_dir"
  rootfs="$(mktemp -d "$cache_dir/rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap bookworm (minbase) into $rootfs; this takes a few minutes the first time"
  started=$SECONDS
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" ${mirror:+"$mirror"} >"$cache_dir/debootstrap.log" 2>&1 || {
    log "debootstrap failed; last lines of $cache_dir/debootstrap.log:"
    tail -n 30 "$cache_dir/debootstrap.log" >&2
    exit 1
  }
  # apt inside images built from this base uses the same archives as the host.
  if [ -n "$mirror" ]; then
    {
      echo "deb $mirror bookworm main"
      echo "deb $mirror bookworm-updates main"
      [ -n "$security" ] && echo "deb $security bookworm-security main"
    } >"$rootfs/etc/apt/sources.list"
  fi
  # Trim what a container never needs, now and for packages installed later in images built on it:
  # documentation and translations (the official slim images exclude the same paths).
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
DPKG
  chroot "$rootfs" apt-get clean
  find "$rootfs"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs"/usr/share/doc -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian/* \
    "$rootfs"/var/log/*.log "$rootfs"/tmp/*
  tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  log "rootfs cached at $tarball ($(du -h "$tarball" | cut -f1)) after $((SECONDS - started))s"
fi

log "docker import $tarball as $image"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  "$tarball" "$image" >/dev/null
# Earlier recipes' tarballs are dead weight now; their images go when nothing is built on them any more.
find "$cache_dir" -maxdepth 1 -name 'bookworm-minbase-python3*.tar' ! -path "$tarball" -delete
docker images --format '{{.Repository}}:{{.Tag}}' logsidecar-base | grep -vx "$image" | xargs -r docker rmi >/dev/null 2>&1 || true
echo "$image"
