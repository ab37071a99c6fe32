#!/usr/bin/env bash
# Builds the accel-dra container image from deploy/Dockerfile with buildah, from local inputs only
# (no registry): a Debian bookworm base made with debootstrap from the Debian archive, the
# repository as build context, Debian packages in the builder and runtime stages.
#
#   hack/image.sh [--tag TAG] [--address CONTAINERD_SOCKET] [--out FILE]
#
#   --tag TAG       image tag (default: local); the image is localhost/accel-dra:TAG
#   --address SOCK  also import the image into that containerd (namespace k8s.io) with ctr
#   --out FILE      where the OCI archive goes (default: $ACCEL_DRA_CACHE/images/accel-dra-TAG.tar)
#
# Prints the image size (uncompressed layers) and the archive path. Caches, all under
# $ACCEL_DRA_CACHE (never in the repository):
#   images/debian-bookworm-<key>.tar   the debootstrap base, keyed by this script's base inputs
#   containers/                        buildah storage (vfs): the base image and the build's layers
#                                      (buildah bud --layers: an unchanged stage is reused)
#   ~/.cache/ccache                    mounted into the builder stage (CCACHE_COMPILERCHECK=content),
#                                      so a compile the host already did is a cache hit
# buildah runs with --storage-driver vfs --isolation chroot (no overlay, no user namespaces).
set -euo pipefail
# A shared build machine: everything below (debootstrap, apt, the compile) runs niced.
[ "$(nice)" -ge 10 ] || exec nice -n 10 "$0" "$@"
. "$(dirname "$0")/lib.sh"

tag=local address="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag="$2"; shift 2 ;;
    --address) [ $# -ge 2 ] || die "--address needs a value"; address="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; out="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[ "$(id -u)" = 0 ] || die "hack/image.sh needs root (debootstrap, buildah with chroot isolation)"
for t in buildah debootstrap; do
  command -v "$t" >/dev/null 2>&1 || die "$t is missing: apt-get install $t (see hack/apt-packages.txt)"
done

IMAGE="localhost/accel-dra:$tag"
MIRROR="${ACCEL_DRA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${ACCEL_DRA_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
images="$ACCEL_DRA_CACHE/images"
storage="$ACCEL_DRA_CACHE/containers"
mkdir -p "$images" "$storage"
out="${out:-$images/accel-dra-$tag.tar}"
bah() { buildah --storage-driver vfs --root "$storage/root" --runroot "$storage/run" "$@"; }
t0=$SECONDS

# 1. The base: debootstrap --variant=minbase of bookworm with the same apt sources as the host
# (bookworm, -updates, -security), so that the builder compiles with the host's compiler and
# headers (ccache hits). Keyed by the mirrors and the lines of this script that make it.
base_recipe="bookworm minbase $MIRROR $SECURITY_MIRROR v1"
base_key="$(printf '%s' "$base_recipe" | sha256sum | cut -c1-12)"
base_tar="$images/debian-bookworm-$base_key.tar"
BASE="localhost/accel-dra-base:bookworm-$base_key"
if [ ! -f "$base_tar" ]; then
  log "debootstrap: Debian bookworm (minbase) from $MIRROR"
  root="$(mktemp -d "$images/.rootfs-XXXXXX")"
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$images/debootstrap.log" 2>&1 ||
    { tail -n 20 "$images/debootstrap.log" >&2; die "debootstrap failed (log: $images/debootstrap.log)"; }
  cat >"$root/etc/apt/sources.list" <<SRC
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
SRC
  # A small image: no apt lists or downloaded packages, no man pages or docs in later installs.
  printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
    >"$root/etc/dpkg/dpkg.cfg.d/01-accel-dra-nodoc"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$root" -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
  rm -rf "$root"; trap - EXIT
fi
if ! bah inspect --type image "$BASE" >/dev/null 2>&1; then
  log "importing the base $(basename "$base_tar") into buildah as $BASE"
  c="$(bah from scratch)"
  bah add "$c" "$base_tar" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$c"
  bah commit --quiet --rm "$c" "$BASE" >/dev/null
fi
log "base ready ($((SECONDS - t0))s)"

# 2. The image. The host's ccache is mounted into the builder stage (not part of any layer).
ccache_dir="${CCACHE_DIR:-$HOME/.cache/ccache}"
mkdir -p "$ccache_dir"
tb=$SECONDS
log "buildah bud -f deploy/Dockerfile -t $IMAGE (log: $images/bud-$tag.log)"
bah bud --isolation chroot --layers --network host -f "$REPO_ROOT/deploy/Dockerfile" \
  --build-arg BASE="$BASE" -v "$ccache_dir:/ccache" -t "$IMAGE" "$REPO_ROOT" \
  >"$images/bud-$tag.log" 2>&1 ||
  { tail -n 40 "$images/bud-$tag.log" >&2; die "buildah bud failed (log: $images/bud-$tag.log)"; }
log "built $IMAGE in $((SECONDS - tb))s"

# 3. Export as an OCI archive and, with --address, import it into containerd.
rm -f "$out.tmp"
bah push --quiet "$IMAGE" "oci-archive:$out.tmp:$IMAGE" >/dev/null && mv "$out.tmp" "$out"
size="$(bah images --noheading --format '{{.Size}}' "$IMAGE" 2>/dev/null | head -n1)"
if [ -n "$address" ]; then
  # shellcheck source-path=SCRIPTDIR source=local-cluster/cluster-lib.sh
  . "$REPO_ROOT/hack/local-cluster/cluster-lib.sh"
  ctr="$CONTAINERD_BIN_DIR/ctr"
  [ -x "$ctr" ] || die "$ctr is missing; build it with hack/local-cluster/build.sh node"
  "$ctr" --address "$address" -n k8s.io images import --no-unpack=false "$out" >/dev/null ||
    die "ctr images import $out failed"
  log "imported $IMAGE into $address (namespace k8s.io)"
fi
printf 'image %s: %s uncompressed, OCI archive %s (%s MB)\n' "$IMAGE" \
  "${size:-?}" "$out" "$(($(stat -c %s "$out") / 1000000))"
log "image ready in $((SECONDS - t0))s"
