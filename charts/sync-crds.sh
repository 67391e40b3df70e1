#!/usr/bin/env bash
# Copies the generated CRDs (crds/*.yaml, the source of truth) into the Helm chart's crds/ folder.
# tests/integration/test_chart.py fails when the two differ; run this after regenerating the CRDs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/charts/modelratchet/crds"
mkdir -p "$dest"
# Drop copies of CRDs that no longer exist upstream, then copy the current ones.
for f in "$dest"/*.yaml; do
    [[ -e "$f" ]] || continue
    [[ -e "$root/crds/$(basename "$f")" ]] || rm -f "$f"
done
cp "$root"/crds/*.yaml "$dest"/
echo "synced $(ls "$root"/crds/*.yaml | wc -l) files into ${dest#"$root"/}"
