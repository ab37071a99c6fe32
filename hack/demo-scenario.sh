#!/usr/bin/env bash
# The demo's scenario on a running local cluster with a real node (hack/local-cluster: RUN_DIR/env)
# whose containerd already holds the accel-dra image: helm-installs accel-dra with the simulated
# devices of demo/devices.yaml (one driver version for the node), applies demo/*.yaml, prints
# what each container saw, shows the webhook and the metrics, then deletes the demo pods (the
# devices are free again) and runs accel-dra-probe against the cluster, writing its evidence to
# RUN_DIR/evidence. hack/demo.sh runs it; tests/e2e/test_demo_probe.py runs it on the e2e node.
#   hack/demo-scenario.sh --dir RUN_DIR [--image REPO:TAG] [--probe PATH] [--keep-pods]
#     --image      the accel-dra image in the node's containerd (default localhost/accel-dra:demo)
#     --probe      accel-dra-probe to run at the end (default build/src/cmd/probe/accel-dra-probe;
#                  "" skips the probe)
#     --keep-pods  leave the demo pods running (then the probe is skipped: they hold the devices)
# ACCEL_DRA_DEMO_HELM_ARGS: extra helm install arguments (e.g. --set deviceMetadata=false for an
# older image). Exit status: the probe's (0: no check failed; partial checks are reported as partial).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN_DIR="" IMAGE="localhost/accel-dra:demo" PROBE="$REPO_ROOT/build/src/cmd/probe/accel-dra-probe"
keep_pods=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) RUN_DIR="$2"; shift 2 ;;
    --image) IMAGE="$2"; shift 2 ;;
    --probe) PROBE="$2"; shift 2 ;;
    --keep-pods) keep_pods=1; shift ;;
    *) die "usage: hack/demo-scenario.sh --dir RUN_DIR [--image REPO:TAG] [--probe PATH] [--keep-pods]" ;;
  esac
done
[ -n "$RUN_DIR" ] && [ -f "$RUN_DIR/env" ] || die "--dir RUN_DIR: no cluster there ($RUN_DIR/env is missing)"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"  # the chart gets host paths: absolute
LC="$REPO_ROOT/hack/local-cluster"
DEMO="$REPO_ROOT/demo"
NS=accel-demo
WAIT="${ACCEL_DRA_DEMO_TIMEOUT:-120}"
EVIDENCE="$RUN_DIR/evidence"
step="${step:-}"
phase() { step="$1"; log "== $1"; }
# shellcheck disable=SC1091
. "$RUN_DIR/env"
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }

phase "helm install accel-dra (deploy/helm/accel-dra) with the simulated devices of demo/devices.yaml"
# shellcheck source-path=SCRIPTDIR source=local-cluster/cluster-lib.sh
. "$LC/cluster-lib.sh"
prof="$RUN_DIR/sim-profile.yaml"
sed "s#@RUN_DIR@#$RUN_DIR#g" "$DEMO/devices.yaml" >"$prof"
sim_device_nodes "$RUN_DIR" "$prof" >/dev/null
# The simulated driver's version (driverVersionFile of demo/devices.yaml): one for the node.
mkdir -p "$RUN_DIR/sim-driver"
echo "${ACCEL_DRA_DEMO_DRIVER_VERSION:-1.2.0}" >"$RUN_DIR/sim-driver/version"
api_port="${APISERVER_URL##*:}"
# The webhook runs with host networking on the node's loopback address, which a Service's
# Endpoints cannot hold: the apiserver calls it at its URL (webhook.url) on a free port.
webhook_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# The node's paths (RUN_DIR), the apiserver on loopback (pods here have only lo: host network).
cat >"$RUN_DIR/accel-dra-values.yaml" <<VALUES
image: {repository: ${IMAGE%:*}, tag: ${IMAGE##*:}, pullPolicy: Never}
hostNetwork: true
apiServer: {host: 127.0.0.1, port: "$api_port"}
kubeletPlugin: {registrarDir: $KUBELET_REGISTRAR_DIR, pluginsDir: $KUBELET_PLUGINS_DIR}
cdiRoot: $CDI_ROOT
inspectTool: {hostDir: $RUN_DIR/accel-dra-bin}
metrics: {enabled: true}
webhook: {enabled: true, port: $webhook_port, url: "https://127.0.0.1:$webhook_port/validate"}
simulation:
  hostPaths: [$RUN_DIR/dev, $RUN_DIR/sim-driver]
VALUES
k label node "$NODE_NAME" accel-dra.dev/accelerator-node=true --overwrite >/dev/null
if ! "$HELM" --kubeconfig "$KUBECONFIG" install accel-dra "$REPO_ROOT/deploy/helm/accel-dra" \
  --namespace accel-dra --create-namespace -f "$RUN_DIR/accel-dra-values.yaml" \
  --set-file simulation.profile="$prof" --wait --timeout "${WAIT}s" ${ACCEL_DRA_DEMO_HELM_ARGS:-}; then
  k describe pods -n accel-dra | tail -n 40 >&2 || true
  k logs -n accel-dra -l app.kubernetes.io/name=accel-dra --tail=30 --prefix --all-containers >&2 || true
  die "helm install accel-dra: the plugin is not Ready after ${WAIT}s (kubelet log: $RUN_DIR/logs/kubelet.log)"
fi
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


versions="$(k get resourceslices --field-selector="spec.nodeName=$NODE_NAME,spec.driver=accel-dra.dev" \
  -o jsonpath='{range .items[*].spec.devices[*]}{.attributes.driverVersion.version}{"\n"}{end}' | sort -u | tr '\n' ' ')"
echo
echo "== Driver versions published on node $NODE_NAME: $versions(one kernel driver per node)"

if [ "$keep_pods" = 1 ]; then
  log "demo pods left running (--keep-pods): they hold the devices, so the probe is not run"
  exit 0
fi
phase "freeing the devices: deleting the demo pods and claims"
k delete -n "$NS" pods --all --wait=true --timeout="${WAIT}s" >/dev/null
k delete -n "$NS" resourceclaims --all --wait=true --timeout="${WAIT}s" >/dev/null
for _ in $(seq 60); do
  [ -z "$(k get resourceclaims -n "$NS" -o name 2>/dev/null)" ] && break
  sleep 1
done

if [ -z "$PROBE" ]; then
  log "no --probe: the probe is not run"
  exit 0
fi
[ -x "$PROBE" ] || die "$PROBE is missing (cmake --build build --target accel-dra-probe)"
phase "accel-dra-probe on the demo cluster (evidence in $EVIDENCE)"
rm -rf "$EVIDENCE"
rc=0
"$PROBE" run --kubeconfig "$KUBECONFIG" --image localhost/busybox:local --image-pull-policy Never \
  --output "$EVIDENCE" || rc=$?
echo
echo "== Evidence of accel-dra-probe (exit $rc: 0 = no check failed) in $EVIDENCE/:"
for f in evidence.md report.json junit.xml results.json e2e.log PRODUCT.yaml; do
  [ -f "$EVIDENCE/$f" ] && echo "   $EVIDENCE/$f"
done
echo "   Run it again: $PROBE run --kubeconfig $KUBECONFIG --image localhost/busybox:local --image-pull-policy Never --output $EVIDENCE"
exit "$rc"
