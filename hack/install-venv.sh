#!/usr/bin/env bash
# The one command that installs Python packages for development and CI (`make setup`, .ci/run and
# tests/unit/test_requirements_lock.py all use it): makes a virtualenv hold exactly the lock's
# distributions, plus pip and the project itself (editable).
#
#   hack/install-venv.sh [--lock FILE] [--no-project] [VENV]    defaults: requirements-dev.lock, .venv
#   (with the dev lock it then runs hack/install-mlflow.sh: MLflow for the registry tests, in a venv of its own;
#   MODELRATCHET_SKIP_MLFLOW=1 leaves it out)
#
# --require-hashes  every file pip fetches must match a hash in the lock, and every line must carry one
# --no-deps         nothing beyond the lock is resolved or fetched
# --only-binary     no sdist builds, which would fetch an unpinned build backend
# The project itself is built with --no-build-isolation by the setuptools and wheel that the lock pinned.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lock="$root/requirements-dev.lock"
venv="$root/.venv"
project=1
while (( $# )); do
    case "$1" in
        --lock) lock="$(realpath "$2")"; shift 2 ;;
        --no-project) project=0; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) venv="$1"; shift ;;
    esac
done

started=$SECONDS
[[ -x "$venv/bin/python" ]] || "${PYTHON:-python3}" -m venv "$venv"
py="$venv/bin/python"
pip=("$py" -m pip --disable-pip-version-check --no-input)

"${pip[@]}" install --quiet --require-hashes --no-deps --only-binary=:all: -r "$lock"
# An existing venv converges to the lock: drop what an earlier lock installed and this one no longer pins.
mapfile -t stale < <("$py" "$root/hack/lockfile.py" unlocked "$lock")
if (( ${#stale[@]} )); then
    echo "removing distributions that $(basename "$lock") does not pin: ${stale[*]}"
    "${pip[@]}" uninstall --quiet -y "${stale[@]}"
fi
if (( project )); then
    "${pip[@]}" install --quiet --no-deps --no-build-isolation -e "$root"
fi
# --no-deps skipped pip's dependency checks; a lock that misses a transitive requirement fails here.
"${pip[@]}" check

echo "installed $(basename "$lock") into $venv in $((SECONDS - started)) s"
if [[ -n "${MODELRATCHET_TIMINGS:-}" ]]; then
    printf '{"step": "venv", "seconds": %d, "detail": "installed %s"}\n' \
        "$((SECONDS - started))" "$(basename "$lock")" >> "$MODELRATCHET_TIMINGS"
fi
# The development venv comes with the MLflow test venv beside it (hack/install-mlflow.sh; its own lock).
if [[ "$lock" == "$root/requirements-dev.lock" && -z "${MODELRATCHET_SKIP_MLFLOW:-}" ]]; then
    "$root/hack/install-mlflow.sh"
fi
