#!/usr/bin/env bash
# Builds the pinned Go components (kube-apiserver & co., etcd, kwok, helm, kubeconform).
# Usage: e2e/build.sh [component ...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec python3 -m e2e.build "$@"
