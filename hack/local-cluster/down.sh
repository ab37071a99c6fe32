#!/usr/bin/env bash
# Stops everything a cluster started by up.sh runs, and removes its run dir. Idempotent.
#
#   down.sh [--dir RUN_DIR] [--name NAME] [--keep] [--quiet]
#
#   --dir RUN_DIR  the run dir given to up.sh (default: <repo>/.e2e/cluster-NAME)
#   --name NAME    cluster name (only used for the default run dir; default: local)
#   --keep         keep the run dir (logs, PKI) after stopping
#
# Stops the PIDs in RUN_DIR/pids/*.pid (the control plane, plus anything else a test recorded
# there) with SIGTERM, then SIGKILL after ACCEL_DRA_STOP_TIMEOUT seconds (default 10), then any
# other process whose command line mentions RUN_DIR/ (e.g. a plugin or kubelet started by a test
# with a path in the run dir). Fails if a process of the run is still alive afterwards.
# A real node started by node-up.sh (RUN_DIR/node.env) is stopped first: kubelet, every container
# (by cgroup), the shims, containerd; then every mount under RUN_DIR, the node's cgroups and the
# host files containerd/kubelet leave outside RUN_DIR (see node_teardown in cluster-lib.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=cluster-lib.sh
. "$here/cluster-lib.sh"

name=local dir="" keep=0 quiet=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir="$2"; shift 2 ;;
    --name) [ $# -ge 2 ] || die "--name needs a value"; name="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --quiet) quiet=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
dir="$(cluster_abs_dir "${dir:-$(cluster_default_dir "$name")}")"
[ "$dir" != / ] || die "refusing to use / as a run dir"
stop_timeout="${ACCEL_DRA_STOP_TIMEOUT:-10}"
say() { [ "$quiet" = 1 ] || log "$@"; }

if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ] && [ ! -e "$dir/$CLUSTER_MARKER" ]; then
  die "$dir was not made by up.sh (no $CLUSTER_MARKER); refusing to touch it"
fi

# signal SIG PID...: signals each PID's process group when it leads one (up.sh starts every
# component with setsid), else the PID alone.
signal() {
  local sig="$1" p pgid; shift
  for p in "$@"; do
    pgid="$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')" || true
    if [ "$pgid" = "$p" ]; then kill "-$sig" -- "-$p" 2>/dev/null || true
    else kill "-$sig" "$p" 2>/dev/null || true; fi
  done
}

# wait_gone SECONDS PID...: true when every PID has exited within SECONDS.
wait_gone() {
  local deadline=$((SECONDS + $1)) p alive; shift
  while :; do
    alive=0
    for p in "$@"; do pid_alive "$p" && { alive=1; break; }; done
    [ "$alive" = 0 ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# stop PID...: SIGTERM, wait, SIGKILL.
stop() {
  [ $# -gt 0 ] || return 0
  signal TERM "$@"
  if ! wait_gone "$stop_timeout" "$@"; then
    say "still running after ${stop_timeout}s, sending SIGKILL: $*"
    signal KILL "$@"
    wait_gone 5 "$@" || true
  fi
}

# A real node (node-up.sh) first: kubelet, containers, shims, containerd, then its mounts and
# cgroups. The control plane keeps running until then, so kubelet can shut down cleanly.
if [ -f "$dir/node.env" ]; then
  say "stopping the node in $dir (kubelet, containers, containerd) and unmounting"
  node_teardown "$dir" || die "could not tear the node down cleanly (see above); not removing $dir"
fi

# Recorded PIDs: everything but etcd first (clients before the store), then etcd.
first=() last=()
if [ -d "$dir/pids" ]; then
  for f in "$dir"/pids/*.pid; do
    [ -f "$f" ] || continue
    p="$(tr -dc '0-9' <"$f")"
    pid_of_run "$p" "$dir" || continue
    if [ "$(basename "$f" .pid)" = etcd ]; then last+=("$p"); else first+=("$p"); fi
  done
fi
[ $((${#first[@]} + ${#last[@]})) -eq 0 ] || say "stopping cluster in $dir (PIDs ${first[*]} ${last[*]})"
stop "${first[@]}"
stop "${last[@]}"

# Anything else that mentions the run dir (never this script or its callers).
mapfile -t strays < <(run_pids "$dir")
if [ ${#strays[@]} -gt 0 ]; then
  for p in "${strays[@]}"; do say "stopping leftover process $p: $(pid_cmdline "$p" | cut -c1-200)"; done
  stop "${strays[@]}"
fi

mapfile -t left < <(run_pids "$dir")
if [ ${#left[@]} -gt 0 ]; then
  for p in "${left[@]}"; do printf 'still running: %s %s\n' "$p" "$(pid_cmdline "$p" | cut -c1-200)" >&2; done
  die "processes of the cluster in $dir are still running"
fi

if [ ! -d "$dir" ]; then
  say "no cluster in $dir"
  exit 0
fi
rm -f "$dir/env"
# Never rm -rf through a mount (a kubelet hostPath volume would take host files with it).
if [ -n "$(node_mounts "$dir")" ]; then
  node_mounts "$dir" >&2
  die "mounts are left under $dir; not removing it"
fi
# Stale unix sockets of the stopped processes (containerd's ttrpc socket, kubelet's, a plugin's
# killed before it could clean up): nothing listens on them any more; --keep keeps logs, not these.
find "$dir" -xdev -type s -delete 2>/dev/null || true
if [ "$keep" = 0 ]; then
  rm -rf "$dir"
  say "cluster in $dir stopped and removed"
else
  say "cluster in $dir stopped"
fi
