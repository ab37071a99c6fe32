#!/usr/bin/env bash
# The test command: sets up the machine, builds, and runs every test (unit, then integration
# against a real local control plane started once for the run).
#   hack/test.sh [--asan|--tsan] [ctest args...]     e.g. hack/test.sh -L unit
set -euo pipefail
. "$(dirname "$0")/lib.sh"

build_dir="$REPO_ROOT/build"
cmake_args=()
case "${1:-}" in
  --asan) build_dir="$REPO_ROOT/build-asan"; cmake_args+=(-DACCEL_DRA_ASAN=ON -DACCEL_DRA_BUILD_BENCH=OFF); shift ;;
  --tsan) build_dir="$REPO_ROOT/build-tsan"; cmake_args+=(-DACCEL_DRA_TSAN=ON -DACCEL_DRA_BUILD_BENCH=OFF); shift ;;
esac

"$REPO_ROOT/hack/setup.sh" all
"$REPO_ROOT/hack/build.sh" "$build_dir" "${cmake_args[@]}"
cd "$build_dir"
log "running tests"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}"
ctest --output-on-failure --timeout 600 "$@"
