#!/usr/bin/env bash
# The MLflow server and client the registry tests run (e2e/test_mlflow.py), in a venv of their own so that
# MLflow's large dependency closure never meets the operator's pins: exactly requirements-mlflow.lock, hash-checked
# (hack/install-venv.sh). Never part of the operator's runtime.
#
#   hack/install-mlflow.sh [VENV]    default: ${MODELRATCHET_MLFLOW_VENV:-~/.cache/modelratchet/mlflow-venv}
#
# Skips the install when the venv already holds this lock (its sha256 is kept in the venv).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lock="$root/requirements-mlflow.lock"
venv="${1:-${MODELRATCHET_MLFLOW_VENV:-$HOME/.cache/modelratchet/mlflow-venv}}"
sum="$(sha256sum "$lock" | cut -d' ' -f1)"
if [[ -x "$venv/bin/mlflow" && "$(cat "$venv/.lock-sha256" 2>/dev/null)" == "$sum" ]]; then
    echo "mlflow venv $venv is up to date with $(basename "$lock")"
    exit 0
fi
"$root/hack/install-venv.sh" --lock "$lock" --no-project "$venv"
echo "$sum" > "$venv/.lock-sha256"
