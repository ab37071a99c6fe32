#!/usr/bin/env bash
# The Release build of what the image ships (accel-dra-plugin, accel-dra-probe, accel-dra-inspect,
# accel-dra-smi):
# -O3 -DNDEBUG with warnings as errors, the build any image or package uses. Through ccache
# (hack/lib.sh configure), so deploy/Dockerfile's builder stage, which mounts the same cache,
# finds these compiles. Prints the time it took.
#   hack/release-build.sh [BUILD_DIR]   (default: <repo>/build-release)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dir="${1:-$REPO_ROOT/build-release}"
t0=$SECONDS
# The compiler identified by its content and LANG=C.UTF-8, as in the image's builder stage: their
# compiles share ccache keys.
export CCACHE_COMPILERCHECK=content LANG=C.UTF-8
unset LC_ALL LC_CTYPE LC_MESSAGES
configure "$dir" -DCMAKE_BUILD_TYPE=Release -DACCEL_DRA_BUILD_TESTS=OFF -DACCEL_DRA_BUILD_BENCH=OFF
nice cmake --build "$dir" -j"$(nproc)" --target accel-dra-plugin accel-dra-probe accel-dra-inspect accel-dra-smi \
  >"$dir/build.log" 2>&1 || { grep -B2 -A12 'error' "$dir/build.log" | head -60; die "Release build failed (log: $dir/build.log)"; }
log "Release build (accel-dra-plugin, accel-dra-probe, accel-dra-inspect) in $((SECONDS - t0))s ($dir)"
