#!/usr/bin/env bash
# Builds the node's container images without a registry, as OCI image archives cached in
# $ACCEL_DRA_CACHE/images, and optionally imports them into a containerd:
#   localhost/pause:local    a static pause (a few lines of C, gcc -static): the sandbox image
#   localhost/busybox:local  Debian's busybox-static with /bin/sh and every applet as a symlink
#
#   images.sh [--address CONTAINERD_SOCKET]
#
# Without --address it only builds (and prints the archive paths). With it, it imports both into
# namespace k8s.io with ctr (from the containerd build). Idempotent: archives are rebuilt only when
# their inputs change (busybox version, this script, oci-image.py).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=cluster-lib.sh
. "$here/cluster-lib.sh"

address=""
while [ $# -gt 0 ]; do
  case "$1" in
    --address) [ $# -ge 2 ] || die "--address needs a value"; address="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[ -x /bin/busybox ] || die "/bin/busybox is missing: apt-get install busybox-static (see hack/apt-packages.txt)"
command -v gcc >/dev/null 2>&1 || die "gcc is required (build-essential)"
out="$ACCEL_DRA_CACHE/images"
mkdir -p "$out"
# The inputs' fingerprint names the archives, so a change rebuilds them and stale ones are ignored.
key="$(cat "$0" "$here/oci-image.py" /bin/busybox | sha256sum | cut -c1-12)"
pause_tar="$out/pause-$key.tar"
busybox_tar="$out/busybox-$key.tar"

if [ ! -f "$pause_tar" ]; then
  log "building localhost/pause:local"
  w="$(mktemp -d)"
  cat >"$w/pause.c" <<'EOF'
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, quit);
  signal(SIGTERM, quit);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
EOF
  gcc -static -Os -s -o "$w/pause" "$w/pause.c"
  python3 "$here/oci-image.py" "$pause_tar" localhost/pause:local --entrypoint '["/pause"]' \
    "file:/pause=$w/pause:755" >/dev/null
  rm -rf "$w"
fi

if [ ! -f "$busybox_tar" ]; then
  log "building localhost/busybox:local from $(/bin/busybox | head -n1)"
  specs=("file:/bin/busybox=/bin/busybox:755" "dir:/tmp:1777" "dir:/root:700" "dir:/etc" "dir:/proc"
    "dir:/sys" "dir:/dev" "dir:/var" "dir:/usr/bin" "dir:/usr/sbin" "dir:/sbin")
  w="$(mktemp -d)"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$w/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$w/group"
  specs+=("file:/etc/passwd=$w/passwd:644" "file:/etc/group=$w/group:644")
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || specs+=("link:/bin/$a=busybox")
  done
  python3 "$here/oci-image.py" "$busybox_tar" localhost/busybox:local --cmd '["/bin/sh"]' "${specs[@]}" >/dev/null
  rm -rf "$w"
fi

if [ -z "$address" ]; then
  printf '%s\n%s\n' "$pause_tar" "$busybox_tar"
  exit 0
fi
ctr="$CONTAINERD_BIN_DIR/ctr"
[ -x "$ctr" ] || die "$ctr is missing; build it with hack/local-cluster/build.sh node"
for t in "$pause_tar" "$busybox_tar"; do
  # --local: unpack with the client-side importer; --all-platforms is not needed (one platform).
  "$ctr" --address "$address" -n k8s.io images import --no-unpack=false "$t" >/dev/null ||
    die "ctr images import $t failed"
done
# Pin them so that kubelet's image garbage collection never removes them.
"$ctr" --address "$address" -n k8s.io images label localhost/pause:local io.cri-containerd.pinned=pinned >/dev/null
"$ctr" --address "$address" -n k8s.io images label localhost/busybox:local io.cri-containerd.pinned=pinned >/dev/null
log "imported localhost/pause:local and localhost/busybox:local into $address"
