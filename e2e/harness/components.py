"""Pinned Go components: where their wrapper modules live and where their binaries are cached.

Standard library only, so it works before the project's virtualenv exists.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPONENTS_DIR = REPO_ROOT / "e2e" / "components"


def cache_root() -> Path:
    """Root of everything this harness caches (binaries, run dirs)."""
    env = os.environ.get("MODELRATCHET_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "modelratchet"


def _kubernetes_ldflags(version: str, info: dict[str, str]) -> list[str]:
    major, minor = version.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        # The module proxy does not carry the commit of a tag, so record that honestly.
        "gitCommit": info.get("commit", "unknown"),
        "gitTreeState": "clean",
        "buildDate": info["time"],
    }
    return [
        f"-X {pkg}.{key}={value}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in values.items()
    ]


@dataclass(frozen=True)
class Component:
    """A wrapper module under e2e/components/<name> that builds one or more binaries."""

    name: str
    module: str
    # binary name -> Go package path (relative packages are inside the wrapper module).
    binaries: dict[str, str]
    ldflags: Callable[[str, dict[str, str]], list[str]] = field(default=lambda _v, _i: [])
    # A Go toolchain ("go1.26.10") for a module that needs a newer Go than the one on PATH; the go
    # command fetches it from the module proxy as golang.org/toolchain, checked against sum.golang.org.
    toolchain: str | None = None

    @property
    def dir(self) -> Path:
        return COMPONENTS_DIR / self.name

    @property
    def version(self) -> str:
        """Version of the upstream module, read from the committed go.mod (no Go toolchain needed)."""
        return required_version(self.dir / "go.mod", self.module)

    def bin_dir(self, version: str | None = None) -> Path:
        return cache_root() / "bin" / f"{self.name}-{version or self.version}"


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            name="kubernetes",
            module="k8s.io/kubernetes",
            binaries={
                b: f"k8s.io/kubernetes/cmd/{b}"
                for b in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
            },
            ldflags=_kubernetes_ldflags,
        ),
        Component(
            name="etcd",
            module="go.etcd.io/etcd/server/v3",
            binaries={"etcd": "."},
            ldflags=lambda _v, _i: ["-X go.etcd.io/etcd/api/v3/version.GitSHA=unknown"],
        ),
        Component(
            name="kwok",
            module="sigs.k8s.io/kwok",
            binaries={"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
            ldflags=lambda v, _i: [f"-X sigs.k8s.io/kwok/pkg/consts.Version={v.lstrip('v')}"],
        ),
        Component(
            name="helm",
            module="helm.sh/helm/v3",
            binaries={"helm": "helm.sh/helm/v3/cmd/helm"},
            ldflags=lambda v, _i: [
                f"-X helm.sh/helm/v3/internal/version.version={v}",
                "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
            ],
        ),
        Component(
            # The gateway of the local data plane (e2e/harness/gateway.py): Gateway API and TraefikService.
            name="traefik",
            module="github.com/traefik/traefik/v3",
            binaries={"traefik": "github.com/traefik/traefik/v3/cmd/traefik"},
            ldflags=lambda v, i: [
                f"-X github.com/traefik/traefik/v3/pkg/version.Version={v}",
                f"-X github.com/traefik/traefik/v3/pkg/version.BuildDate={i['time']}",
            ],
        ),
        Component(
            # Module v0.53.3 is Prometheus 2.53.3 (LTS); built because Debian's package has no Kubernetes discovery.
            name="prometheus",
            module="github.com/prometheus/prometheus",
            binaries={"prometheus": "github.com/prometheus/prometheus/cmd/prometheus"},
            ldflags=lambda v, i: [
                f"-X github.com/prometheus/common/version.{key}={value}"
                for key, value in (
                    ("Version", "2." + v.lstrip("v").split(".", 1)[1]),
                    ("Revision", i.get("commit", "unknown")),
                    ("Branch", "HEAD"),
                    ("BuildUser", "modelratchet"),
                    ("BuildDate", i["time"]),
                )
            ],
        ),
        Component(
            # Argo CD's multi-call binary: ARGOCD_BINARY_NAME (or argv[0]) selects application-controller,
            # repo-server, server or the CLI (e2e/harness/argocd.py).
            name="argocd",
            module="github.com/argoproj/argo-cd/v3",
            binaries={"argocd": "github.com/argoproj/argo-cd/v3/cmd"},
            ldflags=lambda v, i: [
                f"-X github.com/argoproj/argo-cd/v3/common.{key}={value}"
                for key, value in (
                    ("version", v.lstrip("v")),
                    ("buildDate", i["time"]),
                    ("gitTag", v),
                    ("gitTreeState", "clean"),
                )
            ],
        ),
        Component(
            # The peer run beside ModelRatchet by bench/peers; v1.10.2 declares go 1.26.10.
            name="argo-rollouts",
            module="github.com/argoproj/argo-rollouts",
            binaries={"rollouts-controller": "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"},
            ldflags=lambda v, i: [
                f"-X github.com/argoproj/argo-rollouts/utils/version.{key}={value}"
                for key, value in (
                    ("version", v.lstrip("v")),
                    ("buildDate", i["time"]),
                    ("gitCommit", i.get("commit", "unknown")),
                    ("gitTreeState", "clean"),
                )
            ],
            toolchain="go1.26.10",
        ),
        Component(
            # The second peer of bench/peers (its Gateway API router); v1.36.1 is the only version the proxy lists.
            name="flagger",
            module="github.com/fluxcd/flagger",
            binaries={"flagger": "github.com/fluxcd/flagger/cmd/flagger"},
            ldflags=lambda _v, i: [f"-X github.com/fluxcd/flagger/pkg/version.REVISION={i.get('commit', 'unknown')}"],
        ),
        Component(
            name="kubeconform",
            module="github.com/yannh/kubeconform",
            binaries={"kubeconform": "github.com/yannh/kubeconform/cmd/kubeconform"},
            ldflags=lambda v, _i: [f"-X main.version={v}"],
        ),
    )
}

BINARY_TO_COMPONENT: dict[str, Component] = {b: c for c in COMPONENTS.values() for b in c.binaries}


@functools.cache
def required_version(gomod: Path, module: str) -> str:
    """The version `module` is required at in a go.mod (single-line or block form)."""
    for line in gomod.read_text().splitlines():
        tokens = line.split("//", 1)[0].split()
        if tokens[:1] == ["require"]:
            tokens = tokens[1:]
        if len(tokens) >= 2 and tokens[0] == module and tokens[1] != "=>":
            return tokens[1]
    raise RuntimeError(f"{module} is not required by {gomod}")


class MissingBinaryError(FileNotFoundError):
    """A pinned binary has not been built yet."""


def bin_path(binary: str) -> Path:
    """Path of a pinned binary in the cache; raises with the command to run if it is missing.

    Others (`openssl`, `ip`) come from Debian and are looked up on PATH instead.
    """
    comp = BINARY_TO_COMPONENT.get(binary)
    if comp is None:
        found = shutil.which(binary)
        if found is None:
            raise MissingBinaryError(f"{binary} not found on PATH; run e2e/setup.sh (or `make setup`)")
        return Path(found)
    path = comp.bin_dir() / binary
    if not path.is_file():
        raise MissingBinaryError(f"{path} is missing; build it with `e2e/build.sh {comp.name}` (or `make setup`)")
    return path
