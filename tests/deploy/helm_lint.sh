#!/usr/bin/env bash
# helm lint of deploy/helm/accel-dra with the default values and with every optional part on
# (tests/deploy/values-full.yaml), --strict (warnings fail too).
set -euo pipefail
root="$1"
. "$root/hack/lib.sh"
[ -x "$HELM" ] || die "$HELM is missing: hack/local-cluster/build.sh helm"
chart="$root/deploy/helm/accel-dra"
"$HELM" lint --strict "$chart"
"$HELM" lint --strict "$chart" -f "$root/tests/deploy/values-full.yaml"
