"""A throwaway CA plus the serving/client certificates a local control plane needs (openssl CLI)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from e2e.harness.components import bin_path

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_DAYS = "3650"


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run([str(bin_path("openssl")), *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def _config(path: Path, extensions: list[str]) -> Path:
    # An explicit config keeps distribution defaults (e.g. CA:true on every -x509 cert) out.
    path.write_text(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n[ext]\n" + "\n".join(extensions) + "\n"
    )
    return path


def ca(directory: Path, name: str = "ca") -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    cfg = _config(
        directory / f"{name}.cnf",
        ["basicConstraints = critical, CA:TRUE", "keyUsage = critical, keyCertSign, cRLSign, digitalSignature",
         "subjectKeyIdentifier = hash"],
    )
    _openssl("req", "-x509", *_EC, "-days", _DAYS, "-subj", f"/CN=modelratchet-e2e-{name}", "-config", str(cfg),
             "-extensions", "ext", "-keyout", pair.key.name, "-out", pair.cert.name, cwd=directory)
    return pair


def leaf(
    directory: Path,
    name: str,
    issuer: KeyPair,
    *,
    common_name: str,
    organizations: tuple[str, ...] = (),
    server: bool = False,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> KeyPair:
    """A certificate signed by `issuer`: a client cert, or a serving cert when `server` is set."""
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    extensions = [
        "basicConstraints = critical, CA:FALSE",
        "keyUsage = critical, digitalSignature, keyEncipherment",
        f"extendedKeyUsage = {'serverAuth' if server else 'clientAuth'}",
        "authorityKeyIdentifier = keyid",
    ]
    sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
    if sans:
        extensions.append("subjectAltName = " + ", ".join(sans))
    cfg = _config(directory / f"{name}.cnf", extensions)
    subject = "".join(f"/O={o}" for o in organizations) + f"/CN={common_name}"
    _openssl("req", "-x509", *_EC, "-days", _DAYS, "-subj", subject, "-config", str(cfg), "-extensions", "ext",
             "-CA", str(issuer.cert), "-CAkey", str(issuer.key), "-keyout", pair.key.name, "-out", pair.cert.name,
             cwd=directory)
    return pair


def service_account_keys(directory: Path) -> KeyPair:
    """RSA key pair the API server signs service-account tokens with (cert slot holds the public key)."""
    pair = KeyPair(directory / "sa.pub", directory / "sa.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pair.key.name, cwd=directory)
    _openssl("pkey", "-in", pair.key.name, "-pubout", "-out", pair.cert.name, cwd=directory)
    return pair
