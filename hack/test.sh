#!/usr/bin/env bash
# The test command: sets up the machine, builds, and runs every check, in timed phases:
#   setup             packages, the Go-built binaries
#   build             build/ (GCC, RelWithDebInfo)
#   tsan-*            build-tsan/ (GCC, ThreadSanitizer): the concurrency-critical unit tests
#                     (claims, checkpoint, NodeAgent, plugin server, health tracker), then the
#                     integration tests that run the TSan-built plugin's slice publisher, Node
#                     watcher and plugin server against the real apiserver
#   asan-*, fuzz      build-asan/ (clang, AddressSanitizer + UBSan + LeakSanitizer, with the
#                     libFuzzer targets of tests/fuzz): every unit test, the integration tests
#                     with the ASan-built plugin, then each fuzz target for ACCEL_DRA_FUZZ_SECONDS
#                     (default 20) over its seed corpus
#   tests             build/: every test (unit, integration against a real local control plane
#                     including the fault soak, the compatibility job against the control planes
#                     of K8S_COMPAT_VERSIONS, end-to-end with a real kubelet + containerd)
# The compatibility job's control planes (hack/local-cluster/build.sh compat: minutes per version
# when cold) build in the background at the lowest CPU priority from the end of the build phase,
# while the sanitizer phases run; the tests phase waits for them (phase compat-wait).
# and prints how long each took ("phases: ..."). A sanitizer report from any program fails the run.
# CTest also runs release_build (the Release build of what the image ships, hack/release-build.sh,
# through ccache), image_build (deploy/Dockerfile with buildah, hack/image.sh) and the chart's
# tests (helm_lint, deploy_manifests_current, integration_chart, e2e_helm).
#   hack/test.sh [--asan|--tsan] [ctest args...]     e.g. hack/test.sh -L unit
# With ctest arguments only setup, build and tests run (with those arguments); --asan / --tsan
# build that sanitizer's tree and run ctest there instead. ACCEL_DRA_SKIP_TSAN=1 and
# ACCEL_DRA_SKIP_ASAN=1 skip the tsan-* and the asan-*/fuzz phases.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

build_dir="$REPO_ROOT/build"
cmake_args=()
mode=normal
case "${1:-}" in
  --asan) mode=asan; build_dir="$REPO_ROOT/build-asan"; shift ;;
  --tsan) mode=tsan; build_dir="$REPO_ROOT/build-tsan"; cmake_args+=(-DACCEL_DRA_TSAN=ON -DACCEL_DRA_BUILD_BENCH=OFF); shift ;;
esac
full=0
[ "$mode" = normal ] && [ $# -eq 0 ] && full=1
sanitizer_env

phase_begin setup
"$REPO_ROOT/hack/setup.sh" all
phase_end
phase_begin build
if [ "$mode" = asan ]; then
  configure_asan "$build_dir"
  cmake --build "$build_dir" -j"$(nproc)" || die "build failed"
else
  "$REPO_ROOT/hack/build.sh" "$build_dir" "${cmake_args[@]}"
fi
phase_end

# ---- ThreadSanitizer (build-tsan/, GCC) ----
# The Preparer and the checkpoint are where concurrent prepares meet; the agent's loop
# (node_test), the plugin server (kubelet_test) and the health tracker (discovery_events_test) run
# threads of their own. The slice publisher (reconcile + watch threads) and the Node watcher have
# no unit test of their own: they run in the TSan-built plugin under the integration tests that
# drive them against the real apiserver (publisher, runtime attributes, kubelet plugin).
tsan_tests=(claims/claims_test checkpoint/checkpoint_test node/node_test kubelet/kubelet_test
            discovery_events/discovery_events_test)
tsan_integration='^integration_(publisher|runtime_attributes|kubelet_plugin)$'
run_tsan() {
  local dir="$REPO_ROOT/build-tsan" t t0
  phase_begin tsan-build
  configure "$dir" -DACCEL_DRA_TSAN=ON -DACCEL_DRA_BUILD_BENCH=OFF
  cmake --build "$dir" -j"$(nproc)" --target "${tsan_tests[@]##*/}" accel-dra-plugin \
    accel-dra-kubelet-sim >"$dir/build.log" 2>&1 \
    || { tail -40 "$dir/build.log"; die "TSan build failed (log: $dir/build.log)"; }
  phase_end
  phase_begin tsan-unit
  for t in "${tsan_tests[@]}"; do
    t0=$SECONDS
    with_sanitizer_reports "$dir/sanitizer-reports" \
      "$dir/tests/unit/$t" --gtest_brief=1 >"$dir/${t##*/}.log" 2>&1 \
      || { tail -80 "$dir/${t##*/}.log"; die "$t failed under ThreadSanitizer (log: $dir/${t##*/}.log)"; }
    log "  ${t##*/} passed under TSan in $((SECONDS - t0))s"
  done
  phase_end
  phase_begin tsan-integration
  (cd "$dir" && with_sanitizer_reports "$dir/sanitizer-reports" \
     ctest --output-on-failure --timeout 600 -R "$tsan_integration") \
    || die "integration tests failed with the TSan-built plugin ($dir)"
  phase_end
}

# ---- AddressSanitizer + UBSan + LeakSanitizer (build-asan/, clang), and the fuzz targets ----
# ACCEL_DRA_ASAN_INTEGRATION: the ctest -R regex of the integration tests run with the ASan-built
# plugin (default: all of them, the fault soak included, shortened to ACCEL_DRA_SOAK_SECONDS=45).
asan_integration="${ACCEL_DRA_ASAN_INTEGRATION:-^integration_}"
run_asan() {
  local dir="$REPO_ROOT/build-asan"
  phase_begin asan-build
  configure_asan "$dir"
  cmake --build "$dir" -j"$(nproc)" >"$dir/build.log" 2>&1 \
    || { tail -40 "$dir/build.log"; die "ASan build failed (log: $dir/build.log)"; }
  phase_end
  phase_begin asan-unit
  (cd "$dir" && with_sanitizer_reports "$dir/sanitizer-reports" \
     ctest --output-on-failure --timeout 600 -j"$(nproc)" -L '^unit$') \
    || die "unit tests failed under ASan+UBSan ($dir)"
  phase_end
  phase_begin asan-integration
  rm -f "$dir/soak-summary.txt"
  (cd "$dir" && ACCEL_DRA_SOAK_SECONDS="${ACCEL_DRA_SOAK_SECONDS:-45}" with_sanitizer_reports \
     "$dir/sanitizer-reports" ctest --output-on-failure --timeout 600 -R "$asan_integration") \
    || die "integration tests failed with the ASan-built plugin ($dir)"
  [ -f "$dir/soak-summary.txt" ] && log "ASan $(cat "$dir/soak-summary.txt")"
  phase_end
  phase_begin fuzz
  rm -f "$dir"/tests/fuzz/work/*/summary
  (cd "$dir" && ctest --output-on-failure -j"$(nproc)" -L '^fuzz$') \
    || die "a fuzz target failed (see above; inputs under $dir/tests/fuzz/work/*/artifacts)"
  cat "$dir"/tests/fuzz/work/*/summary >&2
  phase_end
}

# The compatibility job's binaries: in the background during the sanitizer phases of a full run;
# with ctest arguments, first, and only when they select a compat test.
compat_pid=""
compat_log="$build_dir/compat-build.log"
if [ "$full" = 1 ]; then
  log "building the compatibility job's control planes in the background (log: $compat_log)"
  nice -n 19 "$REPO_ROOT/hack/local-cluster/build.sh" compat >"$compat_log" 2>&1 &
  compat_pid=$!
elif (cd "$build_dir" && ctest -N "$@" | grep -q ' compat_'); then
  "$REPO_ROOT/hack/local-cluster/build.sh" compat
fi

if [ "$full" = 1 ] && [ "${ACCEL_DRA_SKIP_TSAN:-0}" != 1 ]; then run_tsan; fi
if [ "$full" = 1 ] && [ "${ACCEL_DRA_SKIP_ASAN:-0}" != 1 ]; then run_asan; fi

if [ -n "$compat_pid" ]; then
  phase_begin compat-wait
  wait "$compat_pid" || { tail -30 "$compat_log"; die "building the compatibility job's control planes failed (log: $compat_log)"; }
  grep -h "ready in\|built " "$compat_log" >&2 || true
  phase_end
fi

phase_begin tests
cd "$build_dir"
log "running tests"
rm -f soak-summary.txt
if [ "$mode" = normal ]; then
  ctest --output-on-failure --timeout 600 "$@"
else
  with_sanitizer_reports "$build_dir/sanitizer-reports" ctest --output-on-failure --timeout 600 "$@"
fi
[ -f soak-summary.txt ] && log "$(cat soak-summary.txt)"
phase_end
phase_summary
