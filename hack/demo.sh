#!/usr/bin/env bash
# The main demo: sets up this machine, starts a local Kubernetes 1.37 cluster on 127.0.0.1 with a
# real node (kubelet + containerd with CDI), installs accel-dra the way a user does (the image from
# deploy/Dockerfile, built by hack/image.sh and imported into the node's containerd, then the Helm
# chart deploy/helm/accel-dra with simulated devices that have real device nodes), applies the
# specs in demo/ and prints what each container received. Leaves everything running.
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
DEMO="$REPO_ROOT/demo"
NS=accel-demo
WAIT="${ACCEL_DRA_DEMO_TIMEOUT:-120}"

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

phase "helm install accel-dra (deploy/helm/accel-dra) with the simulated devices of demo/devices.yaml"
# shellcheck source-path=SCRIPTDIR source=local-cluster/cluster-lib.sh
. "$LC/cluster-lib.sh"
prof="$RUN_DIR/sim-profile.yaml"
sed "s#@RUN_DIR@#$RUN_DIR#g" "$DEMO/devices.yaml" >"$prof"
sim_device_nodes "$RUN_DIR" "$prof" >/dev/null
api_port="${APISERVER_URL##*:}"
# The webhook runs with host networking on the node's loopback address, which a Service's
# Endpoints cannot hold: the apiserver calls it at its URL (webhook.url) on a free port.
webhook_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# The node's paths (RUN_DIR), the apiserver on loopback (pods here have only lo: host network).
cat >"$RUN_DIR/accel-dra-values.yaml" <<VALUES
image: {repository: localhost/accel-dra, tag: demo, pullPolicy: Never}
hostNetwork: true
apiServer: {host: 127.0.0.1, port: "$api_port"}
kubeletPlugin: {registrarDir: $KUBELET_REGISTRAR_DIR, pluginsDir: $KUBELET_PLUGINS_DIR}
cdiRoot: $CDI_ROOT
inspectTool: {hostDir: $RUN_DIR/accel-dra-bin}
metrics: {enabled: true}
webhook: {enabled: true, port: $webhook_port, url: "https://127.0.0.1:$webhook_port/validate"}
simulation:
  hostPaths: [$RUN_DIR/dev]
VALUES
k label node "$NODE_NAME" accel-dra.dev/accelerator-node=true --overwrite >/dev/null
"$HELM" --kubeconfig "$KUBECONFIG" install accel-dra "$REPO_ROOT/deploy/helm/accel-dra" \
  --namespace accel-dra --create-namespace -f "$RUN_DIR/accel-dra-values.yaml" \
  --set-file simulation.profile="$prof" --wait --timeout "${WAIT}s"
k get pods -n accel-dra -o wide

echo
echo "== Devices published by accel-dra-plugin (name, product, memory, driver version)"
k get resourceslices --field-selector="spec.nodeName=$NODE_NAME" \
  -o jsonpath='{range .items[*].spec.devices[*]}{.name}{"\t"}{.attributes.productName.string}{"\t"}{.capacity.memory.value}{"\t"}{.attributes.driverVersion.version}{"\n"}{end}'

phase "applying demo/*.yaml"
k apply -f "$DEMO/namespace.yaml" >/dev/null  # the DeviceClass accel-dra.dev comes with the chart
# The CEL-selected pod first, so that the other claims cannot take the only matching devices.
k apply -f "$DEMO/scheduling.yaml" >/dev/null
k wait -n "$NS" --for=condition=PodScheduled pod/cel-selected --timeout="${WAIT}s" >/dev/null
for f in single two-devices shared time-slicing; do k apply -f "$DEMO/$f.yaml" >/dev/null; done

phase "waiting for the demo pods to run"
pods=(single two-devices shared-a shared-b cel-selected time-sliced)
for p in "${pods[@]}"; do
  if ! k wait -n "$NS" --for=condition=Ready "pod/$p" --timeout="${WAIT}s" >/dev/null 2>&1; then
    k describe -n "$NS" pod "$p" | tail -n 20 >&2
    printf -- '--- last 20 lines of the accel-dra plugin ---\n' >&2
    k logs -n accel-dra -l app.kubernetes.io/name=accel-dra --tail=20 >&2 || true
    die "pod $NS/$p is not Running after ${WAIT}s (kubelet log: $RUN_DIR/logs/kubelet.log, plugin: kubectl logs -n accel-dra ds/accel-dra)"
  fi
done
# Each container prints, then sleeps: wait until its output is there.
for p in "${pods[@]}"; do
  for _ in $(seq 50); do k logs -n "$NS" "$p" -c app 2>/dev/null | grep -q '^ACCEL variables:' && break; sleep 0.2; done
done

show() {  # show POD TITLE
  local claims c
  claims="$(k get pod -n "$NS" "$1" -o jsonpath='{range .status.resourceClaimStatuses[*]}{.resourceClaimName}{end}')"
  [ -n "$claims" ] || claims="$(k get pod -n "$NS" "$1" -o jsonpath='{.spec.resourceClaims[0].resourceClaimName}')"
  echo
  echo "== $2"
  echo "   pod $1, claim $claims: $(k get resourceclaim -n "$NS" "$claims" \
    -o jsonpath='{range .status.allocation.devices.results[*]}{.device} {end}')($(k get resourceclaim -n "$NS" "$claims" --no-headers | awk '{print $2}'))"
  for c in $(k get pod -n "$NS" "$1" -o jsonpath='{.spec.containers[*].name}'); do
    echo "   container $c saw:"
    k logs -n "$NS" "$1" -c "$c" | sed 's/^/     /'
  done
}
step="printing what the containers saw"
show single "1. one device (demo/single.yaml); the second container has no claim"
show two-devices "2. two devices in one pod (demo/two-devices.yaml)"
show shared-a "3. one claim shared by two pods (demo/shared.yaml): shared-a"
show shared-b "3. one claim shared by two pods (demo/shared.yaml): shared-b"
show cel-selected "4. selection by attribute with CEL: a 40GB device (demo/scheduling.yaml)"
show time-sliced "5. time-slicing configured with an opaque DeviceConfig (demo/time-slicing.yaml)"

echo
echo "== The admission webhook (webhook.enabled): an invalid DeviceConfig is rejected at creation"
if out="$(k create -n "$NS" --dry-run=server -f - 2>&1 <<'CLAIM'
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: invalid-config}
spec:
  devices:
    requests: [{name: accel, exactly: {deviceClassName: accel-dra.dev}}]
    config:
    - requests: [accel]
      opaque:
        driver: accel-dra.dev
        parameters:
          apiVersion: accel-dra.dev/v1alpha1
          kind: DeviceConfig
          sharing: {strategy: TimeSlicing, timeSlicing: {interval: VeryLong}}
CLAIM
)"; then
  echo "   not rejected (the webhook is not reachable; failurePolicy Ignore): $out"
else
  echo "$out" | fold -s -w 96 | sed 's/^/   /'
fi
echo
echo "== Metrics of the plugin (metrics.port on the pod's IP)"
ppod="$(k get pods -n accel-dra -l app.kubernetes.io/name=accel-dra -o jsonpath='{.items[0].metadata.name}')"
purl="http://$(k get pod -n accel-dra "$ppod" -o jsonpath='{.status.podIP}'):$(k get pod -n accel-dra "$ppod" -o jsonpath='{.spec.containers[0].readinessProbe.httpGet.port}')"
curl -fsS "$purl/metrics" | grep -E '^accel_dra_(prepare_requests_total|prepare_duration_seconds_count|published_devices)' | sed 's/^/   /' || true
echo "   /readyz: $(curl -sS "$purl/readyz" 2>&1 | head -c 200)"

echo
log "demo ready in $((SECONDS - t0))s; the cluster keeps running. To use it:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  alias kubectl=$KUBECTL"
echo "  kubectl get pods,resourceclaims -n $NS; kubectl get resourceslices"
echo "  kubectl logs -n accel-dra ds/accel-dra      # the plugin installed by helm"
echo "Logs: $RUN_DIR/logs/   Stop it with: hack/demo.sh down"
