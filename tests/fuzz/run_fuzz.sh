#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time (CTest "fuzz_<target>", see CMakeLists.txt).
#   run_fuzz.sh BINARY SEED_CORPUS WORK_DIR SECONDS [DICT]    (env ACCEL_DRA_FUZZ_SECONDS overrides)
# Every seed (including the regression inputs kept in SEED_CORPUS) runs first; then the fuzzer
# mutates for SECONDS, adding what it finds to WORK_DIR/corpus (not to the source tree). Prints
# executions, executions per second and coverage. On a crash it prints the input (hex) and where
# it was saved; copy it into SEED_CORPUS as a regression input once the bug is fixed.
set -euo pipefail
bin="$1" seeds="$2" work="$3" seconds="${ACCEL_DRA_FUZZ_SECONDS:-$4}" dict="${5:-}"
name="$(basename "$bin")"
mkdir -p "$work/corpus" "$work/artifacts"
args=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 -max_len=16384
      -print_final_stats=1 -artifact_prefix="$work/artifacts/")
[ -n "$dict" ] && args+=(-dict="$dict")
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
rc=0
"$bin" "${args[@]}" "$work/corpus" "$seeds" >"$work/log" 2>&1 || rc=$?
# libFuzzer's summary: the last status line ("#N DONE cov: C ft: F corp: ...") and the stats.
done_line="$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$work/log" | tail -1 || true)"
execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)"
eps="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)"
seeds_n="$(find "$seeds" -type f | wc -l)"
printf '%s: %s s, %s executions (%s/s), %s seeds; %s\n' "$name" "$seconds" "${execs:-?}" \
  "${eps:-?}" "$seeds_n" "${done_line:-no status line}" | tee "$work/summary"
if [ "$rc" != 0 ]; then
  tail -60 "$work/log"
  for f in "$work"/artifacts/*; do
    [ -f "$f" ] || continue
    echo "crash input $f ($(stat -c %s "$f") bytes):"
    od -An -tx1 -v "$f" | head -40
  done
  echo "$name failed (exit $rc); full log: $work/log"
  exit 1
fi
