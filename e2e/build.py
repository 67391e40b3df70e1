"""Builds the pinned Go components into a cache keyed by component and version.

Usage: python -m e2e.build [component ...]   (default: all; see e2e/harness/components.py)

Each component lands in <cache>/bin/<component>-<version>/ together with a stamp holding a
digest of everything that affects the output; a matching stamp means the build is skipped.
Standard library only, so it runs before the project's virtualenv exists.
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
import time
from pathlib import Path

from e2e.harness.components import COMPONENTS, Component

STAMP = ".build-stamp"


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


def build(comp: Component, go_version: str, env: dict[str, str]) -> tuple[str, float]:
    """Builds one component unless cached; returns ("cold"|"warm", seconds)."""
    start = time.monotonic()
    version = comp.version
    out_dir = comp.bin_dir(version)
    stamp = out_dir / STAMP
    # Cheap pre-check that avoids touching the network or module cache on a warm run.
    if stamp.is_file() and all((out_dir / b).is_file() for b in comp.binaries):
        recorded = json.loads(stamp.read_text())
        if recorded.get("go") == go_version and recorded.get("inputs") == input_digest(comp):
            return "warm", time.monotonic() - start

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
            json.dumps({"version": version, "go": go_version, "inputs": input_digest(comp), "ldflags": ldflags})
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
    go_version = subprocess.run(["go", "env", "GOVERSION"], env=env, check=True, capture_output=True, text=True).stdout
    total = time.monotonic()
    for name in names:
        comp = COMPONENTS[name]
        print(f"==> {name} {comp.version}", flush=True)
        kind, secs = build(comp, go_version.strip(), env)
        print(f"    {kind} build {secs:.1f}s -> {comp.bin_dir()}", flush=True)
    print(f"==> total {time.monotonic() - total:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
