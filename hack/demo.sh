#!/usr/bin/env bash
# The main demo: sets up this machine, starts a local Kubernetes 1.37 cluster on 127.0.0.1 with a
# real node (kubelet + containerd with CDI), installs accel-dra the way a user does (the image from
# deploy/Dockerfile, built by hack/image.sh and imported into the node's containerd, then the Helm
# chart deploy/helm/accel-dra with simulated devices that have real device nodes), applies the
# specs in demo/ and prints what each container received, then deletes the demo pods (the devices
# are free again) and runs accel-dra-probe, printing where its evidence is (RUN_DIR/evidence).
# The scenario itself is hack/demo-scenario.sh. Leaves the cluster running.
#   hack/demo.sh          set up and run (the first run builds Kubernetes, containerd and helm:
#                         ~20-30 min, and the image: ~10-15 min; progress and elapsed time are
#                         printed while it builds)
#   hack/demo.sh down     stop the demo cluster, node and plugin
# Run dir: $ACCEL_DRA_CACHE/demo (ACCEL_DRA_DEMO_DIR overrides); logs in RUN_DIR/logs/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN_DIR="${ACCEL_DRA_DEMO_DIR:-$ACCEL_DRA_CACHE/demo}"
BUILD_DIR="$REPO_ROOT/build"
LC="$REPO_ROOT/hack/local-cluster"
NS=accel-demo

if [ "${1:-}" = down ]; then
  "$LC/down.sh" --dir "$RUN_DIR"
  log "demo stopped"
  exit 0
fi
[ $# -eq 0 ] || die "usage: hack/demo.sh [down]"

t0=$SECONDS
step=""
on_exit() {
  local rc=$?
  [ "$rc" = 0 ] && return 0
  printf '\nerror: the demo failed at step "%s" (exit code %s) after %ss.\n' "$step" "$rc" "$((SECONDS - t0))" >&2
  [ -d "$RUN_DIR/logs" ] && printf 'Component logs: %s/logs/ (%s)\n' "$RUN_DIR" \
    "$(cd "$RUN_DIR/logs" && ls | tr '\n' ' ')" >&2
  printf 'Stop what is left with: hack/demo.sh down\n' >&2
}
trap on_exit EXIT
phase() { step="$1"; log "== $1 ($((SECONDS - t0))s)"; }

phase "setup: Debian packages, etcd, Kubernetes (incl. kubelet), containerd"
"$REPO_ROOT/hack/setup.sh" all
phase "image: localhost/accel-dra:demo from deploy/Dockerfile (hack/image.sh)"
"$REPO_ROOT/hack/image.sh" --tag demo --out "$ACCEL_DRA_CACHE/images/accel-dra-demo.tar"

phase "control plane in $RUN_DIR"
"$LC/down.sh" --dir "$RUN_DIR" --quiet
"$LC/up.sh" --dir "$RUN_DIR" --name demo --replace
phase "node: containerd + kubelet"
"$LC/node-up.sh" --dir "$RUN_DIR"
# shellcheck disable=SC1091
. "$RUN_DIR/env"
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }
"$CTR" --address "$CONTAINERD_ADDRESS" -n k8s.io images import --no-unpack=false \
  "$ACCEL_DRA_CACHE/images/accel-dra-demo.tar" >/dev/null

phase "accel-dra-probe on the host (build/), for the evidence at the end"
[ -f "$BUILD_DIR/build.ninja" ] || configure "$BUILD_DIR"
nice -n 10 cmake --build "$BUILD_DIR" --target accel-dra-probe >"$RUN_DIR/logs/probe-build.log" 2>&1 \
  || die "building accel-dra-probe failed (log: $RUN_DIR/logs/probe-build.log)"

phase "the demo scenario (hack/demo-scenario.sh): helm install, demo/*.yaml, then the probe"
probe_rc=0
"$REPO_ROOT/hack/demo-scenario.sh" --dir "$RUN_DIR" --image localhost/accel-dra:demo \
  --probe "$BUILD_DIR/src/cmd/probe/accel-dra-probe" || probe_rc=$?
[ "$probe_rc" -le 1 ] || die "the demo scenario failed (exit $probe_rc)"
[ "$probe_rc" = 0 ] || log "warning: accel-dra-probe reports a failed check (see the evidence)"

echo
log "demo ready in $((SECONDS - t0))s; the cluster keeps running (devices free again). To use it:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  alias kubectl=$KUBECTL"
echo "  kubectl get pods,resourceclaims -n $NS; kubectl get resourceslices"
echo "  kubectl logs -n accel-dra ds/accel-dra      # the plugin installed by helm"
echo "  kubectl apply -f $REPO_ROOT/demo/single.yaml   # a demo pod again (its namespace stays)"
echo "Conformance evidence: $RUN_DIR/evidence/evidence.md (also report.json, junit.xml, results.json,"
echo "  e2e.log, PRODUCT.yaml). Run the probe again:"
echo "  $BUILD_DIR/src/cmd/probe/accel-dra-probe run --kubeconfig $KUBECONFIG \\"
echo "    --image localhost/busybox:local --image-pull-policy Never --output $RUN_DIR/evidence"
echo "Logs: $RUN_DIR/logs/   Stop it with: hack/demo.sh down"
