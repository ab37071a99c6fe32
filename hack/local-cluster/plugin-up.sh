#!/usr/bin/env bash
# Starts accel-dra-plugin against the real node of a run dir (node-up.sh), with simulated devices
# that have real device nodes, exactly as it would run in a cluster (same flags and paths), and
# waits until kubelet has registered it and its ResourceSlices are published.
#
#   plugin-up.sh [--dir RUN_DIR] [--plugin PATH] [--devices N | --profile FILE] [--restart]
#                [--inspect-tool PATH] [-- EXTRA_PLUGIN_ARGS...]
#
#   --dir RUN_DIR   the run dir of up.sh + node-up.sh (default: <repo>/.e2e/cluster-local)
#   --plugin PATH   the accel-dra-plugin binary (default: <repo>/build/src/cmd/plugin/accel-dra-plugin)
#   --devices N     N default simulated devices gpu-0..gpu-N-1 (default 4), device node of gpu-I:
#                   RUN_DIR/dev/accel-simI (containers see /dev/accel-simI); the simulated
#                   driver's version file RUN_DIR/sim-driver/version (driverVersionFile) is
#                   (re)written with 1.0.0, which the devices publish as driverVersion
#   --profile FILE  a simulated-device profile (include/accel_dra/discovery/simulated.h);
#                   "@RUN_DIR@" in it is replaced by the run dir. Copied to RUN_DIR/sim-profile.yaml.
#   --inspect-tool PATH  the static inspect binary every claim's containers get at
#                   /usr/local/bin/accel-dra-inspect (plugin flag --inspect-tool); default:
#                   <build>/src/cmd/inspect/accel-dra-inspect next to the plugin binary, when it exists
#   --restart       stop the plugin already running for RUN_DIR (SIGTERM) and start it again with
#                   the same profile; without it, a running plugin is an error
#
# Device nodes: every deviceNode under RUN_DIR/dev/ is created as a character device 1:3 (the
# same as /dev/null), so runc can bind it into containers; down.sh removes them with the run dir.
# PID in RUN_DIR/pids/plugin.pid (down.sh stops it), log appended to RUN_DIR/logs/plugin.log.
# On a failure the plugin's log tail is printed. Environment: ACCEL_DRA_PLUGIN_TIMEOUT (default 60).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=cluster-lib.sh
. "$here/cluster-lib.sh"

dir="" plugin="$REPO_ROOT/build/src/cmd/plugin/accel-dra-plugin" devices="" profile="" restart=0
inspect_tool=
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir="$2"; shift 2 ;;
    --plugin) [ $# -ge 2 ] || die "--plugin needs a value"; plugin="$2"; shift 2 ;;
    --devices) [ $# -ge 2 ] || die "--devices needs a value"; devices="$2"; shift 2 ;;
    --profile) [ $# -ge 2 ] || die "--profile needs a value"; profile="$2"; shift 2 ;;
    --inspect-tool) [ $# -ge 2 ] || die "--inspect-tool needs a value"; inspect_tool="$2"; shift 2 ;;
    --restart) restart=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
dir="$(cluster_abs_dir "${dir:-$(cluster_default_dir local)}")"
cluster_load_env "$dir"
[ "${NODE_REAL:-}" = 1 ] || die "no real node in $dir: start one with hack/local-cluster/node-up.sh --dir $dir"
[ -x "$plugin" ] || die "plugin binary $plugin is missing (cmake --build build --target accel-dra-plugin)"
plugin="$(realpath "$plugin")"
# The inspect tool: given (must exist), or the one built next to the plugin when it is there.
if [ -n "$inspect_tool" ]; then
  [ -x "$inspect_tool" ] || die "inspect tool $inspect_tool is missing or not executable"
  inspect_tool="$(realpath "$inspect_tool")"
elif [ -x "$(dirname "$plugin")/../inspect/accel-dra-inspect" ]; then
  inspect_tool="$(realpath "$(dirname "$plugin")/../inspect/accel-dra-inspect")"
fi
inspect_args=()
[ -z "$inspect_tool" ] || inspect_args=(--inspect-tool="$inspect_tool")
timeout="${ACCEL_DRA_PLUGIN_TIMEOUT:-60}"
log_file="$dir/logs/plugin.log" pid_file="$dir/pids/plugin.pid" prof="$dir/sim-profile.yaml"

fail() {
  printf 'error: accel-dra-plugin: %s\n' "$1" >&2
  if [ -f "$log_file" ]; then
    printf -- '--- last 30 lines of %s ---\n' "$log_file" >&2
    tail -n +"$((start_line + 1))" "$log_file" | tail -n 30 >&2
    printf -- '--- end of accel-dra-plugin ---\n' >&2
  fi
  exit 1
}

# A plugin already running for this run dir.
running=""
if [ -f "$pid_file" ]; then
  p="$(tr -dc '0-9' <"$pid_file")"
  if pid_of_run "$p" "$dir"; then running="$p"; fi
fi
if [ -n "$running" ]; then
  [ "$restart" = 1 ] || die "a plugin already runs for $dir (PID $running); use --restart"
  log "stopping accel-dra-plugin (PID $running)"
  node_kill_wait 15 "$running"
  pid_alive "$running" && die "accel-dra-plugin (PID $running) did not stop"
fi

# The profile: given, kept from the last start (--restart), or N default devices.
if [ -n "$profile" ]; then
  [ -f "$profile" ] || die "profile $profile does not exist"
  sed "s#@RUN_DIR@#$dir#g" "$profile" >"$prof.tmp" && mv "$prof.tmp" "$prof"
elif [ -n "$devices" ] || [ ! -f "$prof" ]; then
  mkdir -p "$dir/sim-driver"
  echo 1.0.0 >"$dir/sim-driver/version"
  printf 'driverVersionFile: %s/sim-driver/version\ndevices:\n- count: %s\n  deviceNode: %s/dev/accel-sim{index}\n' \
    "$dir" "${devices:-4}" "$dir" >"$prof"
fi

# Device nodes for the profile's deviceNode patterns under RUN_DIR/dev (indices 0..total-1).
total="$(sim_device_nodes "$dir" "$prof")"

touch "$log_file"
start_line="$(wc -l <"$log_file")"
printf -- '--- plugin-up.sh %s: starting %s ---\n' "$(date -u +%FT%TZ)" "$plugin" >>"$log_file"
start_line=$((start_line + 1))
log "starting accel-dra-plugin ($(grep -c . <<<"$(sed -n 's/^[[:space:]-]*count:[[:space:]]*//p' "$prof")") device group(s), $total device(s); log $log_file)"
setsid "$plugin" --node-name="$NODE_NAME" --kubeconfig="$dir/kubeconfig" \
  --kubelet-registrar-directory-path="$KUBELET_REGISTRAR_DIR" \
  --kubelet-plugins-directory-path="$KUBELET_PLUGINS_DIR" --cdi-root="$CDI_ROOT" \
  --simulate-profile="$prof" "${inspect_args[@]}" "${extra[@]}" </dev/null >>"$log_file" 2>&1 &
pid=$!
echo "$pid" >"$pid_file"

since() { tail -n +"$((start_line + 1))" "$log_file"; }
deadline=$((SECONDS + timeout))
wait_log() {
  local what="$1" pattern="$2"
  until since | grep -q "$pattern"; do
    if ! pid_alive "$pid"; then
      rc=0; wait "$pid" 2>/dev/null || rc=$?
      fail "exited (exit code $rc) before $what"
    fi
    [ "$SECONDS" -lt "$deadline" ] || fail "not ready after ${timeout}s: $what"
    sleep 0.1
  done
}
wait_log "kubelet registered it" 'kubelet registered DRA driver'
wait_log "its ResourceSlices were published" 'ResourceSlices published\|published pool'
log "accel-dra-plugin (PID $pid) registered with kubelet and published its slices"
