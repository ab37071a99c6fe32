#!/usr/bin/env bash
# Installs everything accel-dra needs on a Debian 12 machine (Debian packages, pinned Python tools
# in a venv) and builds the pinned Kubernetes components (cached outside the repo). Idempotent: a
# second run takes a few seconds.
#   hack/setup.sh [control-plane|all]   (all: also the real node's kubelet and containerd, and helm;
#                                        the compatibility job's older control planes are built by
#                                        hack/test.sh: build.sh compat)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

what="${1:-all}"
t0=$SECONDS

# One package a line; "#" starts a comment ("# image-build" marks what deploy/Dockerfile installs).
mapfile -t pkgs < <(sed 's/#.*//; s/[[:space:]]*$//; /^$/d' "$REPO_ROOT/hack/apt-packages.txt")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "installing packages needs root: sudo $0"
  log "installing ${#missing[@]} Debian packages: ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
fi

ensure_venv  # lizard for the CTest function_size
"$REPO_ROOT/hack/local-cluster/build.sh" "$what"
log "setup done in $((SECONDS - t0))s"
