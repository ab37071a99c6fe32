#!/usr/bin/env bash
# Configures and builds accel-dra with CMake/Ninja.
#   hack/build.sh [BUILD_DIR] [extra cmake -D options...]   (default BUILD_DIR: build)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dir="${1:-$REPO_ROOT/build}"; shift || true
t0=$SECONDS
configure "$dir" "$@"
cmake --build "$dir" -j"$(nproc)" || die "build failed"
log "built in $((SECONDS - t0))s ($dir)"
