#!/usr/bin/env bash
# Creates (or refreshes) a static Node object for a cluster started by up.sh: labels
# kubernetes.io/hostname, os and arch; status (set through the status subresource) with
# capacity/allocatable cpu, memory, pods=110, a Ready condition, and nodeInfo with
# containerRuntimeVersion containerd://2.1.4 and kubeletVersion. No kubelet runs for it, and the
# node-lifecycle controller is off, so it stays Ready. Idempotent.
#
#   node.sh NAME [--dir RUN_DIR | --name CLUSTER] [--cpu N] [--memory QTY] [--pods N] [--label k=v]...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=cluster-lib.sh
. "$here/cluster-lib.sh"

node="" cluster=local dir="" opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir="$2"; shift 2 ;;
    --name) [ $# -ge 2 ] || die "--name needs a value"; cluster="$2"; shift 2 ;;
    --cpu|--memory|--pods|--label) [ $# -ge 2 ] || die "$1 needs a value"; opts+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option: $1 (see --help)" ;;
    *) [ -z "$node" ] || die "only one node name, got $node and $1"; node="$1"; shift ;;
  esac
done
[ -n "$node" ] || die "usage: node.sh NAME [--dir RUN_DIR] (see --help)"
[[ "$node" =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || die "node name must be a DNS subdomain: $node"
dir="$(cluster_abs_dir "${dir:-$(cluster_default_dir "$cluster")}")"
cluster_load_env "$dir"
cluster_make_node "$node" "${opts[@]}"
log "node $node is Ready in the cluster in $dir"
