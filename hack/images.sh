#!/usr/bin/env bash
# Build the modelops images (images/Containerfile: operator, trainer, server) and the examples'
# training images (examples/Containerfile: example-<name>) with podman, on a
# Python base made from Debian packages with debootstrap: no container registry is involved.
# Cached: the base rootfs under ~/.cache/modelops/images (keyed by its package list), the images
# in podman's storage, labelled with a digest of their inputs and rebuilt only when that changes.
#
# Usage: hack/images.sh [base|build|all]...      (default: all)
# Needs root and the Debian packages podman, buildah, runc, debootstrap (hack/system-packages.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CACHE="${MODELOPS_IMAGE_CACHE:-$HOME/.cache/modelops/images}"
SUITE="${DEBIAN_SUITE:-bookworm}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml" | sed -n 1p)"
REGISTRY="${IMAGE_REGISTRY:-ghcr.io/modelops}"
TARGETS=(operator trainer server)
EXAMPLES=(sklearn-iris lightgbm-diabetes)
# Our own podman settings (crun and systemd cgroups do not work on this kind of host).
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"

# The Python base: Debian's python3 with venv support; `python` on PATH like the official image.
BASE_PACKAGES="python3,python3-venv,python-is-python3,ca-certificates"

log() { printf '[images] %s\n' "$*" >&2; }
timed() { # timed NAME CMD...
  local name=$1 start; shift; start=$(date +%s)
  "$@"; log "$name: done in $(( $(date +%s) - start ))s"
}

debian_mirror() {
  # The mirror apt uses on this machine (deb822 or one-line sources), else Debian's CDN.
  local m
  m="$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v security | head -1 || true)"
  [ -n "$m" ] || m="$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' \
    /etc/apt/sources.list 2>/dev/null || true)"
  echo "${m:-http://deb.debian.org/debian}"
}

base_key() {
  # Local CA certificates go into the base too: builds behind a TLS-intercepting proxy need them.
  { echo "$SUITE $BASE_PACKAGES"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } \
    | sha256sum | cut -c1-12
}

base_image() { echo "localhost/modelops/python-base:$SUITE-$(base_key)"; }

build_base() {
  local image tarball work
  image="$(base_image)"
  tarball="$CACHE/python-base-$SUITE-$(base_key).tar"
  if podman image exists "$image"; then log "base $image: cached"; return; fi
  mkdir -p "$CACHE"
  if [ ! -s "$tarball" ]; then
    work="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$work/rootfs" \
      "$(debian_mirror)" >"$work/debootstrap.log" 2>&1 \
      || { tail -20 "$work/debootstrap.log" >&2; rm -rf "$work"; return 1; }
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$work/rootfs/usr/local/share/ca-certificates/"
      chroot "$work/rootfs" update-ca-certificates >/dev/null 2>&1
    fi
    # Package caches and lists are not part of an image.
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    tar -C "$work/rootfs" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$work"
  fi
  podman import --quiet --change 'CMD ["python3"]' "$tarball" "$image" >/dev/null
  log "base $image: imported from $tarball"
}

# The build context: exactly what the Containerfile copies (no .venv, caches or egg-info).
make_context() {
  local ctx=$1
  cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$ctx/"
  tar -C "$ROOT" --exclude=__pycache__ --exclude='*.egg-info' --exclude='*.pyc' -cf - operator \
    examples | tar -C "$ctx" -xf -
}

inputs_digest() { # inputs_digest CONTEXT BASE
  (
    cd "$1"
    find . -type f -print0 | sort -z | xargs -0 sha256sum
    sha256sum <"$ROOT/images/Containerfile"
    echo "$2 $(podman image inspect --format '{{.Id}}' "$2") $VERSION"
  ) | sha256sum | cut -c1-64
}

build_one() { # build_one CONTAINERFILE TARGET TAG (base, ctx, digest, revision: build_images')
  local file=$1 target=$2 tag=$3 have
  have="$(podman image inspect --format '{{index .Labels "dev.modelops.inputs"}}' "$tag" 2>/dev/null || true)"
  if [ "$have" = "$digest" ]; then log "$tag: cached"; return; fi
  # Host networking for the build's downloads (pip from PyPI): no bridge or firewall rules.
  podman build --quiet --network=host -f "$ROOT/$file" --target "$target" \
    --build-arg PYTHON_IMAGE="$base" --build-arg VERSION="$VERSION" \
    --build-arg REVISION="$revision" --label "dev.modelops.inputs=$digest" \
    -t "$tag" "$ctx" >/dev/null
  log "$tag: built ($(podman image inspect --format '{{.Size}}' "$tag") bytes)"
}

build_images() {
  local base ctx digest t revision
  base="$(base_image)"
  podman image exists "$base" || build_base
  ctx="$(mktemp -d)"
  make_context "$ctx"
  digest="$(inputs_digest "$ctx" "$base")"
  revision="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  for t in "${TARGETS[@]}"; do
    build_one images/Containerfile "$t" "$REGISTRY/$t:$VERSION"
  done
  for t in "${EXAMPLES[@]}"; do
    build_one examples/Containerfile "$t" "$REGISTRY/example-$t:$VERSION"
  done
  rm -rf "$ctx"
}

what=("$@"); [ ${#what[@]} -gt 0 ] || what=(all)
for w in "${what[@]}"; do
  case "$w" in
    all) timed base build_base; timed images build_images ;;
    base) timed base build_base ;;
    build) timed images build_images ;;
    *) log "unknown step: $w"; exit 2 ;;
  esac
done
