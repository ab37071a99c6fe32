#!/usr/bin/env bash
# Adds a real node to a cluster started by up.sh: containerd 2.x (CRI, CDI on, runc, overlayfs)
# and kubelet (hack/lib.sh's K8S_VERSION, 1.37 by default), both confined to the run dir, then waits until the Node is Ready.
#
#   node-up.sh [--dir RUN_DIR | --name CLUSTER] [--node NODE]
#
#   --dir RUN_DIR  the run dir given to up.sh (default: <repo>/.e2e/cluster-NAME)
#   --name NAME    cluster name (only used for the default run dir; default: local)
#   --node NODE    the node (default: NODE_NAME from RUN_DIR/env); up.sh must have made
#                  RUN_DIR/kubeconfig-node-NODE for it (up.sh --node NODE). One real node per run dir.
#
# Environment: ACCEL_DRA_NODE_TIMEOUT (seconds to wait for each step, default 120),
# ACCEL_DRA_FEATURE_GATES (kubelet --feature-gates), ACCEL_DRA_LOG_V (klog verbosity, default 2).
#
# Layout (all under RUN_DIR; nothing under /var/lib/kubelet, /var/lib/containerd, /etc/cni):
#   containerd/{config.toml,containerd.sock,root,state,runc}   containerd, its CRI state, runc --root
#   kubelet/                   kubelet --root-dir: plugins_registry/ (DRA registration), plugins/
#   kubelet.yaml               the KubeletConfiguration
#   cdi/                       CDI spec dir read by containerd (give it to the plugin as --cdi-root)
#   cni/net.d/                 a loopback-only CNI config (pods get their own netns with only lo)
#   pod-logs/                  kubelet podLogsDir
#   node.env                   what down.sh needs to tear the node down (cgroup root, addresses)
#   logs/{containerd,kubelet}.log, pids/{containerd,kubelet}.pid
# Written to RUN_DIR/env: NODE_REAL=1, CONTAINERD_ADDRESS, CTR, KUBELET_ROOT_DIR,
# KUBELET_REGISTRAR_DIR, KUBELET_PLUGINS_DIR, CDI_ROOT, KUBELET_PORT.
# Stop with down.sh --dir RUN_DIR (stops the node too).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=cluster-lib.sh
. "$here/cluster-lib.sh"

name=local dir="" node=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir="$2"; shift 2 ;;
    --name) [ $# -ge 2 ] || die "--name needs a value"; name="$2"; shift 2 ;;
    --node) [ $# -ge 2 ] || die "--node needs a value"; node="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
dir="$(cluster_abs_dir "${dir:-$(cluster_default_dir "$name")}")"
cluster_load_env "$dir"
node="${node:-$NODE_NAME}"
timeout="${ACCEL_DRA_NODE_TIMEOUT:-120}"
log_v="${ACCEL_DRA_LOG_V:-2}"
feature_gates="${ACCEL_DRA_FEATURE_GATES:-}"

[ -f "$dir/kubeconfig-node-$node" ] || die "$dir/kubeconfig-node-$node is missing: start the cluster with up.sh --node $node"
[ ! -f "$dir/node.env" ] || die "a node already runs in $dir ($(sed -n 's/^NODE=//p' "$dir/node.env")); stop the cluster with down.sh --dir $dir"
[ -x "$K8S_BIN_DIR/kubelet" ] || die "$K8S_BIN_DIR/kubelet is missing; build it with hack/local-cluster/build.sh node"
for b in containerd containerd-shim-runc-v2 ctr; do
  [ -x "$CONTAINERD_BIN_DIR/$b" ] || die "$CONTAINERD_BIN_DIR/$b is missing; build it with hack/local-cluster/build.sh node"
done
runc="$(command -v runc || true)"
[ -n "$runc" ] || die "runc is missing: apt-get install runc (see hack/apt-packages.txt)"
# containerd brings up each pod's lo with the loopback plugin.
[ -x /usr/lib/cni/loopback ] || die "/usr/lib/cni/loopback is missing: apt-get install containernetworking-plugins"
[ "$(id -u)" = 0 ] || die "node-up.sh needs root (containers, mounts, cgroups)"

t0="$EPOCHREALTIME"
elapsed() { LC_ALL=C awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# --- host facts --------------------------------------------------------------------------------
cap_eff="$(awk '/^CapEff:/ {print $2}' /proc/self/status)"
has_sys_resource=0
(( (16#$cap_eff >> 24) & 1 )) && has_sys_resource=1
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then cgroup_mode=v2; else cgroup_mode=v1; fi
snapshotter=overlayfs
grep -qw overlay /proc/filesystems || snapshotter=native
log "host: cgroup $cgroup_mode, CAP_SYS_RESOURCE=$has_sys_resource, PID 1 $(cat /proc/1/comm), snapshotter $snapshotter"

# A per-run cgroup parent, so two nodes on one host (or a host kubelet) never share kubepods.
tag="$(printf '%s' "$dir" | sha256sum | cut -c1-8)"
cgroup_root="/accel-dra-$tag"
cni_net="accel-dra-$tag"
cgroup_dirs() { node_cgroup_dirs "$cgroup_root"; }

cd_=$dir/containerd
containerd_sock="$cd_/containerd.sock"
# Unix socket paths are limited to 107 bytes; the shim's own sockets live in /run/containerd/s.
[ ${#containerd_sock} -lt 100 ] || die "run dir path too long for a unix socket: $containerd_sock"
umask 022
mkdir -p "$cd_/root" "$cd_/state" "$cd_/runc" "$cd_/opt" "$dir/kubelet" "$dir/cdi" "$dir/cni/net.d" \
  "$dir/pod-logs" "$dir/logs" "$dir/pids"

{
  echo "# Written by node-up.sh; read by down.sh."
  printf 'NODE=%q\nCGROUP_ROOT=%q\nCNI_NET=%q\nCONTAINERD_ADDRESS=%q\n' "$node" "$cgroup_root" "$cni_net" "$containerd_sock"
} >"$dir/node.env"

# Host dirs that kubelet (/var/log/containers), libcni (/var/lib/cni) and the shims
# (/run/containerd/s) create when missing: made here and marked, so that the last node's teardown
# removes them again when they are empty (never one that existed before).
# kubelet also always makes /var/lib/kubelet/device-plugins/kubelet.sock (a fixed path that
# --root-dir does not move).
for d in /var/log/containers /var/lib/cni /run/containerd /var/lib/kubelet \
  /var/lib/kubelet/device-plugins; do node_host_dir_claim "$d"; done

# --- failure handling ----------------------------------------------------------------------------
# teardown: after a failure, stops the partial node (the control plane keeps running).
teardown() {
  log "stopping the partial node (the control plane keeps running; logs in $dir/logs)"
  node_teardown "$dir" || true
}
sup_init "$dir" node-up "$timeout" 0.2 40 teardown

# --- cgroups -----------------------------------------------------------------------------------
# kubelet requires cgroupRoot to exist; cpuset children start empty in v1, so copy the parent's.
sup_step cgroups
while read -r c; do
  mkdir -p "$c" || sup_fail cgroups "cannot create $c"
  for f in cpuset.cpus cpuset.mems; do
    if [ -f "$c/$f" ] && [ -z "$(cat "$c/$f")" ]; then cat "$(dirname "$c")/$f" >"$c/$f"; fi
  done
done < <(cgroup_dirs)

# --- containerd --------------------------------------------------------------------------------
# Pod networking without any traffic leaving the pod: each pod gets its own network namespace
# holding only lo (containerd brings it up itself), and 127.0.0.1 as its IP. Debian's loopback
# plugin alone is not enough: its result names the interface "lo", and containerd's CRI takes the
# pod IP from an interface named eth0 ("failed to find network info for sandbox"). This plugin
# only reports the namespace's loopback address under that name; it creates nothing.
mkdir -p "$dir/cni/bin"
cat >"$dir/cni/bin/accel-dra-lo" <<'EOF'
#!/bin/sh
# CNI plugin written by hack/local-cluster/node-up.sh: reports lo's 127.0.0.1 as the pod IP.
cat >/dev/null
case "$CNI_COMMAND" in
  ADD) printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"address":"127.0.0.1/8","interface":0}],"dns":{}}\n' "$CNI_IFNAME" "$CNI_NETNS" ;;
  VERSION) printf '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}\n' ;;
  *) ;;
esac
EOF
chmod 755 "$dir/cni/bin/accel-dra-lo"
cat >"$dir/cni/net.d/10-$cni_net.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$cni_net",
  "plugins": [{"type": "accel-dra-lo"}]
}
EOF
cat >"$cd_/config.toml" <<EOF
# Written by hack/local-cluster/node-up.sh.
version = 3
root = "$cd_/root"
state = "$cd_/state"
# Not built (btrfs) or not usable here; NRI would listen on /var/run/nri; no tracing.
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs", "io.containerd.nri.v1.nri",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$containerd_sock"
[ttrpc]
  address = "$containerd_sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$cd_/opt"
[plugins."io.containerd.nri.v1.nri"]
  disable = true
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "$snapshotter"
  # No registry: images are imported by images.sh and never pulled.
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "localhost/pause:local"
[plugins."io.containerd.cri.v1.runtime"]
  enable_cdi = true
  cdi_spec_dirs = ["$dir/cdi"]
  # Without CAP_SYS_RESOURCE runc cannot set the sandbox's oom_score_adj (-998).
  restrict_oom_score_adj = $([ "$has_sys_resource" = 1 ] && echo false || echo true)
  # Network namespaces under the state dir instead of /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$dir/cni/bin", "/usr/lib/cni"]
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$runc"
        # runc's state under the run dir instead of /run/containerd/runc.
        Root = "$cd_/runc"
        # PID 1 is not necessarily systemd: cgroupfs (kubelet matches it).
        SystemdCgroup = false
EOF
log "starting containerd $("$CONTAINERD_BIN_DIR/containerd" --version | awk '{print $3}')"
# The shim is found on PATH.
sup_start containerd env PATH="$CONTAINERD_BIN_DIR:$PATH" "$CONTAINERD_BIN_DIR/containerd" \
  --config "$cd_/config.toml" --log-level info
ctr_() { "$CONTAINERD_BIN_DIR/ctr" --address "$containerd_sock" "$@"; }
sup_wait containerd "containerd answering on $containerd_sock" ctr_ version
sup_step images
"$here/images.sh" --address "$containerd_sock" 2>>"$dir/logs/images.log" ||
  { sup_show_log images; sup_fail containerd "importing the images failed"; }

# --- kubelet -----------------------------------------------------------------------------------
read -r kubelet_port healthz_port <<<"$(free_ports 2)"
resolv=/etc/resolv.conf
[ -f "$resolv" ] || { : >"$dir/resolv.conf"; resolv="$dir/resolv.conf"; }
cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
containerRuntimeEndpoint: unix://$containerd_sock
imageServiceEndpoint: unix://$containerd_sock
# PID 1 is not systemd; this host has hybrid cgroups, which kubelet treats as v1 (deprecated,
# refused by default since 1.35 unless failCgroupV1 is false).
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: $cgroup_root
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $CA_CERT}
authorization: {mode: Webhook}
resolvConf: $resolv
podLogsDir: $dir/pod-logs
# No static pods. Images are imported, never pulled, and must not be garbage collected.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
serializeImagePulls: false
registerNode: true
maxPods: 110
EOF
# ACCEL_DRA_FEATURE_GATES (A=true,B=false) as the config's featureGates map (the flag is deprecated).
if [ -n "$feature_gates" ]; then
  echo "featureGates:" >>"$dir/kubelet.yaml"
  tr ',' '\n' <<<"$feature_gates" | awk -F= 'NF == 2 { printf "  %s: %s\n", $1, $2 }' >>"$dir/kubelet.yaml"
fi
log "starting kubelet v$K8S_VERSION as node $node"
sup_start kubelet "$K8S_BIN_DIR/kubelet" --config="$dir/kubelet.yaml" --kubeconfig="$dir/kubeconfig-node-$node" \
  --root-dir="$dir/kubelet" --cert-dir="$dir/kubelet/pki" --hostname-override="$node" --node-ip=127.0.0.1 \
  --v="$log_v"
sup_wait kubelet "GET http://127.0.0.1:$healthz_port/healthz" curl -sf --max-time 2 "http://127.0.0.1:$healthz_port/healthz"
# kubelet refuses a loopback --node-ip ("nodeIP can't be loopback address") and then leaves the
# Node without addresses: hostNetwork pods get no hostIP and the apiserver cannot reach kubelet
# (logs, exec). Setting them once as admin sticks: kubelet's address setter fails before touching
# them, so its status patches never change them.
node_exists() { "$KUBECTL" --kubeconfig "$dir/kubeconfig" get node "$node"; }
sup_wait kubelet "Node $node registered" node_exists
"$KUBECTL" --kubeconfig "$dir/kubeconfig" patch node "$node" --subresource=status --type=merge \
  -p "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"},{\"type\":\"Hostname\",\"address\":\"$node\"}]}}" \
  >/dev/null || sup_fail kubelet "could not set the addresses of Node $node"
node_ready() {
  [ "$("$KUBECTL" --kubeconfig "$dir/kubeconfig" get node "$node" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
sup_wait kubelet "Node $node Ready" node_ready

{
  e() { printf 'export %s=%q\n' "$1" "$2"; }
  e NODE_REAL 1
  e CONTAINERD_ADDRESS "$containerd_sock"
  e CTR "$CONTAINERD_BIN_DIR/ctr"
  e KUBELET_ROOT_DIR "$dir/kubelet"
  e KUBELET_REGISTRAR_DIR "$dir/kubelet/plugins_registry"
  e KUBELET_PLUGINS_DIR "$dir/kubelet/plugins"
  e CDI_ROOT "$dir/cdi"
  e KUBELET_PORT "$kubelet_port"
  e CONTAINERD_PID "${sup_pid[containerd]}"
  e KUBELET_PID "${sup_pid[kubelet]}"
} >>"$dir/env"
sup_ready
log "node $node Ready in $(elapsed)s: kubelet v$K8S_VERSION, containerd $("$CONTAINERD_BIN_DIR/containerd" --version | awk '{print $3}') (logs $dir/logs)"
log "plugin paths: --kubelet-registrar-directory-path $dir/kubelet/plugins_registry --kubelet-plugins-directory-path $dir/kubelet/plugins --cdi-root $dir/cdi"
