#!/usr/bin/env bash
# Starts a throwaway Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-scheduler
# and kube-controller-manager, on free ports chosen at run time (several clusters can coexist).
# No kubelet: create static Nodes with node.sh.
#
#   up.sh [--dir RUN_DIR] [--name NAME] [--node NODE]... [--replace] [--no-controller-manager]
#
#   --dir RUN_DIR  where everything of this run lives (default: <repo>/.e2e/cluster-NAME)
#   --name NAME    cluster name, used in kubeconfig names and the default run dir (default: local)
#   --node NODE    make a node token and RUN_DIR/kubeconfig-node-NODE for NODE (repeatable;
#                  default: node-0). The first one is NODE_NAME/NODE_KUBECONFIG in RUN_DIR/env.
#   --replace      stop a cluster already running in RUN_DIR instead of failing
#   --no-controller-manager  no kube-controller-manager (the compatibility job's older control
#                  planes): the default ServiceAccount of namespace default is created here;
#                  other namespaces need theirs created, and nothing is garbage collected
#
# Environment:
#   ACCEL_DRA_RUNTIME_CONFIG  kube-apiserver --runtime-config (default: the resource.k8s.io beta
#                             versions v1beta1 and v1beta2; set to "" to serve only the defaults)
#   ACCEL_DRA_FEATURE_GATES   --feature-gates for every component (default: none)
#   ACCEL_DRA_LOG_V           klog verbosity (default: 2)
#   ACCEL_DRA_START_TIMEOUT   seconds to wait for each readiness step (default: 90)
#   K8S_VERSION               the control plane's Kubernetes version (default: hack/lib.sh's);
#                             kubectl is always the default version's (the compatibility job runs
#                             older control planes, built with build.sh compat)
#
# Writes RUN_DIR/kubeconfig (admin), RUN_DIR/kubeconfig-unprivileged (a user without any RBAC
# binding), RUN_DIR/kubeconfig-node-NODE, RUN_DIR/env (source it), RUN_DIR/logs/<component>.log
# and RUN_DIR/pids/<component>.pid. Stop with down.sh --dir RUN_DIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=cluster-lib.sh
. "$here/cluster-lib.sh"

orig_args=("$@")
name=local dir="" replace=0 nodes=() kcm=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir="$2"; shift 2 ;;
    --name) [ $# -ge 2 ] || die "--name needs a value"; name="$2"; shift 2 ;;
    --node) [ $# -ge 2 ] || die "--node needs a value"; nodes+=("$2"); shift 2 ;;
    --replace) replace=1; shift ;;
    --no-controller-manager) kcm=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ "$name" =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]] || die "--name must be a DNS label (a-z, 0-9, -): $name"
[ ${#nodes[@]} -gt 0 ] || nodes=(node-0)
for n in "${nodes[@]}"; do
  [[ "$n" =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || die "--node must be a DNS subdomain: $n"
done
dir="$(cluster_abs_dir "${dir:-$(cluster_default_dir "$name")}")"

runtime_config="${ACCEL_DRA_RUNTIME_CONFIG-resource.k8s.io/v1beta1=true,resource.k8s.io/v1beta2=true}"
feature_gates="${ACCEL_DRA_FEATURE_GATES:-}"
log_v="${ACCEL_DRA_LOG_V:-2}"
timeout="${ACCEL_DRA_START_TIMEOUT:-90}"
attempt="${ACCEL_DRA_UP_ATTEMPT:-1}"
service_cidr=10.0.0.0/24
service_ip=10.0.0.1

control_plane=(kube-apiserver kube-scheduler)
[ "$kcm" = 0 ] || control_plane+=(kube-controller-manager)
for b in "${control_plane[@]}"; do
  [ -x "$K8S_BIN_DIR/$b" ] || die "$K8S_BIN_DIR/$b is missing; build it with hack/local-cluster/build.sh (compat for an older version)"
done
[ -x "$KUBECTL_BIN" ] || die "$KUBECTL_BIN is missing; build it with hack/local-cluster/build.sh"
[ -x "$ETCD_BIN" ] || die "$ETCD_BIN is missing; build it with hack/local-cluster/build.sh"
for t in openssl curl python3 setsid realpath; do
  command -v "$t" >/dev/null 2>&1 || die "$t is required (see hack/apt-packages.txt)"
done

# --- the run dir -------------------------------------------------------------------------------
if [ -e "$dir" ]; then
  [ -d "$dir" ] || die "$dir exists and is not a directory"
  if [ -n "$(ls -A "$dir")" ] && [ ! -e "$dir/$CLUSTER_MARKER" ]; then
    die "$dir is not empty and was not made by up.sh; refusing to use it"
  fi
  live="$(run_pids "$dir" | tr '\n' ' ')"
  if [ -n "$live" ]; then
    [ "$replace" = 1 ] || die "a cluster is already running in $dir (PIDs $live); stop it with hack/local-cluster/down.sh --dir $dir or pass --replace"
    log "stopping the cluster already running in $dir"
    "$here/down.sh" --dir "$dir"
  fi
  rm -rf "$dir"
fi

t0="$EPOCHREALTIME"
elapsed() { LC_ALL=C awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

umask 077
mkdir -p "$dir/logs" "$dir/pki" "$dir/pids"
touch "$dir/$CLUSTER_MARKER"
pki="$dir/pki"

# --- failure handling --------------------------------------------------------------------------
# teardown: after a failure, stops what was started (keeping the logs) and, after a port
# collision, starts over with new ports (at most 3 attempts).
teardown() {
  local retry=0
  if [ "$attempt" -lt 3 ] && [ -n "$sup_failed" ] &&
    grep -qs 'address already in use' "$dir/logs/$sup_failed.log"; then
    log "port collision (attempt $attempt); retrying with new ports"
    retry=1
  fi
  log "tearing down the partial cluster in $dir"
  "$here/down.sh" --dir "$dir" --keep --quiet || true
  rm -f "$dir/env"
  if [ "$retry" = 1 ]; then
    ACCEL_DRA_UP_ATTEMPT=$((attempt + 1)) exec "$0" "${orig_args[@]}"
  fi
  log "logs kept in $dir/logs (remove with: hack/local-cluster/down.sh --dir $dir)"
}
sup_init "$dir" start "$timeout" 0.1 30 teardown

# --- PKI ---------------------------------------------------------------------------------------
sup_step pki
cat >"$pki/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[v3_apiserver]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1,DNS:localhost,IP:$service_ip,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
[v3_component]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1,DNS:localhost
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
ossl() { openssl "$@" 2>>"$dir/logs/pki.log" || sup_fail pki "openssl $1 failed"; }
eckey() { ossl ecparam -name prime256v1 -genkey -noout -out "$1"; }
# cert NAME SUBJECT EXTENSIONS: a key and a certificate signed by the CA (SUBJECT: a CN, or a
# full "/O=.../CN=..." subject).
cert() {
  local subj="/CN=$2"
  [[ "$2" != /* ]] || subj="$2"
  eckey "$pki/$1.key"
  ossl req -new -config "$pki/openssl.cnf" -key "$pki/$1.key" -subj "$subj" -out "$pki/$1.csr"
  ossl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 365 -extfile "$pki/openssl.cnf" -extensions "$3" -out "$pki/$1.crt"
  rm -f "$pki/$1.csr"
}
eckey "$pki/ca.key"
ossl req -x509 -new -config "$pki/openssl.cnf" -extensions v3_ca -key "$pki/ca.key" \
  -subj "/CN=accel-dra-$name-ca" -days 3650 -out "$pki/ca.crt"
cert apiserver kube-apiserver v3_apiserver
cert components accel-dra-components v3_component  # serving cert of the scheduler and KCM
# The apiserver's client cert for kubelets (kubectl logs/exec; node-up.sh's kubelet trusts the CA).
cert apiserver-kubelet-client /O=system:masters/CN=kube-apiserver-kubelet-client v3_client
eckey "$pki/sa.key"
ossl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# --- tokens and kubeconfigs --------------------------------------------------------------------
token() { openssl rand -hex 16; }
admin_token="$(token)" unpriv_token="$(token)" sched_token="$(token)" kcm_token="$(token)"
declare -A node_token=()
{
  printf '%s,admin,accel-dra-admin,"system:masters"\n' "$admin_token"
  printf '%s,system:kube-scheduler,accel-dra-kube-scheduler\n' "$sched_token"
  printf '%s,system:kube-controller-manager,accel-dra-kube-controller-manager\n' "$kcm_token"
  printf '%s,unprivileged,accel-dra-unprivileged\n' "$unpriv_token"
  for n in "${nodes[@]}"; do
    node_token[$n]="$(token)"
    printf '%s,system:node:%s,accel-dra-node-%s,"system:nodes"\n' "${node_token[$n]}" "$n" "$n"
  done
} >"$pki/tokens.csv"

ports="$(free_ports 5)"
read -r etcd_port etcd_peer_port apiserver_port scheduler_port kcm_port <<<"$ports"
apiserver_url="https://127.0.0.1:$apiserver_port"
ca_data="$(base64 -w0 "$pki/ca.crt")"

# kubeconfig FILE USER TOKEN
kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: accel-dra-$name
  cluster:
    server: $apiserver_url
    certificate-authority-data: $ca_data
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@accel-dra-$name
  context:
    cluster: accel-dra-$name
    user: $2
current-context: $2@accel-dra-$name
EOF
}
kubeconfig "$dir/kubeconfig" admin "$admin_token"
kubeconfig "$dir/kubeconfig-unprivileged" unprivileged "$unpriv_token"
kubeconfig "$dir/kubeconfig-scheduler" system:kube-scheduler "$sched_token"
kubeconfig "$dir/kubeconfig-controller-manager" system:kube-controller-manager "$kcm_token"
for n in "${nodes[@]}"; do kubeconfig "$dir/kubeconfig-node-$n" "system:node:$n" "${node_token[$n]}"; done

fg_args=()
[ -z "$feature_gates" ] || fg_args=("--feature-gates=$feature_gates")

# --- etcd --------------------------------------------------------------------------------------
sup_start etcd "$ETCD_BIN" --name "accel-dra-$name" --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "accel-dra-$name=http://127.0.0.1:$etcd_peer_port" \
  --unsafe-no-fsync --log-level warn
sup_wait etcd "GET http://127.0.0.1:$etcd_port/health" curl -sf --max-time 2 "http://127.0.0.1:$etcd_port/health"

# --- kube-apiserver ----------------------------------------------------------------------------
# shellcheck disable=SC2054  # commas inside flag values
apiserver_args=(
  --etcd-servers="http://127.0.0.1:$etcd_port"
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$apiserver_port"
  --cert-dir="$pki" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key"
  --client-ca-file="$pki/ca.crt"
  --token-auth-file="$pki/tokens.csv"
  --authorization-mode=RBAC,Node
  --enable-admission-plugins=NodeRestriction
  # Adds a not-ready taint to new Nodes that only the node-lifecycle controller (off) would remove.
  --disable-admission-plugins=TaintNodesByCondition
  --service-cluster-ip-range="$service_cidr"
  --service-account-issuer=https://kubernetes.default.svc
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key"
  # The "kubernetes" Service cannot point at a loopback address.
  --endpoint-reconciler-type=none
  --allow-privileged=true
  # For a real kubelet (node-up.sh): authenticate to it with a client cert, and reach it at its
  # InternalIP (127.0.0.1): the Hostname address (the node name) does not resolve.
  --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt"
  --kubelet-client-key="$pki/apiserver-kubelet-client.key"
  --kubelet-preferred-address-types=InternalIP,Hostname
  # Webhooks behind a Service (the chart's admission webhook) are called at an endpoint's address
  # (the pod's: 127.0.0.1 with host networking), not the Service's cluster IP: no kube-proxy here.
  --enable-aggregator-routing=true
  --v="$log_v"
)
[ -z "$runtime_config" ] || apiserver_args+=(--runtime-config="$runtime_config")
sup_start kube-apiserver "$K8S_BIN_DIR/kube-apiserver" "${apiserver_args[@]}" "${fg_args[@]}"
api() { curl -sf --max-time 5 --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" "$apiserver_url$1"; }
sup_wait kube-apiserver "GET $apiserver_url/readyz" api /readyz
log "kube-apiserver ready at $apiserver_url ($(elapsed)s)"

# --- kube-scheduler and kube-controller-manager ------------------------------------------------
cat >"$dir/kube-scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $dir/kubeconfig-scheduler
leaderElection:
  leaderElect: false
EOF
sup_start kube-scheduler "$K8S_BIN_DIR/kube-scheduler" --config="$dir/kube-scheduler.yaml" \
  --bind-address=127.0.0.1 --secure-port="$scheduler_port" \
  --tls-cert-file="$pki/components.crt" --tls-private-key-file="$pki/components.key" \
  --v="$log_v" "${fg_args[@]}"
if [ "$kcm" = 1 ]; then
  sup_start kube-controller-manager "$K8S_BIN_DIR/kube-controller-manager" \
    --kubeconfig="$dir/kubeconfig-controller-manager" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" \
    --tls-cert-file="$pki/components.crt" --tls-private-key-file="$pki/components.key" \
    --controllers='*,-node-lifecycle-controller' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --kube-api-qps=100 --kube-api-burst=200 \
    --v="$log_v" "${fg_args[@]}"
fi
healthz() { curl -sf --max-time 2 --cacert "$pki/ca.crt" "https://127.0.0.1:$1/healthz"; }
sup_wait kube-scheduler "GET https://127.0.0.1:$scheduler_port/healthz" healthz "$scheduler_port"
if [ "$kcm" = 1 ]; then
  sup_wait kube-controller-manager "GET https://127.0.0.1:$kcm_port/healthz" healthz "$kcm_port"
  sup_wait kube-controller-manager "the default ServiceAccount in namespace default" \
    api /api/v1/namespaces/default/serviceaccounts/default
else
  curl -sf --max-time 5 --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" \
    -H 'Content-Type: application/json' -X POST \
    -d '{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default"}}' \
    "$apiserver_url/api/v1/namespaces/default/serviceaccounts" >/dev/null \
    || die "could not create the default ServiceAccount"
fi

# --- env ---------------------------------------------------------------------------------------
sup_step env
{
  echo "# Written by hack/local-cluster/up.sh; source it."
  # e KEY VALUE: one quoted export line.
  e() { printf 'export %s=%q\n' "$1" "$2"; }
  e ACCEL_DRA_CLUSTER_NAME "$name"
  e ACCEL_DRA_CLUSTER_DIR "$dir"
  e KUBECONFIG "$dir/kubeconfig"
  e KUBECONFIG_UNPRIVILEGED "$dir/kubeconfig-unprivileged"
  e KUBECTL "$KUBECTL_BIN"
  e K8S_BIN_DIR "$K8S_BIN_DIR"
  e K8S_VERSION "$K8S_VERSION"
  e APISERVER_URL "$apiserver_url"
  e APISERVER_PORT "$apiserver_port"
  e CA_CERT "$pki/ca.crt"
  e ADMIN_TOKEN "$admin_token"
  e UNPRIVILEGED_TOKEN "$unpriv_token"
  e NODE_NAME "${nodes[0]}"
  e NODE_TOKEN "${node_token[${nodes[0]}]}"
  e NODE_KUBECONFIG "$dir/kubeconfig-node-${nodes[0]}"
  e NODE_NAMES "${nodes[*]}"
  e ETCD_URL "http://127.0.0.1:$etcd_port"
  e SCHEDULER_PORT "$scheduler_port"
  e KCM_PORT "$kcm_port"
  e RUNTIME_CONFIG "$runtime_config"
  e FEATURE_GATES "$feature_gates"
  e ETCD_PID "${sup_pid[etcd]}"
  e APISERVER_PID "${sup_pid[kube-apiserver]}"
  e SCHEDULER_PID "${sup_pid[kube-scheduler]}"
  e KCM_PID "${sup_pid[kube-controller-manager]:-}"
} >"$dir/env.tmp"
mv "$dir/env.tmp" "$dir/env"
sup_check_alive
sup_ready
log "cluster '$name' up in $(elapsed)s: $apiserver_url (run dir $dir)"
log "use it: source $dir/env && \$KUBECTL get nodes    stop it: hack/local-cluster/down.sh --dir $dir"
