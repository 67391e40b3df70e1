#!/usr/bin/env bash
# Prepares a fresh Debian machine for the integration/e2e suite (idempotent):
#   - Debian packages: openssl, curl, iproute2 (`ip netns` for the pod network of the data plane,
#     e2e/harness/netns.py), chromium (headless browser of the dashboard's e2e test), redis-server and git
#     (Argo CD's cache and the git repository it syncs from, e2e/harness/argocd.py)
#   - builds the pinned Go components (e2e/build.sh) into ~/.cache/modelratchet/bin, Prometheus included
#     (Debian's package has no Kubernetes service discovery)
# Needs root (or sudo) for apt-get; skips apt entirely when everything is already installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(openssl curl ca-certificates iproute2 chromium redis-server git)
apt_started=$SECONDS
apt_detail="already installed"

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if (( ${#missing[@]} > 0 )); then
    apt_detail="installed ${missing[*]}"
    sudo=()
    (( EUID == 0 )) || sudo=(sudo)
    # Refresh indexes only when they are absent or older than a day.
    if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 -print -quit 2>/dev/null)" ]]; then
        "${sudo[@]}" apt-get update
    fi
    # No packaged service may start during install (the suite runs its own processes on free loopback
    # ports). policy-rc.d exit 101 = "action forbidden".
    policy=/usr/sbin/policy-rc.d
    backup=""
    if [[ -e "$policy" ]]; then
        backup="$(mktemp)"
        "${sudo[@]}" cp -p "$policy" "$backup"
    fi
    restore() {
        if [[ -n "$backup" ]]; then "${sudo[@]}" cp -p "$backup" "$policy"; rm -f "$backup"
        else "${sudo[@]}" rm -f "$policy"; fi
    }
    trap restore EXIT
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
    restore
    trap - EXIT
    # On systemd machines the unit may still be enabled for the next boot; keep it off.
    if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        "${sudo[@]}" systemctl disable --now prometheus prometheus-node-exporter redis-server 2>/dev/null || true
    fi
fi

# One JSON line for the timing table that `make test` prints (hack/run_tests.py).
if [[ -n "${MODELRATCHET_TIMINGS:-}" ]]; then
    printf '{"step": "Debian packages", "seconds": %d, "detail": "%s"}\n' \
        "$((SECONDS - apt_started))" "$apt_detail" >> "$MODELRATCHET_TIMINGS"
fi

# etcd v3.6.16's go.mod needs Go 1.26; GOTOOLCHAIN=local forbids fetching a newer toolchain.
command -v go >/dev/null || { echo "Go >= 1.26 is required on PATH to build the pinned components" >&2; exit 1; }
go_minor="$(go env GOVERSION | sed -nE 's/^go1\.([0-9]+).*/\1/p')"
if [[ -z "$go_minor" ]] || (( go_minor < 26 )); then
    echo "Go >= 1.26 is required (found $(go env GOVERSION))" >&2
    exit 1
fi
e2e/build.sh "$@"
