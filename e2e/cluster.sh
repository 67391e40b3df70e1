#!/usr/bin/env bash
# Local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) on 127.0.0.1.
# Usage: e2e/cluster.sh up|down|env|status [--name NAME | --dir DIR] [--nodes N] [--with-argocd] [--disable-qps-limits]
#   eval "$(e2e/cluster.sh up)"   # starts it and exports KUBECONFIG / MODELRATCHET_KUBECONFIG
#   e2e/cluster.sh up --with-argocd # also Argo CD (controller, repo-server, redis) on loopback
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=python3
[[ -x .venv/bin/python ]] && python=.venv/bin/python
exec "$python" -m e2e.harness.cluster "$@"
