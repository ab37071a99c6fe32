#!/usr/bin/env bash
# Renders deploy/manifests/accel-dra.yaml from the Helm chart with its default values (release
# "accel-dra" in namespace "accel-dra", plus that Namespace), for `kubectl apply -f`.
#   hack/render-manifests.sh           write it
#   hack/render-manifests.sh --check   fail when the checked-in file is not what the chart renders
# Needs helm (hack/local-cluster/build.sh helm).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -x "$HELM" ] || die "$HELM is missing: hack/local-cluster/build.sh helm"
chart="$REPO_ROOT/deploy/helm/accel-dra"
out="$REPO_ROOT/deploy/manifests/accel-dra.yaml"
render() {
  printf '# Rendered from deploy/helm/accel-dra by hack/render-manifests.sh: do not edit.\n'
  printf '# kubectl apply --server-side -f deploy/manifests/accel-dra.yaml (see docs/install.md)\n'
  printf -- '---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: accel-dra\n'
  "$HELM" template accel-dra "$chart" --namespace accel-dra
}
case "${1:-}" in
  --check)
    tmp="$(mktemp)"; trap 'rm -f "$tmp"' EXIT
    render >"$tmp"
    if ! diff -u "$out" "$tmp" >&2; then
      die "deploy/manifests/accel-dra.yaml is not current: run hack/render-manifests.sh and commit it"
    fi
    log "deploy/manifests/accel-dra.yaml is current" ;;
  "") mkdir -p "$(dirname "$out")"; render >"$out"; log "wrote $out" ;;
  *) die "usage: hack/render-manifests.sh [--check]" ;;
esac
