#!/usr/bin/env bash
# Runs the integration/e2e suite against a kind cluster instead of the local kwok control plane.
# Needs Docker and kind on PATH; the local pinned binaries (kubectl, helm, ...) and Debian's
# prometheus are still used by the test harness, so run `make setup` first.
#
# Usage: e2e/kind/run-e2e.sh [pytest args...]       (default: tests/integration e2e)
# Env:   KIND_CLUSTER (default modelratchet-e2e), KIND_NODE_IMAGE (default kindest/node:<version>),
#        KEEP_CLUSTER=1 to leave the cluster running afterwards.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

command -v kind >/dev/null || { echo "kind is required (https://kind.sigs.k8s.io)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "a running Docker engine is required" >&2; exit 1; }

cluster="${KIND_CLUSTER:-modelratchet-e2e}"
k8s_version="$(python3 -c 'from e2e.harness.components import COMPONENTS; print(COMPONENTS["kubernetes"].version)')"
image="${KIND_NODE_IMAGE:-kindest/node:$k8s_version}"
kubeconfig="${XDG_CACHE_HOME:-$HOME/.cache}/modelratchet/kind/$cluster.kubeconfig"
mkdir -p "$(dirname "$kubeconfig")"

kubectl="$(python3 -c 'from e2e.harness.components import bin_path; print(bin_path("kubectl"))')"

if ! kind get clusters | grep -qx "$cluster"; then
    kind create cluster --name "$cluster" --image "$image" --config "$here/kind-config.yaml" \
        --kubeconfig "$kubeconfig" --wait 120s
else
    kind get kubeconfig --name "$cluster" > "$kubeconfig"
fi
cleanup() { [[ "${KEEP_CLUSTER:-}" == 1 ]] || kind delete cluster --name "$cluster"; }
trap cleanup EXIT

"$kubectl" --kubeconfig "$kubeconfig" apply -f "$here/prometheus.yaml"
"$kubectl" --kubeconfig "$kubeconfig" -n monitoring rollout status deployment/prometheus --timeout=180s
"$kubectl" --kubeconfig "$kubeconfig" -n default wait --for=jsonpath='{.metadata.name}'=default \
    serviceaccount/default --timeout=60s

# The fixtures attach to this cluster instead of starting the local control plane.
export MODELRATCHET_KUBECONFIG="$kubeconfig"
if (( $# == 0 )); then set -- tests/integration e2e; fi
.venv/bin/python -m pytest "$@"
