#!/usr/bin/env bash
# The main job: sets up this machine, starts a local Kubernetes 1.35 control plane on 127.0.0.1,
# runs accel-dra-plugin with simulated devices against it, shows what it published and a pod
# that the real kube-scheduler allocated a device to. Leaves everything running.
#   hack/demo.sh          set up and run (the first run builds Kubernetes: ~15-25 min)
#   hack/demo.sh down     stop the demo cluster and the plugin
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN_DIR="${ACCEL_DRA_DEMO_DIR:-$ACCEL_DRA_CACHE/demo}"
NODE="${ACCEL_DRA_DEMO_NODE:-node-0}"
DEVICES="${ACCEL_DRA_DEMO_DEVICES:-8}"
BUILD_DIR="$REPO_ROOT/build"

stop_demo() {
  if [ -f "$RUN_DIR/plugin.pid" ]; then
    kill "$(cat "$RUN_DIR/plugin.pid")" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$(cat "$RUN_DIR/plugin.pid")" 2>/dev/null || break; sleep 0.1; done
    rm -f "$RUN_DIR/plugin.pid"
  fi
  if [ -d "$RUN_DIR" ]; then "$REPO_ROOT/hack/local-cluster/down.sh" --dir "$RUN_DIR"; fi
}

if [ "${1:-}" = down ]; then stop_demo; log "demo stopped"; exit 0; fi

t0=$SECONDS
"$REPO_ROOT/hack/setup.sh" control-plane
"$REPO_ROOT/hack/build.sh" "$BUILD_DIR"
PLUGIN="$BUILD_DIR/src/cmd/plugin/accel-dra-plugin"

stop_demo >/dev/null 2>&1 || true
log "starting the local control plane in $RUN_DIR"
"$REPO_ROOT/hack/local-cluster/up.sh" --dir "$RUN_DIR" --name demo --node "$NODE" --replace
# shellcheck disable=SC1091
. "$RUN_DIR/env"
"$REPO_ROOT/hack/local-cluster/node.sh" "$NODE" --dir "$RUN_DIR" >/dev/null

log "starting accel-dra-plugin with $DEVICES simulated devices (log: $RUN_DIR/logs/plugin.log)"
mkdir -p "$RUN_DIR/kubelet/plugins_registry" "$RUN_DIR/kubelet/plugins" "$RUN_DIR/cdi"
setsid "$PLUGIN" --kubeconfig="$KUBECONFIG" --node-name="$NODE" --simulate="$DEVICES" \
  --kubelet-registrar-directory-path="$RUN_DIR/kubelet/plugins_registry" \
  --kubelet-plugins-directory-path="$RUN_DIR/kubelet/plugins" \
  --cdi-root="$RUN_DIR/cdi" >"$RUN_DIR/logs/plugin.log" 2>&1 &
echo $! >"$RUN_DIR/plugin.pid"

for _ in $(seq 100); do
  n=$("$KUBECTL" get resourceslices --field-selector="spec.nodeName=$NODE" -o name 2>/dev/null | wc -l)
  [ "$n" -gt 0 ] && break
  kill -0 "$(cat "$RUN_DIR/plugin.pid")" 2>/dev/null || { tail -20 "$RUN_DIR/logs/plugin.log"; die "the plugin exited (log: $RUN_DIR/logs/plugin.log)"; }
  sleep 0.1
done
[ "$n" -gt 0 ] || die "no ResourceSlice appeared within 10 s (log: $RUN_DIR/logs/plugin.log)"

echo
echo "== ResourceSlices published by accel-dra-plugin"
"$KUBECTL" get resourceslices -o wide
echo
echo "== Devices (name, product, driverVersion, memory)"
"$KUBECTL" get resourceslices --field-selector="spec.nodeName=$NODE" \
  -o jsonpath='{range .items[*].spec.devices[*]}{.name}{"\t"}{.attributes.productName.string}{"\t"}{.attributes.driverVersion.version}{"\t"}{.capacity.memory.value}{"\n"}{end}'

echo
echo "== A pod asking for one device with a CEL selector; the real kube-scheduler allocates it"
"$KUBECTL" apply -f "$REPO_ROOT/demo/scheduling.yaml" >/dev/null
for _ in $(seq 100); do
  claim=$("$KUBECTL" get pod demo-pod -o jsonpath='{.status.resourceClaimStatuses[0].resourceClaimName}' 2>/dev/null || true)
  if [ -n "$claim" ] && [ -n "$("$KUBECTL" get resourceclaim "$claim" -o jsonpath='{.status.allocation}' 2>/dev/null)" ]; then break; fi
  sleep 0.2
done
"$KUBECTL" get resourceclaims -o wide
echo
"$KUBECTL" get resourceclaim "$claim" -o jsonpath='allocated: {range .status.allocation.devices.results[*]}{.driver}/{.pool}/{.device} (request {.request}){"\n"}{end}'
echo "(no kubelet runs in this demo yet, so the pod stays Pending after being bound to $NODE)"

echo
log "demo ready in $((SECONDS - t0))s. To use the cluster:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  $KUBECTL get resourceslices"
echo "Stop it with: hack/demo.sh down"
