#!/usr/bin/env bash
# The test command: sets up the machine, builds, runs the concurrency-critical unit tests under
# ThreadSanitizer, then every test (unit, then integration against a real local control plane
# started once for the run). CTest also runs release_build (the Release build of what the image
# ships, hack/release-build.sh, through ccache), image_build (deploy/Dockerfile with buildah,
# hack/image.sh) and the chart's tests (helm_lint, deploy_manifests_current, integration_chart,
# e2e_helm).
#   hack/test.sh [--asan|--tsan] [ctest args...]     e.g. hack/test.sh -L unit
# ACCEL_DRA_SKIP_TSAN=1 skips the ThreadSanitizer phase.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

build_dir="$REPO_ROOT/build"
cmake_args=()
mode=normal
case "${1:-}" in
  --asan) mode=asan; build_dir="$REPO_ROOT/build-asan"; cmake_args+=(-DACCEL_DRA_ASAN=ON -DACCEL_DRA_BUILD_BENCH=OFF); shift ;;
  --tsan) mode=tsan; build_dir="$REPO_ROOT/build-tsan"; cmake_args+=(-DACCEL_DRA_TSAN=ON -DACCEL_DRA_BUILD_BENCH=OFF); shift ;;
esac
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}"

"$REPO_ROOT/hack/setup.sh" all
"$REPO_ROOT/hack/build.sh" "$build_dir" "${cmake_args[@]}"

# The Preparer and the checkpoint are where concurrent prepares meet: prove them race-free.
if [ "$mode" = normal ] && [ "${ACCEL_DRA_SKIP_TSAN:-0}" != 1 ]; then
  t0=$SECONDS
  tsan_dir="$REPO_ROOT/build-tsan"
  log "ThreadSanitizer phase: building claims_test and checkpoint_test in $tsan_dir"
  configure "$tsan_dir" -DACCEL_DRA_TSAN=ON -DACCEL_DRA_BUILD_BENCH=OFF
  cmake --build "$tsan_dir" -j"$(nproc)" --target claims_test checkpoint_test >"$tsan_dir/build.log" 2>&1 \
    || { tail -40 "$tsan_dir/build.log"; die "TSan build failed (log: $tsan_dir/build.log)"; }
  for t in claims/claims_test checkpoint/checkpoint_test; do
    log "  $t under TSan"
    "$tsan_dir/tests/unit/$t" --gtest_brief=1 || die "$t failed under ThreadSanitizer"
  done
  log "ThreadSanitizer phase passed in $((SECONDS - t0))s"
fi

cd "$build_dir"
log "running tests"
ctest --output-on-failure --timeout 600 "$@"
