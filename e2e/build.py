"""Builds the pinned Go components into a cache keyed by component and version.

Usage: python -m e2e.build [component ...]   (default: all; see e2e/harness/components.py)

Each component lands in <cache>/bin/<component>-<version>/ together with a stamp holding a
digest of everything that affects the output; a matching stamp means the build is skipped.
Standard library only, so it runs before the project's virtualenv exists.

On a cold machine the time is compiling (kubernetes alone is over half of it, see e2e/README.md), so
the builds run one at a time, longest first, with -p 2, while a background thread downloads the
modules of every component still to build; all share Go's build cache (GOCACHE) and module cache
(GOMODCACHE). Each component's time is printed as a `timing: {json}` line and, when
$MODELRATCHET_TIMINGS names a file, appended to it for the table that `make test` prints.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from e2e.harness.components import COMPONENTS, Component

STAMP = ".build-stamp"

# Cold build seconds measured on 2 shared cores (Go 1.26.8), only to start the longest builds first.
COLD_SECONDS = {
    "traefik": 1084,
    "argo-rollouts": 600,  # its own Go (1.26.10) shares no build cache: 583 s CPU, 1575 s at load 11-15
    "prometheus": 589,
    "kubernetes": 560,
    "argocd": 480,
    "flagger": 220,  # 3.7 CPU min; its modules (no replaces) share the build cache with the others
    "kwok": 215,
    "helm": 127,
    "etcd": 50,
    "kubeconform": 6,
}


def build_order(names: list[str]) -> list[str]:
    """Longest first; unknown components (no measurement yet) last, in the order given."""
    return sorted(names, key=lambda n: -COLD_SECONDS.get(n, 0))


def record_timing(step: str, seconds: float, detail: str) -> None:
    """One machine-readable line on stdout, and one JSON line in $MODELRATCHET_TIMINGS if set."""
    line = json.dumps({"step": step, "seconds": round(seconds, 1), "detail": detail})
    print(f"timing: {line}", flush=True)
    path = os.environ.get("MODELRATCHET_TIMINGS")
    if path:
        with open(path, "a") as fh:
            fh.write(line + "\n")


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CGO_ENABLED="0",
        # Use the installed Go and the committed go.sum exactly; never rewrite go.mod or fetch a toolchain.
        GOTOOLCHAIN="local",
        GOFLAGS="-mod=readonly -buildvcs=false",
        GOWORK="off",
    )
    return env


def component_env(comp: Component, env: dict[str, str]) -> dict[str, str]:
    """The build env of one component: its own pinned toolchain if it names one, else the local Go."""
    return {**env, "GOTOOLCHAIN": comp.toolchain} if comp.toolchain else env


def component_go(comp: Component, go_version: str) -> str:
    """The Go version a component is built with, recorded in its stamp."""
    return comp.toolchain or go_version


def module_info(comp: Component, version: str, env: dict[str, str]) -> dict[str, str]:
    """Publication time of the pinned module, used as a reproducible build date."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{comp.module}@{version}"],
        cwd=comp.dir, env=env, check=True, capture_output=True, text=True,
    ).stdout
    data = json.loads(out)
    info = json.loads(Path(data["Info"]).read_text())
    result = {"time": info["Time"]}
    origin = data.get("Origin") or info.get("Origin") or {}
    if origin.get("Hash"):
        result["commit"] = origin["Hash"]
    return result


def module_source(comp: Component, module: str | None = None, version: str | None = None) -> Path:
    """Source of a module in a component's build list (default: the component's own, at its pinned version), from
    the module cache or else the proxy, checked against the wrapper's go.sum: for files read at run time (CRDs)."""
    ref = f"{module or comp.module}@{version or comp.version}"
    proc = subprocess.run(["go", "mod", "download", "-json", ref], cwd=comp.dir, env=component_env(comp, go_env()),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"go mod download {ref}: {proc.stdout.strip()} {proc.stderr.strip()}")
    return Path(json.loads(proc.stdout)["Dir"])


def is_built(comp: Component, go_version: str) -> bool:
    """The cached binaries match the wrapper module and Go version: no network, no module cache needed."""
    out_dir = comp.bin_dir()
    stamp = out_dir / STAMP
    if not (stamp.is_file() and all((out_dir / b).is_file() for b in comp.binaries)):
        return False
    recorded = json.loads(stamp.read_text())
    return bool(recorded.get("go") == component_go(comp, go_version) and recorded.get("inputs") == input_digest(comp))


class Prefetch(threading.Thread):
    """Downloads the modules of the components still to build, in build order, while the builds run.

    Network time then overlaps compile time. A failed download is only reported: the build that needs
    the module downloads it itself (and fails with Go's own message if it cannot).
    """

    def __init__(self, comps: list[Component], env: dict[str, str]) -> None:
        super().__init__(name="go-mod-download", daemon=True)
        self.comps = comps
        self.env = env
        self.seconds = 0.0
        self.failed: list[str] = []

    def run(self) -> None:
        start = time.monotonic()
        for comp in self.comps:
            proc = subprocess.run(
                ["go", "mod", "download"],
                cwd=comp.dir, env=component_env(comp, self.env), capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0:
                self.failed.append(f"{comp.name}: {proc.stderr.strip()[-500:]}")
        self.seconds = time.monotonic() - start


def build(comp: Component, go_version: str, env: dict[str, str]) -> tuple[str, float]:
    """Builds one component unless cached; returns ("cold"|"warm", seconds)."""
    start = time.monotonic()
    version = comp.version
    out_dir = comp.bin_dir(version)
    if is_built(comp, go_version):
        return "warm", time.monotonic() - start
    env, built_with = component_env(comp, env), component_go(comp, go_version)

    info = module_info(comp, version, env)
    ldflags = ["-s", "-w", *comp.ldflags(version, info)]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp creates 0700
    try:
        # One invocation for all binaries of a component so shared packages compile once.
        cmd = ["go", "build", "-trimpath", "-p", "2", "-ldflags", " ".join(ldflags), "-o", f"{tmp}/"]
        subprocess.run([*cmd, *comp.binaries.values()], cwd=comp.dir, env=env, check=True)
        for binary, pkg in comp.binaries.items():
            # `go build -o dir/` names each binary after the last element of its import path;
            # "." is the wrapper module itself, whose path ends in the component name.
            produced = tmp / (comp.name if pkg == "." else pkg.rsplit("/", 1)[-1])
            if produced.name != binary:
                produced.rename(tmp / binary)
        (tmp / STAMP).write_text(
            json.dumps({"version": version, "go": built_with, "inputs": input_digest(comp), "ldflags": ldflags})
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return "cold", time.monotonic() - start


def input_digest(comp: Component) -> str:
    """Digest of the wrapper module's files; any change to go.mod/go.sum/main.go forces a rebuild."""
    h = hashlib.sha256()
    for path in sorted(p for p in comp.dir.iterdir() if p.is_file()):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("components", nargs="*", metavar="component", help=", ".join(COMPONENTS))
    args = parser.parse_args(argv)
    names = args.components or list(COMPONENTS)
    unknown = sorted(set(names) - set(COMPONENTS))
    if unknown:
        parser.error(f"unknown component(s): {', '.join(unknown)}")
    env = go_env()
    go_version, gocache, gomodcache = subprocess.run(
        ["go", "env", "GOVERSION", "GOCACHE", "GOMODCACHE"], env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    total = time.monotonic()
    order = build_order(list(dict.fromkeys(names)))
    cold = [COMPONENTS[n] for n in order if not is_built(COMPONENTS[n], go_version)]
    prefetch = Prefetch(cold, env)
    if cold:
        print(f"==> {go_version}, build cache {gocache}, module cache {gomodcache}", flush=True)
        print(f"==> downloading modules of {', '.join(c.name for c in cold)} in the background", flush=True)
        prefetch.start()
    for name in order:
        comp = COMPONENTS[name]
        print(f"==> {name} {comp.version}", flush=True)
        kind, secs = build(comp, go_version, env)
        print(f"    {kind} build {secs:.1f}s -> {comp.bin_dir()}", flush=True)
        record_timing(f"go: {name}", secs, kind)
    if cold:
        prefetch.join()
        for failure in prefetch.failed:
            print(f"    module download failed (the build fetched what it needed): {failure}", flush=True)
        record_timing("go: module download", prefetch.seconds, f"{len(cold)} component(s), during the builds")
    print(f"==> total {time.monotonic() - total:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
