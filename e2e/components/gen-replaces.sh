#!/usr/bin/env bash
# Pins every k8s.io staging module that k8s.io/kubernetes requires at v0.0.0 to its
# published v0.X.Y, deriving the list from the upstream go.mod rather than typing it.
#
# Usage: e2e/components/gen-replaces.sh [vX.Y.Z]   (default: version already in go.mod)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
gomod="$here/kubernetes/go.mod"

version="${1:-$(cd "$here/kubernetes" && go mod edit -json | python3 -c 'import json,sys; print(next(r["Version"] for r in json.load(sys.stdin)["Require"] if r["Path"] == "k8s.io/kubernetes"))')}"
[[ "$version" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || { echo "bad kubernetes version: $version" >&2; exit 2; }
staging="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

# Prefer the module cache; fall back to the proxy (the same file go itself would fetch).
cached="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$version.mod"
if [[ -s "$cached" ]]; then
    upstream="$(cat "$cached")"
else
    proxy="$(go env GOPROXY | tr ',|' '\n\n' | grep -E '^https?://' | head -n1)"
    upstream="$(curl -fsSL "${proxy:-https://proxy.golang.org}/k8s.io/kubernetes/@v/$version.mod")"
fi

# Upstream: `k8s.io/foo => ./staging/src/k8s.io/foo`.
mapfile -t modules < <(printf '%s\n' "$upstream" | awk '$2 == "=>" && $3 ~ /^\.\/staging\/src\// {print $1}' | sort -u)
(( ${#modules[@]} > 0 )) || { echo "no staging replaces found in k8s.io/kubernetes@$version go.mod" >&2; exit 1; }

cd "$here/kubernetes"
# Drop stale staging replaces first so removed modules do not linger.
for old in $(go mod edit -json | python3 -c 'import json,sys; print("\n".join(r["Old"]["Path"] for r in (json.load(sys.stdin).get("Replace") or [])))'); do
    go mod edit -dropreplace="$old"
done
args=(-require="k8s.io/kubernetes@$version")
for m in "${modules[@]}"; do
    args+=(-replace="$m=$m@$staging")
done
go mod edit "${args[@]}"
echo "k8s.io/kubernetes $version: pinned ${#modules[@]} staging modules to $staging"
