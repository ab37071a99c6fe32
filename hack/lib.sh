# Shared settings for accel-dra's scripts. Source it; it changes nothing by itself.
# shellcheck shell=bash

# Pinned versions of everything built from the Go module proxy.
# Kubernetes: the cluster, the real node and every test (K8S_VERSION=1.3x.y picks another one).
K8S_VERSION="${K8S_VERSION:-1.37.2}"
# The other versions the compatibility job (tests/integration/test_compat.py) runs the plugin
# against: kube-apiserver and kube-scheduler of each (kubectl of K8S_VERSION).
K8S_COMPAT_VERSIONS="${K8S_COMPAT_VERSIONS:-1.34.4 1.35.4 1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.8}"
# Kubernetes 1.37's go.mod says go 1.26.0 (1.34: 1.24.0, 1.35: 1.25.0, 1.36: 1.26.0). A Go at least
# that new is used as it is (this machine's: 1.26.8); otherwise the scripts export
# GOTOOLCHAIN=$GO_TOOLCHAIN_FALLBACK and the go command fetches that approved toolchain from the Go
# module proxy (the supported way; about 76 MB once).
GO_MIN_VERSION="${GO_MIN_VERSION:-1.26}"
GO_TOOLCHAIN_FALLBACK="${GO_TOOLCHAIN_FALLBACK:-go1.27.3}"
# Helm (the chart in deploy/helm): its go.mod needs Go 1.26, fetched through GOTOOLCHAIN when the
# local Go is older.
HELM_VERSION="${HELM_VERSION:-4.3.2}"
HELM="${HELM:-${ACCEL_DRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/accel-dra}/bin/helm-v$HELM_VERSION/helm}"

# Everything built or downloaded lives outside the repository.
ACCEL_DRA_CACHE="${ACCEL_DRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/accel-dra}"
ACCEL_DRA_BIN="$ACCEL_DRA_CACHE/bin"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# version_ge A B: true when version A >= B (dotted numbers).
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# ensure_go: puts a Go >= GO_MIN_VERSION on PATH. A Go >= 1.21 that is older gets
# GOTOOLCHAIN=$GO_TOOLCHAIN_FALLBACK exported: the go command downloads that toolchain from the Go
# module proxy itself and runs it for every later go command of the script. Debian 12's golang-go
# (1.19) predates GOTOOLCHAIN, so with it (or no Go at all) the toolchain module is downloaded once
# into the cache and put first on PATH.
ensure_go() {
  local v=""
  if command -v go >/dev/null 2>&1; then v="$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null | sed 's/^go//')"; fi
  if [ -n "$v" ] && version_ge "$v" "$GO_MIN_VERSION"; then return 0; fi
  if [ -n "$v" ] && version_ge "$v" 1.21; then
    export GOTOOLCHAIN="$GO_TOOLCHAIN_FALLBACK"
    log "Go $v is older than $GO_MIN_VERSION: GOTOOLCHAIN=$GOTOOLCHAIN (from the Go module proxy)"
    go version >/dev/null || die "could not get the Go toolchain $GOTOOLCHAIN from the module proxy"
    return 0
  fi
  local tc="golang.org/toolchain@v0.0.1-${GO_TOOLCHAIN_FALLBACK}.linux-$(dpkg --print-architecture 2>/dev/null || echo amd64)"
  local dir="$ACCEL_DRA_CACHE/go-toolchain-$GO_TOOLCHAIN_FALLBACK"
  if [ ! -x "$dir/bin/go" ]; then
    command -v go >/dev/null 2>&1 || apt-get install -y -q golang-go >/dev/null
    log "installing Go toolchain $GO_TOOLCHAIN_FALLBACK from the Go module proxy"
    local src
    src="$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "$tc" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    [ -f "$src/bin/go" ] || die "could not download $tc"
    mkdir -p "$dir" && cp -a "$src/." "$dir/" && chmod -R u+w "$dir"
    # Module zips carry no file modes: make the toolchain's programs executable again.
    chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/* 2>/dev/null || true
  fi
  export PATH="$dir/bin:$PATH" GOTOOLCHAIN=local
}

# configure BUILD_DIR [cmake -D options...]: CMake + Ninja configure of the repository into
# BUILD_DIR (log in BUILD_DIR/configure.log). Compiles through ccache when it is installed, with
# paths relative to the checkout, so worktrees and clean clones share cached objects
# (cache: ~/.cache/ccache; ACCEL_DRA_CCACHE=0 turns it off).
configure() {
  local dir="$1"; shift
  local launcher=()
  if [ "${ACCEL_DRA_CCACHE:-1}" != 0 ] && command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    export CCACHE_BASEDIR="$REPO_ROOT" CCACHE_NOHASHDIR=1
  fi
  mkdir -p "$dir"
  cmake -S "$REPO_ROOT" -B "$dir" -G Ninja "${launcher[@]}" "$@" >"$dir/configure.log" 2>&1 \
    || { tail -30 "$dir/configure.log"; die "cmake configure failed (log: $dir/configure.log)"; }
}

# Python tools the checks need, pinned, in a venv under the cache (pip may refuse to install into
# Debian's own Python). lizard measures function length for the CTest function_size.
ACCEL_DRA_VENV="$ACCEL_DRA_CACHE/venv"
ACCEL_DRA_VENV_PACKAGES="lizard==1.24.3 pathspec==1.1.1 pygments==2.21.0"

# ensure_venv: creates or refreshes ACCEL_DRA_VENV when it does not hold exactly
# ACCEL_DRA_VENV_PACKAGES (recorded in its .accel-dra-packages once installed).
ensure_venv() {
  local stamp="$ACCEL_DRA_VENV/.accel-dra-packages"
  if [ -x "$ACCEL_DRA_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$ACCEL_DRA_VENV_PACKAGES" ]; then
    return 0
  fi
  log "installing $ACCEL_DRA_VENV_PACKAGES into $ACCEL_DRA_VENV"
  python3 -m venv --clear "$ACCEL_DRA_VENV" ||
    die "could not create the venv $ACCEL_DRA_VENV (Debian needs python3-venv)"
  # shellcheck disable=SC2086  # the package list splits on spaces
  "$ACCEL_DRA_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
    $ACCEL_DRA_VENV_PACKAGES || die "could not install $ACCEL_DRA_VENV_PACKAGES into $ACCEL_DRA_VENV"
  "$ACCEL_DRA_VENV/bin/lizard" --version >/dev/null || die "lizard in $ACCEL_DRA_VENV does not run"
  printf '%s\n' "$ACCEL_DRA_VENV_PACKAGES" >"$stamp"
}

# check_function_size DIR...: lists the functions under DIR longer than 100 lines (lizard's
# "length": from the signature to the closing brace) and fails when there is one. A function that
# must stay long says why beside a `// #lizard forgives` comment in its body.
check_function_size() {
  local lizard="$ACCEL_DRA_VENV/bin/lizard"
  [ -x "$lizard" ] || die "$lizard is missing: run hack/setup.sh"
  local out rc=0
  out="$("$lizard" --warnings_only --length 100 --CCN 999 --arguments 99 "$@")" || rc=$?
  if [ -n "$out" ]; then
    printf '%s\n' "$out"
    printf 'error: functions over 100 lines (split them, or give the reason beside a "// #lizard forgives" comment)\n' >&2
    return 1
  fi
  [ "$rc" = 0 ] || die "lizard failed (exit code $rc)"
}

# ---- sanitizer builds and test phases (hack/test.sh) --------------------------------------------

# sanitizer_env: the sanitizers' run-time options, unless the caller set them. Every report stops
# the program (halt_on_error; UBSan is also built with -fno-sanitize-recover; ASan aborts, so a
# plugin an integration test runs dies of a signal, which fails the test). LeakSanitizer runs at
# exit of ASan-built programs (suppressions: tests/lsan.supp). TSan ignores what Debian's
# uninstrumented gRPC/abseil/protobuf do internally (ignore_noninstrumented_modules); races in
# our own code are still reported.
sanitizer_env() {
  export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 ignore_noninstrumented_modules=1}"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
  export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$REPO_ROOT/tests/lsan.supp:print_suppressions=0}"
}

# with_sanitizer_reports DIR COMMAND...: runs COMMAND with every sanitizer report also written to
# DIR/report.<pid> (log_path), so that a report from a program a test started in the background
# (the plugin under pytest) is not lost in a log nobody reads; fails when COMMAND fails or any
# report was written, printing the reports.
with_sanitizer_reports() {
  local dir="$1"; shift
  rm -rf "$dir" && mkdir -p "$dir"
  local rc=0
  (
    export ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$dir/report"
    export UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$dir/report"
    export TSAN_OPTIONS="$TSAN_OPTIONS log_path=$dir/report"
    "$@"
  ) || rc=$?
  if compgen -G "$dir/report.*" >/dev/null; then
    for f in "$dir"/report.*; do printf '==== %s\n' "$f" >&2; head -120 "$f" >&2; done
    log "sanitizer reports above (in $dir)"
    return 1
  fi
  return "$rc"
}

# configure_asan BUILD_DIR: the clang build with AddressSanitizer + UBSan and the libFuzzer
# targets (tests/fuzz; every object gets coverage instrumentation), no benchmarks.
configure_asan() {
  command -v clang++ >/dev/null 2>&1 || die "clang++ is missing (Debian: clang, libclang-rt-14-dev)"
  configure "$1" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DACCEL_DRA_ASAN=ON \
    -DACCEL_DRA_FUZZ=ON -DACCEL_DRA_BUILD_BENCH=OFF
}

# phase_begin NAME / phase_end: time a phase of hack/test.sh; phase_summary prints them all.
ACCEL_DRA_PHASES=()
phase_begin() { phase_name="$1"; phase_t0=$SECONDS; log "=== phase $1"; }
phase_end() {
  local d=$((SECONDS - phase_t0))
  ACCEL_DRA_PHASES+=("$phase_name ${d}s")
  log "=== phase $phase_name done in ${d}s"
}
phase_summary() {
  local IFS=,
  log "phases: ${ACCEL_DRA_PHASES[*]}"
}
