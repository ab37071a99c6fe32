#!/usr/bin/env bash
# Builds the pinned etcd and Kubernetes binaries from the Go module proxy into
# $ACCEL_DRA_CACHE/bin/<component>-<version>/ (outside the repo). Idempotent: a component whose
# binaries are present is skipped, so a warm run takes well under a second.
#   build.sh [control-plane|node|all|helm|compat]
#     control-plane (default): etcd + kube-apiserver, kube-scheduler, kube-controller-manager and
#       kubectl of K8S_VERSION; node and all add kubelet and containerd + containerd-shim-runc-v2 +
#       ctr; all and helm add helm v$HELM_VERSION for deploy/helm;
#     compat: kube-apiserver and kube-scheduler of every version in K8S_COMPAT_VERSIONS (the
#       compatibility job, tests/integration/test_compat.py: up.sh --no-controller-manager;
#       kubectl is K8S_VERSION's).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=cluster-lib.sh
. "$(dirname "$0")/cluster-lib.sh"

what="${1:-control-plane}"

# ticking CMD...: runs CMD and, while it runs, logs "still building ... (elapsed)" every 30 s so a
# cold build (minutes per binary) shows progress.
ticking() {
  local label="$1"; shift
  local start=$SECONDS
  ( while sleep 30; do log "    ... still building $label ($((SECONDS - start))s, total $((SECONDS - t0))s)"; done ) &
  local ticker=$! rc=0
  "$@" || rc=$?
  kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
  return "$rc"
}
k8s_bins=(kube-apiserver kube-scheduler kube-controller-manager kubectl)
[ "$what" = control-plane ] || k8s_bins+=(kubelet)
k8s_compat_bins=(kube-apiserver kube-scheduler)

build_etcd() {
  local out="$ACCEL_DRA_BIN/etcd-v$ETCD_VERSION"
  [ -x "$out/etcd" ] && return 0
  log "building etcd v$ETCD_VERSION (wrapper module; cold: a few minutes)"
  local w="$ACCEL_DRA_CACHE/src/etcd-v$ETCD_VERSION"
  mkdir -p "$w" && cd "$w"
  [ -f go.mod ] || go mod init local.build/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null 2>&1 || { go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"; exit 1; }
  CGO_ENABLED=0 ticking etcd go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3
  rm -rf "$out" && mv "$out.tmp" "$out"
}

# build_k8s VERSION BINARY...: the binaries of Kubernetes VERSION missing from
# $ACCEL_DRA_BIN/kubernetes-vVERSION/.
build_k8s() {
  local K8S_VERSION="$1"; shift
  local out="$ACCEL_DRA_BIN/kubernetes-v$K8S_VERSION" missing=()
  for b in "$@"; do [ -x "$out/$b" ] || missing+=("$b"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "building Kubernetes v$K8S_VERSION: ${missing[*]} (wrapper module; cold: 15-30 minutes on 2 cores)"
  local w="$ACCEL_DRA_CACHE/src/kubernetes-v$K8S_VERSION"
  local minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
  local staging_version="0.${K8S_VERSION#1.}"
  mkdir -p "$w" && cd "$w"
  if [ ! -f .prepared ]; then
    rm -f go.mod go.sum
    go mod init local.build/kubernetes >/dev/null 2>&1
    local gomod
    gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@v$K8S_VERSION's go.mod"
    # The wrapper asks for the Go version Kubernetes' own go.mod names (1.35: 1.25.0, 1.37: 1.26.0).
    local gov
    gov="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
    [ -n "$gov" ] || die "no go line in $gomod"
    go mod edit -go="$gov" -godebug="default=go${gov%.*}" -require="k8s.io/kubernetes@v$K8S_VERSION"
    for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod"); do
      go mod edit -replace="$m=$m@v$staging_version"
    done
    local pkgs=()
    for b in kube-apiserver kube-scheduler kube-controller-manager kubectl kubelet; do
      pkgs+=("k8s.io/kubernetes/cmd/$b@v$K8S_VERSION")
    done
    ticking "Kubernetes module downloads" go get "${pkgs[@]}"
    touch .prepared
  fi
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  mkdir -p "$out.tmp"
  for b in "${missing[@]}"; do
    local tb=$SECONDS
    log "  go build $b"
    # kubelet needs cgo for some host integrations; the control plane is static like upstream's.
    if [ "$b" = kubelet ]; then cgo=1; else cgo=0; fi
    CGO_ENABLED=$cgo ticking "$b" go build -trimpath -ldflags "$ld" -o "$out.tmp/$b" "k8s.io/kubernetes/cmd/$b"
    log "  built $b in $((SECONDS - tb))s (total $((SECONDS - t0))s)"
  done
  mkdir -p "$out" && mv "$out.tmp"/* "$out/" && rmdir "$out.tmp"
  cd "$REPO_ROOT"
}

# containerd 2.x (CDI on by default) for the real node. A wrapper module (upstream's go.mod may
# carry exclude/replace directives, which `go install pkg@version` refuses); static binaries
# without the btrfs snapshotter (which needs cgo + libbtrfs); version stamped so that
# `containerd --version` and the Node's containerRuntimeVersion read containerd://$CONTAINERD_VERSION.
build_containerd() {
  local out="$ACCEL_DRA_BIN/containerd-v$CONTAINERD_VERSION" b missing=()
  for b in containerd containerd-shim-runc-v2 ctr; do [ -x "$out/$b" ] || missing+=("$b"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "building containerd v$CONTAINERD_VERSION: ${missing[*]} (wrapper module; cold: a few minutes)"
  local w="$ACCEL_DRA_CACHE/src/containerd-v$CONTAINERD_VERSION" m=github.com/containerd/containerd/v2
  mkdir -p "$w" && cd "$w"
  if [ ! -f .prepared ]; then
    rm -f go.mod go.sum
    go mod init local.build/containerd >/dev/null 2>&1
    go get "$m/cmd/containerd@v$CONTAINERD_VERSION" "$m/cmd/containerd-shim-runc-v2@v$CONTAINERD_VERSION" \
      "$m/cmd/ctr@v$CONTAINERD_VERSION"
    touch .prepared
  fi
  local ld="-s -w -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Revision=v$CONTAINERD_VERSION"
  ld+=" -X $m/version.Package=github.com/containerd/containerd"
  mkdir -p "$out.tmp"
  for b in "${missing[@]}"; do
    local tb=$SECONDS
    log "  go build $b"
    CGO_ENABLED=0 ticking "$b" go build -trimpath -tags "no_btrfs" -ldflags "$ld" -o "$out.tmp/$b" "$m/cmd/$b"
    log "  built $b in $((SECONDS - tb))s (total $((SECONDS - t0))s)"
  done
  mkdir -p "$out" && mv "$out.tmp"/* "$out/" && rmdir "$out.tmp"
}

# helm v4 (deploy/helm/accel-dra): a wrapper module like the others (its go.mod asks for Go 1.26,
# which ensure_go provides). Static, version stamped (`helm version` prints v$HELM_VERSION).
build_helm() {
  local out="$ACCEL_DRA_BIN/helm-v$HELM_VERSION"
  [ -x "$out/helm" ] && return 0
  log "building helm v$HELM_VERSION (wrapper module; cold: a few minutes)"
  local w="$ACCEL_DRA_CACHE/src/helm-v$HELM_VERSION" m=helm.sh/helm/v4
  mkdir -p "$w" && cd "$w"
  if [ ! -f .prepared ]; then
    rm -f go.mod go.sum
    go mod init local.build/helm >/dev/null 2>&1
    go get "$m/cmd/helm@v$HELM_VERSION"
    touch .prepared
  fi
  local ld="-s -w -X $m/internal/version.version=v$HELM_VERSION"
  local tb=$SECONDS
  CGO_ENABLED=0 ticking helm go build -trimpath -ldflags "$ld" -o "$out.tmp/helm" "$m/cmd/helm"
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "  built helm in $((SECONDS - tb))s (total $((SECONDS - t0))s)"
}

t0=$SECONDS
ensure_go
mkdir -p "$ACCEL_DRA_BIN"
if [ "$what" = helm ]; then
  build_helm
  log "helm ready in $ACCEL_DRA_BIN/helm-v$HELM_VERSION ($((SECONDS - t0))s)"
  exit 0
fi
if [ "$what" = compat ]; then
  for v in $K8S_COMPAT_VERSIONS; do build_k8s "$v" "${k8s_compat_bins[@]}"; done
  log "compatibility binaries ready in $ACCEL_DRA_BIN ($((SECONDS - t0))s)"
  exit 0
fi
build_etcd
build_k8s "$K8S_VERSION" "${k8s_bins[@]}"
[ "$what" = control-plane ] || build_containerd
[ "$what" != all ] || build_helm
log "binaries ready in $ACCEL_DRA_BIN ($((SECONDS - t0))s)"
