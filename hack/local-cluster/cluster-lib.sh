# Shared helpers for the local control plane scripts (up.sh, node-up.sh, down.sh, node.sh, ...).
# Source it after hack/lib.sh; it changes nothing by itself.
# shellcheck shell=bash

# shellcheck disable=SC2034  # used by the scripts that source this file
K8S_BIN_DIR="$ACCEL_DRA_BIN/kubernetes-v$K8S_VERSION"
# kubectl of the default version, also for an older control plane (hack/lib.sh's K8S_VERSION).
KUBECTL_BIN="$ACCEL_DRA_BIN/kubernetes-v$(unset K8S_VERSION; . "$REPO_ROOT/hack/lib.sh"; echo "$K8S_VERSION")/kubectl"
# shellcheck disable=SC2034
ETCD_BIN="$ACCEL_DRA_BIN/etcd-v$ETCD_VERSION/etcd"
# containerd for the real node (node-up.sh); built by build.sh node. Pinned here because lib.sh is
# shared with the rest of the repo.
CONTAINERD_VERSION="${CONTAINERD_VERSION:-2.2.9}"
# shellcheck disable=SC2034
CONTAINERD_BIN_DIR="$ACCEL_DRA_BIN/containerd-v$CONTAINERD_VERSION"
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

# pid_cmdline PID: the command line with NULs turned into spaces (empty, and silent, if gone:
# stderr is redirected before the input, so a process that just exited prints nothing).
pid_cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }

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

# --- supervised daemons (up.sh, node-up.sh) ------------------------------------------------------
# A script that starts daemons calls sup_init once, then sup_start and sup_wait for each daemon.
# Each daemon runs in its own session (setsid, so its own process group), logs to
# RUN_DIR/logs/NAME.log and has its PID in RUN_DIR/pids/NAME.pid (sup_pid[NAME] too). A failure
# names the component being started, shows the tail of its log and exits; the EXIT trap then
# calls the script's clean-up and exits with the failure's code. sup_ready disarms the trap once
# everything is up.

# sup_init RUN_DIR WHAT TIMEOUT POLL LOG_LINES CLEANUP: WHAT names the script in "error: WHAT
# failed while starting NAME"; sup_wait gives up after TIMEOUT seconds, checking every POLL
# seconds; a failure shows the last LOG_LINES lines of the log; CLEANUP is the function the EXIT
# trap calls after a failure (sup_failed then names the component sup_fail blamed, if any; it may
# exec to retry). Installs the EXIT, INT and TERM traps.
sup_init() {
  sup_dir="$1" sup_what="$2" sup_timeout="$3" sup_poll="$4" sup_log_lines="$5" sup_cleanup="$6"
  declare -gA sup_pid=()
  sup_started=()
  sup_current=""  # the component being started or waited for, blamed when something goes wrong
  sup_failed=""
  sup_is_ready=0
  trap sup_on_exit EXIT
  trap 'exit 130' INT TERM
}

# sup_step NAME: NAME is blamed for what goes wrong from now on (a step that is not a daemon).
sup_step() { sup_current="$1"; }

# sup_show_log NAME: the tail of RUN_DIR/logs/NAME.log on stderr (nothing when there is none).
sup_show_log() {
  local f="$sup_dir/logs/$1.log"
  [ -f "$f" ] || return 0
  printf -- '--- last %s lines of %s ---\n' "$sup_log_lines" "$f" >&2
  tail -n "$sup_log_lines" "$f" >&2
  printf -- '--- end of %s ---\n' "$1" >&2
}

# sup_fail NAME MESSAGE: reports, shows NAME's log and exits 1; the EXIT trap cleans up.
sup_fail() {
  printf 'error: %s: %s\n' "$1" "$2" >&2
  sup_show_log "$1"
  sup_failed="$1"
  sup_current=""
  exit 1
}

sup_on_exit() {
  local rc=$?
  [ "$sup_is_ready" = 1 ] && return 0
  trap - EXIT
  if [ -n "$sup_current" ]; then
    printf 'error: %s failed while starting %s (exit code %s)\n' "$sup_what" "$sup_current" "$rc" >&2
    sup_show_log "$sup_current"
  fi
  "$sup_cleanup"
  exit "$rc"
}

# sup_start NAME CMD...: runs CMD in the background, in its own session, with its output in
# RUN_DIR/logs/NAME.log and its PID in RUN_DIR/pids/NAME.pid.
sup_start() {
  local name="$1"; shift
  sup_current="$name"
  setsid "$@" </dev/null >"$sup_dir/logs/$name.log" 2>&1 &
  sup_pid[$name]=$!
  sup_started+=("$name")
  echo "${sup_pid[$name]}" >"$sup_dir/pids/$name.pid"
}

# sup_check_alive: fails with the first started daemon that exited.
sup_check_alive() {
  local c rc
  for c in "${sup_started[@]}"; do
    if ! pid_alive "${sup_pid[$c]}"; then
      rc=0; wait "${sup_pid[$c]}" 2>/dev/null || rc=$?
      sup_fail "$c" "exited unexpectedly (exit code $rc)"
    fi
  done
}

# sup_wait NAME WHAT CMD...: polls CMD until it succeeds; fails when any daemon exits or after
# TIMEOUT seconds (blaming NAME, with WHAT in the message).
sup_wait() {
  local name="$1" what="$2"; shift 2
  local deadline=$((SECONDS + sup_timeout))
  sup_current="$name"
  until "$@" >/dev/null 2>&1; do
    sup_check_alive
    [ "$SECONDS" -lt "$deadline" ] || sup_fail "$name" "not ready after ${sup_timeout}s: $what"
    sleep "$sup_poll"
  done
}

# sup_ready: everything is up; the EXIT trap no longer cleans up.
sup_ready() { sup_is_ready=1; sup_current=""; }

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

# --- the real node (node-up.sh) ----------------------------------------------------------------

# node_cgroup_dirs CGROUP_ROOT: CGROUP_ROOT's directory in every mounted cgroup hierarchy (each v1
# controller and the unified one).
node_cgroup_dirs() {
  awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo 2>/dev/null | sort -u |
    while read -r m; do printf '%s%s\n' "$m" "$1"; done
}

# node_mounts DIR: mount points at or under DIR, deepest (latest) first.
node_mounts() {
  # Field 5 is the mount point with spaces etc. octal-escaped; printf %b unescapes.
  awk '{ print $5 }' /proc/self/mountinfo | tac | while read -r m; do
    m="$(printf '%b' "$m")"
    case "$m" in "$1"|"$1"/*) printf '%s\n' "$m" ;; esac
  done
}

# node_kill_wait SECONDS PID...: SIGTERM, then SIGKILL after SECONDS.
node_kill_wait() {
  local t="$1" p deadline alive; shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  deadline=$((SECONDS + t))
  while :; do
    alive=0
    for p in "$@"; do pid_alive "$p" && { alive=1; break; }; done
    [ "$alive" = 0 ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
  sleep 0.2
}

# node_host_dir_claim DIR: creates DIR when missing and marks it (xattr user.accel-dra) as made
# by us. node_host_dir_release DIR: removes DIR if we made it and it is empty.
node_host_dir_claim() {
  [ -d "$1" ] && return 0
  mkdir -p "$1"
  python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.accel-dra", b"created")' "$1" 2>/dev/null || true
}
node_host_dir_release() {
  [ -d "$1" ] || return 0
  python3 -c 'import os, sys; os.getxattr(sys.argv[1], "user.accel-dra")' "$1" 2>/dev/null || return 0
  rmdir "$1" 2>/dev/null || true
}

# node_others_running: true when another node-up.sh node (a kubelet or containerd from our
# build dirs) runs on this host.
node_others_running() {
  local p exe
  for p in /proc/[0-9]*; do
    exe="$(readlink "$p/exe" 2>/dev/null)" || continue
    case "$exe" in "$K8S_BIN_DIR/kubelet"|"$CONTAINERD_BIN_DIR/containerd") return 0 ;; esac
  done
  return 1
}

# node_teardown RUN_DIR: stops the real node started by node-up.sh (kubelet, every container,
# the shims, containerd), unmounts everything under RUN_DIR, removes the node's cgroups and the
# few host files containerd and kubelet put outside RUN_DIR (shim sockets in /run/containerd/s,
# /var/log/containers symlinks, CNI result cache). Idempotent; a no-op without RUN_DIR/node.env.
# Returns non-zero when a mount under RUN_DIR could not be removed.
node_teardown() {
  local dir="$1" NODE="" CGROUP_ROOT="" CNI_NET="" CONTAINERD_ADDRESS=""
  [ -f "$dir/node.env" ] || return 0
  # shellcheck disable=SC1091
  . "$dir/node.env"
  local p f c pids=() socks=() rc=0
  # 1. kubelet first, so it does not restart what we stop.
  f="$dir/pids/kubelet.pid"
  if [ -f "$f" ]; then p="$(tr -dc '0-9' <"$f")"; pid_of_run "$p" "$dir" && node_kill_wait 10 "$p"; fi
  # 2. Every container process: all PIDs in the node's cgroups (repeat: a dying init may fork).
  if [ -n "$CGROUP_ROOT" ]; then
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      mapfile -t pids < <(node_cgroup_dirs "$CGROUP_ROOT" | while read -r c; do
        [ -d "$c" ] && find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u)
      [ ${#pids[@]} -gt 0 ] || break
      kill -KILL "${pids[@]}" 2>/dev/null || true
      sleep 0.2
    done
  fi
  # 3. The shims (their command line names our containerd's address) and their sockets, which
  #    containerd 2.x always puts in /run/containerd/s/<sha256(address/namespace/id)>.
  if [ -d "$dir/containerd/state" ]; then
    for f in "$dir"/containerd/state/io.containerd.runtime.v2.task/*/*/address; do
      [ -f "$f" ] && socks+=("$(sed 's#^unix://##' "$f")")
    done
  fi
  pids=()
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    local cmd
    cmd="$(pid_cmdline "$p")"
    case "$cmd" in *containerd-shim*"-address $CONTAINERD_ADDRESS "*|*containerd-shim*"-address $CONTAINERD_ADDRESS") ;; *) continue ;; esac
    pids+=("$p")
    local ns id
    ns="$(sed -n 's/.*-namespace \([^ ]*\).*/\1/p' <<<"$cmd")"
    id="$(sed -n 's/.* -id \([^ ]*\).*/\1/p' <<<"$cmd")"
    if [ -n "$ns" ] && [ -n "$id" ]; then
      socks+=("/run/containerd/s/$(printf '%s' "$CONTAINERD_ADDRESS/$ns/$id" | sha256sum | cut -d' ' -f1)")
      socks+=("/run/containerd/s/$(printf '%s' "$CONTAINERD_ADDRESS/$ns/$id/debug" | sha256sum | cut -d' ' -f1)")
    fi
  done
  # 4. containerd, then the shims.
  f="$dir/pids/containerd.pid"
  if [ -f "$f" ]; then p="$(tr -dc '0-9' <"$f")"; pid_of_run "$p" "$dir" && node_kill_wait 10 "$p"; fi
  node_kill_wait 2 "${pids[@]}"
  for f in "${socks[@]}"; do case "$f" in /run/containerd/s/*) rm -f "$f" ;; esac; done

  # 5. Mounts under the run dir (container rootfs, shm, netns, kubelet volumes, kubelet's rshared
  #    bind of its root dir). Lazy unmount as the last resort.
  local m left
  for _ in 1 2 3; do
    while read -r m; do
      [ -n "$m" ] || continue
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(node_mounts "$dir")
    [ -z "$(node_mounts "$dir")" ] && break
    sleep 0.3
  done
  left="$(node_mounts "$dir")"
  if [ -n "$left" ]; then printf 'error: still mounted under %s:\n%s\n' "$dir" "$left" >&2; rc=1; fi
  # 6. The node's cgroups, deepest first.
  if [ -n "$CGROUP_ROOT" ]; then
    node_cgroup_dirs "$CGROUP_ROOT" | while read -r c; do
      if [ -d "$c" ]; then find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    done
  fi
  # 7. Host files: kubelet's /var/log/containers symlinks into our pod logs; the CNI result cache.
  if [ -d /var/log/containers ]; then
    for f in /var/log/containers/*; do
      [ -L "$f" ] || continue
      case "$(readlink "$f")" in "$dir"/*) rm -f "$f" ;; esac
    done
  fi
  # libcni caches ADD results in /var/lib/cni/results/<network>-<sandbox id>-<ifname> (a DEL
  # removes them; killed pods keep them): remove those of our sandboxes.
  if [ -d /var/lib/cni/results ] && [ -d "$dir/containerd/state/io.containerd.grpc.v1.cri/sandboxes" ]; then
    for f in "$dir"/containerd/state/io.containerd.grpc.v1.cri/sandboxes/*; do
      [ -d "$f" ] && rm -f /var/lib/cni/results/*-"$(basename "$f")"-* 2>/dev/null
    done
  fi
  if [ -n "$CNI_NET" ]; then rm -f /var/lib/cni/results/"$CNI_NET"-* 2>/dev/null || true; fi
  # 8. The host dirs node-up.sh made, once no other node of ours runs and they are empty.
  if ! node_others_running; then
    rmdir /run/containerd/s /var/lib/cni/results 2>/dev/null || true
    # kubelet's device-plugin registration socket (fixed path): stale once no kubelet at all
    # runs here; a host kubelet's live socket is never touched.
    if [ -S /var/lib/kubelet/device-plugins/kubelet.sock ]; then
      # Our kubelet may still be exiting; a host kubelet keeps running (then we wait 5 s).
      for _ in $(seq 50); do pgrep -x kubelet >/dev/null || break; sleep 0.1; done
      pgrep -x kubelet >/dev/null || rm -f /var/lib/kubelet/device-plugins/kubelet.sock
    fi
    for f in /var/log/containers /var/lib/cni /run/containerd /var/lib/kubelet/device-plugins \
      /var/lib/kubelet; do node_host_dir_release "$f"; done
  fi
  [ "$rc" = 0 ] && rm -f "$dir/node.env" "$dir/pids/kubelet.pid" "$dir/pids/containerd.pid"
  return "$rc"
}

# sim_device_nodes RUN_DIR PROFILE: creates every deviceNode of a simulated-device profile that
# lies under RUN_DIR/dev (indices 0..total-1) as a character device 1:3 (like /dev/null, so runc
# can bind it into containers) and prints the profile's total device count.
sim_device_nodes() {
  local dir="$1" prof="$2" total pattern node i
  total="$(awk '$1 == "count:" || $2 == "count:" { s += $NF } END { print s + 0 }' "$prof")"
  mkdir -p "$dir/dev"
  while read -r pattern; do
    case "$pattern" in "$dir/dev/"*) ;; *) continue ;; esac
    for ((i = 0; i < total; i++)); do
      node="${pattern//\{index\}/$i}"
      [ -c "$node" ] || mknod -m 0666 "$node" c 1 3 || die "cannot create device node $node"
    done
  done < <(sed -n 's/^[[:space:]-]*deviceNode:[[:space:]]*//p' "$prof" | tr -d "\"'" | sort -u)
  printf '%s\n' "$total"
}
