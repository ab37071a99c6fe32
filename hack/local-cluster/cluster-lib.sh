# Shared helpers for the local control plane scripts (up.sh, down.sh, node.sh).
# Source it after hack/lib.sh; it changes nothing by itself.
# shellcheck shell=bash

# shellcheck disable=SC2034  # used by the scripts that source this file
K8S_BIN_DIR="$ACCEL_DRA_BIN/kubernetes-v$K8S_VERSION"
# shellcheck disable=SC2034
ETCD_BIN="$ACCEL_DRA_BIN/etcd-v$ETCD_VERSION/etcd"
# Marker file that says "this directory is a run dir made by up.sh" (down.sh only deletes those).
# shellcheck disable=SC2034
CLUSTER_MARKER=".accel-dra-cluster"

# cluster_default_dir NAME: the run dir used when --dir is not given.
cluster_default_dir() { printf '%s/.e2e/cluster-%s\n' "$REPO_ROOT" "$1"; }

# cluster_abs_dir DIR: absolute, normalised path (the directory need not exist).
cluster_abs_dir() {
  local d="$1"
  [ -n "$d" ] || die "empty run dir"
  case "$d" in /*) ;; *) d="$PWD/$d" ;; esac
  realpath -m -- "$d"
}

# pid_alive PID: true when PID exists and is not a zombie.
pid_alive() {
  local st
  [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] || return 1
  st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# pid_cmdline PID: the command line with NULs turned into spaces (empty if gone).
pid_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# pid_of_run PID RUN_DIR: true when PID is alive and its command line mentions RUN_DIR/ (guards
# against PID reuse: every component is started with paths inside its run dir).
pid_of_run() {
  pid_alive "$1" || return 1
  case "$(pid_cmdline "$1")" in *"$2/"*) return 0 ;; *) return 1 ;; esac
}

# run_pids RUN_DIR: PIDs of every process whose command line mentions RUN_DIR/, except this
# shell and its ancestors (a caller's command line may mention the run dir too).
run_pids() {
  local dir="$1" p cmd skip=" " a="$BASHPID"
  while [ -n "$a" ] && [ "$a" -gt 1 ] 2>/dev/null; do
    skip+="$a "
    a="$(awk '/^PPid:/ {print $2}' "/proc/$a/status" 2>/dev/null || true)"
  done
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    case "$skip" in *" $p "*) continue ;; esac
    [ -r "/proc/$p/cmdline" ] || continue
    cmd="$(pid_cmdline "$p")"
    case "$cmd" in *"$dir/"*) pid_alive "$p" && echo "$p" ;; esac
  done
  return 0
}

# free_ports N: N distinct free TCP ports on 127.0.0.1, space separated. Picked at random from
# 20000-32767 (below Linux's ephemeral range, so outgoing connections don't race for them) and
# checked by binding, so a test cluster and a demo cluster can run side by side.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n, rng, socks, ports = int(sys.argv[1]), random.SystemRandom(), [], []
for _ in range(10000):
    if len(ports) == n:
        break
    p = rng.randrange(20000, 32768)
    if p in ports:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close()
        continue
    socks.append(s)
    ports.append(p)
if len(ports) != n:
    sys.exit("could not find %d free ports on 127.0.0.1" % n)
print(" ".join(map(str, ports)))
EOF
}

# cluster_load_env RUN_DIR: sources RUN_DIR/env (dies with a hint when the cluster is not up).
cluster_load_env() {
  local dir="$1"
  [ -f "$dir/env" ] || die "no cluster in $dir (missing $dir/env); start one with hack/local-cluster/up.sh --dir $dir"
  # shellcheck disable=SC1091
  . "$dir/env"
}

# cluster_make_node NAME [--cpu N] [--memory Q] [--pods N] [--label k=v]...: creates or refreshes a
# static Node (no kubelet) that the scheduler can place pods on. Needs KUBECTL and KUBECONFIG
# (cluster_load_env). Idempotent: re-running refreshes the status and the heartbeat.
cluster_make_node() {
  local name="${1:-}"; shift || true
  [ -n "$name" ] || die "cluster_make_node: missing node name"
  local cpu=8 memory=32Gi pods=110 labels=() arch
  while [ $# -gt 0 ]; do
    case "$1" in
      --cpu) cpu="$2"; shift 2 ;;
      --memory) memory="$2"; shift 2 ;;
      --pods) pods="$2"; shift 2 ;;
      --label) labels+=("$2"); shift 2 ;;
      *) die "cluster_make_node: unknown option $1" ;;
    esac
  done
  arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
  local manifest l
  manifest="apiVersion: v1
kind: Node
metadata:
  name: $name
  labels:
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: $arch"
  for l in "${labels[@]}"; do
    [[ "$l" == *=* ]] || die "cluster_make_node: label must be key=value: $l"
    manifest+=$'\n'"    ${l%%=*}: \"${l#*=}\""
  done
  printf '%s\n' "$manifest" |
    "$KUBECTL" apply --server-side --field-manager=accel-dra-node-sh -f - >/dev/null ||
    die "could not create Node $name"
  # Nodes created while the TaintNodesByCondition admission plugin is on get a not-ready taint that
  # only the (disabled) node-lifecycle controller would remove. up.sh turns the plugin off; this
  # keeps node.sh usable against clusters that have it on.
  local taints
  taints="$("$KUBECTL" get node "$name" -o jsonpath='{.spec.taints[*].key}')"
  if [[ " $taints " == *" node.kubernetes.io/not-ready "* ]]; then
    "$KUBECTL" taint node "$name" node.kubernetes.io/not-ready- >/dev/null || die "could not untaint Node $name"
  fi
  local now status
  now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  status="$(cat <<EOF
{"status": {
  "capacity": {"cpu": "$cpu", "memory": "$memory", "pods": "$pods", "ephemeral-storage": "100Gi"},
  "allocatable": {"cpu": "$cpu", "memory": "$memory", "pods": "$pods", "ephemeral-storage": "100Gi"},
  "conditions": [
    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "static node", "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"},
    {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "static node", "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"},
    {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "static node", "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"},
    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "static node created by accel-dra node.sh", "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"}
  ],
  "addresses": [{"type": "Hostname", "address": "$name"}],
  "nodeInfo": {"containerRuntimeVersion": "containerd://2.1.4", "kubeletVersion": "v$K8S_VERSION",
               "operatingSystem": "linux", "architecture": "$arch",
               "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "$(uname -r)"}
}}
EOF
)"
  "$KUBECTL" patch node "$name" --subresource=status --type=merge -p "$status" >/dev/null ||
    die "could not set the status of Node $name"
}
