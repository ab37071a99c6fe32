#!/usr/bin/env bash
# Smoke test of a real node started by node-up.sh; prints PASS/FAIL lines, exits non-zero on a
# failure. Leaves the cluster up (stop it with down.sh).
#
#   node-smoke.sh [--dir RUN_DIR] [--plugin PATH]
#
#   1. pod: a busybox pod (own network namespace, imagePullPolicy Never) reaches Running and
#      `kubectl logs` shows "RESULT: ok".
#   2. cdi: containerd injects a hand-written CDI device (example.com/device=d0: env FOO=bar and
#      /dev/accel-test0 backed by /dev/null) into a `ctr run` container; without it, nothing.
#   3. dra (with --plugin PATH, an accel-dra-plugin binary): the plugin registers with this kubelet
#      (--simulate=2); a pod with a ResourceClaimTemplate runs, its claimed container sees ACCEL_*
#      env, the other container none; deleting the pod removes the claim's CDI spec.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=cluster-lib.sh
. "$here/cluster-lib.sh"

dir="" plugin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir="$2"; shift 2 ;;
    --plugin) [ $# -ge 2 ] || die "--plugin needs a value"; plugin="$(realpath "$2")"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
dir="$(cluster_abs_dir "${dir:-$(cluster_default_dir local)}")"
cluster_load_env "$dir"
[ "${NODE_REAL:-}" = 1 ] || die "no real node in $dir: start one with hack/local-cluster/node-up.sh --dir $dir"
k() { "$KUBECTL" --kubeconfig "$dir/kubeconfig" "$@"; }
failed=0
pass() { printf 'PASS %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; failed=1; }
# A container command that prints, then waits and exits at once on SIGTERM.
hold="trap 'exit 0' TERM; sleep 3600 & wait"

# --- 1. a plain pod ----------------------------------------------------------------------------
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: smoke-pod, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox:local
    imagePullPolicy: Never
    command: ["sh", "-c", "echo RESULT: ok; $hold"]
EOF
if k wait --for=condition=Ready pod/smoke-pod --timeout=60s >/dev/null && k logs smoke-pod | grep -qx 'RESULT: ok'; then
  pass "pod: smoke-pod Running, logs show RESULT: ok"
else
  fail "pod: smoke-pod"; k describe pod smoke-pod | tail -n 15
fi
k delete pod smoke-pod --wait=true >/dev/null

# --- 2. CDI injection by containerd (no kubelet: ctr reads specs from /etc/cdi, /var/run/cdi) ----
cat >"$CDI_ROOT/example.com-smoke.json" <<'EOF'
{"cdiVersion": "0.5.0", "kind": "example.com/device",
 "devices": [{"name": "d0", "containerEdits": {"env": ["FOO=bar"],
   "deviceNodes": [{"path": "/dev/accel-test0", "hostPath": "/dev/null"}]}}]}
EOF
# shellcheck disable=SC1091
. "$dir/node.env"
# ctr_cdi ID [--device D]: runs busybox with the run's CDI dir seen as /var/run/cdi (a private
# mount namespace with its own /run tmpfs; the host's /run is untouched).
ctr_cdi() {
  local id="$1"; shift
  # shellcheck disable=SC2016  # expanded by the inner shells
  unshare -m sh -c 'mount --make-rprivate / && mount -t tmpfs tmpfs /run && mkdir /run/cdi && mount --bind "$0" /run/cdi && exec "$@"' \
    "$CDI_ROOT" "$CTR" --address "$CONTAINERD_ADDRESS" -n k8s.io run --rm --fifo-dir "$dir/ctr-fifo" \
    --runc-binary "$(command -v runc)" --runc-root "$dir/containerd/runc" --cgroup "$CGROUP_ROOT/ctr/$id" "$@" \
    localhost/busybox:local "$id" sh -c 'echo FOO=$FOO; ls /dev/accel-test0 2>/dev/null || echo no-device' 2>&1 | grep -v DEPRECATION
}
out="$(ctr_cdi smoke-cdi --device example.com/device=d0 || true)"
if grep -qx 'FOO=bar' <<<"$out" && grep -qx /dev/accel-test0 <<<"$out"; then
  pass "cdi: example.com/device=d0 injected FOO=bar and /dev/accel-test0"
else fail "cdi: with the device: $out"; fi
out="$(ctr_cdi smoke-nocdi || true)"
if grep -qx 'FOO=' <<<"$out" && grep -qx no-device <<<"$out"; then
  pass "cdi: without the device, neither"
else fail "cdi: without the device: $out"; fi
rm -f "$CDI_ROOT/example.com-smoke.json"

# --- 3. the DRA path with our plugin -----------------------------------------------------------
if [ -n "$plugin" ]; then
  if [ ! -f "$dir/pids/plugin.pid" ] || ! pid_of_run "$(cat "$dir/pids/plugin.pid")" "$dir"; then
    setsid "$plugin" --simulate=2 --node-name "$NODE_NAME" --kubeconfig "$dir/kubeconfig" \
      --kubelet-registrar-directory-path "$KUBELET_REGISTRAR_DIR" --kubelet-plugins-directory-path "$KUBELET_PLUGINS_DIR" \
      --cdi-root "$CDI_ROOT" -v 2 </dev/null >"$dir/logs/plugin.log" 2>&1 &
    echo $! >"$dir/pids/plugin.pid"
  fi
  for _ in $(seq 100); do grep -q 'kubelet registered DRA driver' "$dir/logs/plugin.log" && break; sleep 0.2; done
  k apply -f - >/dev/null <<EOF
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: accel-dra.dev}
spec:
  selectors:
  - cel: {expression: 'device.driver == "accel-dra.dev"'}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: smoke-accel, namespace: default}
spec:
  spec:
    devices:
      requests:
      - name: accel
        exactly: {deviceClassName: accel-dra.dev}
---
apiVersion: v1
kind: Pod
metadata: {name: smoke-dra, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  resourceClaims:
  - {name: accel, resourceClaimTemplateName: smoke-accel}
  containers:
  - name: with-claim
    image: localhost/busybox:local
    imagePullPolicy: Never
    command: ["sh", "-c", "env | grep ^ACCEL_ | sort; echo RESULT: ok; $hold"]
    resources: {claims: [{name: accel}]}
  - name: without-claim
    image: localhost/busybox:local
    imagePullPolicy: Never
    command: ["sh", "-c", "echo ACCEL_VARS=\$(env | grep -c ^ACCEL_); echo RESULT: ok; $hold"]
EOF
  if k wait --for=condition=Ready pod/smoke-dra --timeout=90s >/dev/null; then
    with="$(k logs smoke-dra -c with-claim)" without="$(k logs smoke-dra -c without-claim)"
    printf '%s\n' "$with" | sed 's/^/    with-claim: /'
    if grep -q '^ACCEL_VISIBLE_DEVICES_[A-Z0-9_]*=' <<<"$with"; then pass "dra: claimed container sees ACCEL_* env"
    else fail "dra: claimed container has no ACCEL_* env"; fi
    if grep -qx 'ACCEL_VARS=0' <<<"$without"; then pass "dra: container without the claim sees none"
    else fail "dra: container without the claim: $without"; fi
    state="$(k get resourceclaims -o jsonpath='{.items[0].status.allocation.devices.results[0].device}')"
    if [ -n "$state" ]; then pass "dra: claim allocated ($state)"; else fail "dra: claim not allocated"; fi
  else
    fail "dra: smoke-dra not Ready"; k describe pod smoke-dra | tail -n 15
  fi
  k delete pod smoke-dra --wait=true >/dev/null
  specs_left() { compgen -G "$CDI_ROOT/*accel-dra*" >/dev/null; }
  for _ in $(seq 50); do specs_left || break; sleep 0.2; done
  if ! specs_left; then pass "dra: pod deleted, claim unprepared, CDI spec removed"
  else fail "dra: CDI spec left after the pod was deleted: $(ls "$CDI_ROOT")"; fi
fi
if [ "$failed" = 0 ]; then log "node smoke test passed"; else log "node smoke test FAILED (logs in $dir/logs)"; exit 1; fi
