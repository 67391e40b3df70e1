"""The lock files against what the project declares, and the install command against the lock.

Nothing here asks the package index what is newest: a new upstream release must not turn CI red. The locks
are compared with pyproject's declared requirements and with the metadata of the packages they pin; the
venv the suite runs in is compared with the dev lock; and the install command (hack/install-venv.sh, the
one `make setup` runs) is shown to refuse a requirement without a hash and a file whose hash is wrong.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from hack import lockfile
from hack.lockfile import Entry, LockError, normalize

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "hack" / "install-venv.sh"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME_LOCK = lockfile.read(ROOT / "requirements.lock")
DEV_LOCK = lockfile.read(ROOT / "requirements-dev.lock")

# What hack/lock-requirements.sh resolves for: CPython 3.11 on Linux x86_64, whatever machine runs the tests.
TARGET_ENV: dict[str, str] = {
    **default_environment(),
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}


def runtime_requirements() -> list[Requirement]:
    return [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]


def dev_requirements() -> list[Requirement]:
    extras = PYPROJECT["project"]["optional-dependencies"]["dev"]
    build = PYPROJECT["build-system"]["requires"]
    return [*runtime_requirements(), *(Requirement(r) for r in [*extras, *build])]


def applies(req: Requirement, extras: Iterable[str] = ()) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**TARGET_ENV, "extra": e}) for e in (list(extras) or [""]))


def closure(declared: list[Requirement]) -> set[str]:
    """Names of everything `declared` pulls in on the target, read from the installed packages' metadata."""
    names: set[str] = set()
    visited: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[Requirement, frozenset[str]]] = [(r, frozenset()) for r in declared]
    while todo:
        req, parent_extras = todo.pop()
        key = (normalize(req.name), frozenset(req.extras))
        if not applies(req, parent_extras) or key in visited:
            continue
        visited.add(key)
        names.add(key[0])
        try:
            requires = importlib.metadata.distribution(req.name).requires or []
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} is not installed, so its dependencies are unknown: run `make setup`")
        todo.extend((Requirement(r), frozenset(req.extras)) for r in requires)
    return names


def unpinned(declared: list[Requirement], lock: dict[str, Entry]) -> list[str]:
    """Declared requirements that the lock misses or pins at a version their specifier refuses."""
    problems = []
    for req in declared:
        if not applies(req):
            continue
        entry = lock.get(normalize(req.name))
        if entry is None:
            problems.append(f"{req} is not pinned")
        elif not req.specifier.contains(entry.version, prereleases=True):
            problems.append(f"{req} is pinned at {entry.version}")
    return problems


# ---------------------------------------------------------------------------------------------- the lock files


def test_every_declared_requirement_is_pinned_in_the_dev_lock_at_a_version_it_allows() -> None:
    assert unpinned(dev_requirements(), DEV_LOCK) == []
    for tool in ("setuptools", "wheel"):  # the build backend, so the editable install needs no isolation
        assert tool in DEV_LOCK


def test_every_runtime_requirement_is_pinned_in_the_runtime_lock() -> None:
    assert unpinned(runtime_requirements(), RUNTIME_LOCK) == []


def test_the_runtime_lock_is_part_of_the_dev_lock_with_the_same_pins() -> None:
    assert {n: DEV_LOCK.get(n) for n in RUNTIME_LOCK} == RUNTIME_LOCK


def test_every_entry_carries_a_sha256_hash() -> None:
    for lock in (RUNTIME_LOCK, DEV_LOCK):
        assert [e.name for e in lock.values() if not any(h.startswith("sha256:") for h in e.hashes)] == []


def test_each_lock_is_exactly_what_its_requirements_pull_in() -> None:
    # Missing a transitive dependency breaks the --no-deps install; an extra pin is something nobody asked for
    # (in the runtime lock: a dev tool in the operator image).
    assert sorted(RUNTIME_LOCK) == sorted(closure(runtime_requirements()))
    assert sorted(DEV_LOCK) == sorted(closure(dev_requirements()))


MLFLOW_LOCK = lockfile.read(ROOT / "requirements-mlflow.lock")
MLFLOW_IN = [Requirement(line) for line in (ROOT / "hack" / "mlflow-requirements.in").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
MLFLOW_VENV = Path(os.environ.get("MODELRATCHET_MLFLOW_VENV") or Path.home() / ".cache/modelratchet/mlflow-venv")


def test_the_mlflow_lock_is_hashed_pins_what_it_declares_and_stays_out_of_the_operator() -> None:
    assert [e.name for e in MLFLOW_LOCK.values() if not any(h.startswith("sha256:") for h in e.hashes)] == []
    for req in MLFLOW_IN:
        entry = MLFLOW_LOCK.get(normalize(req.name))
        assert entry is not None and req.specifier.contains(entry.version), f"{req} not pinned as declared"
    # MLflow is a test tool: never in the operator's runtime, nor in the dev venv whose pins it would fight.
    assert "mlflow" not in RUNTIME_LOCK and "mlflow" not in DEV_LOCK
    assert not any(normalize(r.name).startswith("mlflow") for r in dev_requirements())


def test_the_mlflow_venv_holds_exactly_the_mlflow_lock() -> None:
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no MLflow venv at {MLFLOW_VENV}: run hack/install-mlflow.sh (make setup does)", pytrace=False)
    listing = subprocess.run(
        [python, "-c", "import importlib.metadata as m, json; "
         "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"],
        capture_output=True, text=True, check=True, timeout=120, env=_env(),
    )
    installed = {normalize(k): v for k, v in json.loads(listing.stdout).items()}
    installed.pop("pip", None)
    assert installed == {name: e.version for name, e in MLFLOW_LOCK.items()}, "run hack/install-mlflow.sh"


def test_the_venv_holds_exactly_the_dev_lock() -> None:
    """Two venvs made from the same commit, a day or a year apart, are the same set of distributions."""
    installed = lockfile.installed()
    assert installed.pop("modelratchet", None) is not None, "the project itself is not installed in this venv"
    installed.pop("pip")  # comes with the interpreter (ensurepip), not from the index
    assert installed == {name: e.version for name, e in DEV_LOCK.items()}, "run `make setup`"


def test_the_image_installs_the_locks_by_hash_on_a_base_pinned_by_digest() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    # The lock is resolved for CPython 3.11, so the base must be a 3.11 image, and pinned.
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11[\w.-]*@sha256:[0-9a-f]{64}$", dockerfile, re.MULTILINE)
    lock_installs = re.findall(r"\bpip(?: --python \S+)? install [^&]*?-r \S+", dockerfile.replace("\\\n", " "))
    assert lock_installs, "the image installs no lock"
    assert all("--require-hashes" in cmd and "--no-deps" in cmd for cmd in lock_installs), lock_installs
    assert any(cmd.endswith("-r requirements.lock") for cmd in lock_installs)
    assert "--without-pip" in dockerfile


# ---------------------------------------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    "text",
    [
        "requests>=2 \\\n    --hash=sha256:ab",  # a range is not a pin
        "requests==2.0 ; sys_platform == 'win32' \\\n    --hash=sha256:ab",  # markers: resolved for one target
        "-e .",
        "requests @ https://example.invalid/requests.whl",
        "requests==2.0 --index-url https://example.invalid/",
        "requests==2.0 --hash=sha256:ab\nRequests==2.1 --hash=sha256:cd",  # pinned twice
    ],
)
def test_the_parser_refuses_anything_but_exact_hashed_pins(text: str) -> None:
    with pytest.raises(LockError):
        lockfile.parse(text)


def test_the_parser_reads_entries_hashes_and_skips_annotations() -> None:
    text = (
        "# a header\n"
        "PyYAML==6.0.4 \\\n"
        "    --hash=sha256:aa \\\n"
        "    --hash=sha256:bb\n"
        "    # via modelratchet (pyproject.toml)\n"
        "wheel==0.48.0\n"
    )
    assert lockfile.parse(text) == {
        "pyyaml": Entry("pyyaml", "6.0.4", ("sha256:aa", "sha256:bb")),
        "wheel": Entry("wheel", "0.48.0", ()),
    }


# ---------------------------------------------------------------------------------------------- the install command


@pytest.fixture(scope="module")
def scratch_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One throwaway venv for the install tests: a refused install leaves it as it was."""
    venv = tmp_path_factory.mktemp("install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, env=_env())
    return venv


def _env() -> dict[str, str]:
    # The scratch venv must not see this venv's packages or a pip config that relaxes hash checking.
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PIP_REQUIRE_HASHES", "PIP_NO_DEPS", "PIP_CONFIG_FILE"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _install(venv: Path, lock_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    lock = tmp_path / "test.lock"
    lock.write_text(lock_text)
    return subprocess.run(
        [INSTALL, "--no-project", "--lock", lock, venv],
        capture_output=True, text=True, timeout=300, check=False, env=_env(),
    )


def _installed(venv: Path) -> dict[str, str]:
    out = subprocess.run(
        [venv / "bin/python", "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    listed: list[dict[str, Any]] = json.loads(out)
    return {normalize(d["name"]): d["version"] for d in listed}


def test_the_install_command_installs_exactly_the_lock(scratch_venv: Path, tmp_path: Path) -> None:
    # The control for the refusals below: the same command, lock and venv succeed with the right hashes.
    # ensurepip put setuptools into the venv; a lock without it converges the venv by removing it.
    proc = _install(scratch_venv, DEV_LOCK["iniconfig"].render() + "\n", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = _installed(scratch_venv)
    installed.pop("pip")
    assert installed == {"iniconfig": DEV_LOCK["iniconfig"].version}


def test_the_install_command_refuses_a_requirement_without_a_hash(scratch_venv: Path, tmp_path: Path) -> None:
    packaging = DEV_LOCK["packaging"]
    proc = _install(scratch_venv, f"{DEV_LOCK['iniconfig'].render()}\npackaging=={packaging.version}\n", tmp_path)
    assert proc.returncode != 0
    assert "Hashes are required in --require-hashes mode" in proc.stderr, proc.stderr
    assert "packaging" not in _installed(scratch_venv)


def test_the_install_command_refuses_a_file_whose_hash_is_wrong(scratch_venv: Path, tmp_path: Path) -> None:
    wrong = f"packaging=={DEV_LOCK['packaging'].version} \\\n    --hash=sha256:{'0' * 64}\n"
    proc = _install(scratch_venv, wrong, tmp_path)
    assert proc.returncode != 0
    assert "DO NOT MATCH THE HASHES" in proc.stderr, proc.stderr
    assert re.search(r"Expected sha256 0{64}", proc.stderr), proc.stderr
    assert "packaging" not in _installed(scratch_venv)
