"""The pod network of the local cluster: a /20 of 10.244.0.0/16 per cluster and a network namespace holding it.

The API server refuses loopback addresses in EndpointSlices, so pods that must be Service endpoints get
addresses from 10.244.0.0/16 instead, inside a network namespace this harness creates (`ip netns add`) and
joins to the root namespace with a veth pair. Only this machine is involved: the /20 is routed to the veth,
nothing else.

Several clusters may run on one machine at once (other test sessions, `e2e/cluster.sh up`), so each
claims one of 16 slots, slot N owning 10.244.16N.0/20:

    kwok pod IPs       10.244.16N.1 upward (kwok `--cidr`)
    namespace address  <last /24 of the slot>.253 (the namespace end of the veth, never a pod IP)
    host address       <last /24 of the slot>.254 (the root end; Traefik and Prometheus reach pods through it)

A slot is claimed by an exclusive flock on /tmp/modelratchet-podnet/slot-N.lock, which the cluster's component
processes inherit: the claim lasts exactly as long as any of them runs, and a crash releases it. The data
plane (one per cluster) takes a second lock, slot-N.dataplane.lock, for the namespace itself.

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) for `ip netns` and `ip link`.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

SUPERNET = ipaddress.IPv4Network("10.244.0.0/16")
SLOTS = 16
SLOT_PREFIX = 20
LOCK_DIR = Path(os.environ.get("MODELRATCHET_PODNET_LOCKS", "/tmp/modelratchet-podnet"))


class PodNetworkError(RuntimeError):
    """The pod network cannot be set up here (no root, no free slot, `ip` missing)."""


@dataclass(frozen=True)
class PodNetwork:
    """The addresses and names that belong to one slot."""

    slot: int

    def __post_init__(self) -> None:
        if not 0 <= self.slot < SLOTS:
            raise ValueError(f"slot {self.slot} is not in 0..{SLOTS - 1}")

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return list(SUPERNET.subnets(new_prefix=SLOT_PREFIX))[self.slot]

    @property
    def kwok_cidr(self) -> str:
        """What kwok's `--cidr` takes: it hands out addresses upward from the one given, keeping host bits."""
        return f"{self.subnet.network_address + 1}/{SLOT_PREFIX}"

    @property
    def host_address(self) -> str:
        return str(self.subnet.broadcast_address - 1)

    @property
    def namespace_address(self) -> str:
        return str(self.subnet.broadcast_address - 2)

    @property
    def netns(self) -> str:
        return f"mrpods{self.slot}"

    @property
    def host_interface(self) -> str:
        return f"mrh{self.slot}"

    @property
    def pod_interface(self) -> str:
        return f"mrp{self.slot}"

    def contains(self, address: str) -> bool:
        try:
            return ipaddress.ip_address(address) in self.subnet
        except ValueError:
            return False

    @classmethod
    def from_cidr(cls, cidr: str) -> PodNetwork:
        """The slot of a kwok `--cidr` value (as recorded in a run dir's state.json)."""
        network = ipaddress.IPv4Network(cidr, strict=False)
        for slot in range(SLOTS):
            if cls(slot).subnet == network:
                return cls(slot)
        raise PodNetworkError(f"{cidr} is not a pod network slot of {SUPERNET}")


def _lock(path: Path) -> int | None:
    """An exclusive flock on `path`, or None when someone holds it. The fd is not inheritable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.parent.chmod(0o1777)  # sessions of other users claim slots here too
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)  # whatever the umask: another user's session locks the same file
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def claim_slot(owner: str) -> tuple[PodNetwork, int]:
    """The first free slot and the fd holding its lock; pass the fd to the cluster's processes to keep it."""
    for slot in range(SLOTS):
        fd = _lock(LOCK_DIR / f"slot-{slot}.lock")
        if fd is not None:
            os.ftruncate(fd, 0)
            os.write(fd, f"{owner}\n".encode())
            return PodNetwork(slot), fd
    raise PodNetworkError(f"all {SLOTS} pod network slots in {LOCK_DIR} are held by running clusters")


def claim_data_plane(net: PodNetwork) -> int:
    fd = _lock(LOCK_DIR / f"slot-{net.slot}.dataplane.lock")
    if fd is None:
        raise PodNetworkError(f"another session runs the data plane of pod network slot {net.slot} ({net.subnet})")
    return fd


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise PodNetworkError("`ip` is missing: install iproute2 (e2e/setup.sh does)") from None
    if check and proc.returncode != 0:
        raise PodNetworkError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _exists(net: PodNetwork) -> bool:
    return net.netns in ip("netns", "list").stdout.split()


def create(net: PodNetwork) -> None:
    """The namespace, its veth to the root namespace and the routes; replaces a leftover of a crashed run."""
    if os.geteuid() != 0:
        raise PodNetworkError("the pod network needs root (ip netns add, ip link add): run the tests as root")
    destroy(net)
    ns = net.netns
    prefix = f"/{SLOT_PREFIX}"
    try:
        ip("netns", "add", ns)
        ip("link", "add", net.host_interface, "type", "veth", "peer", "name", net.pod_interface, "netns", ns)
        ip("addr", "add", net.host_address + prefix, "dev", net.host_interface)
        ip("link", "set", net.host_interface, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        # A fixed namespace address carries the /20 route back to the host; pod IPs come and go as /32s.
        ip("-n", ns, "addr", "add", net.namespace_address + prefix, "dev", net.pod_interface)
        ip("-n", ns, "link", "set", net.pod_interface, "up")
    except BaseException:
        destroy(net)
        raise


def destroy(net: PodNetwork) -> None:
    """Stops every process left in the namespace, removes it and the veth. Safe to call when absent."""
    if _exists(net):
        for pid in ip("netns", "pids", net.netns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        ip("netns", "del", net.netns, check=False)
    # Deleting one end of a veth deletes both; the host end outlives the namespace while a process holds it.
    ip("link", "del", net.host_interface, check=False)


def add_address(net: PodNetwork, address: str) -> None:
    if not net.contains(address):
        raise ValueError(f"{address} is not in {net.subnet}")
    proc = ip("-n", net.netns, "addr", "add", f"{address}/32", "dev", net.pod_interface, check=False)
    if proc.returncode != 0 and "File exists" not in proc.stderr:
        raise PodNetworkError(f"adding {address} to {net.netns}: {proc.stderr.strip()}")


def remove_address(net: PodNetwork, address: str) -> None:
    ip("-n", net.netns, "addr", "del", f"{address}/32", "dev", net.pod_interface, check=False)


def addresses(net: PodNetwork) -> set[str]:
    """Pod addresses currently on the namespace interface (without the fixed namespace address)."""
    out = ip("-n", net.netns, "-o", "-4", "addr", "show", "dev", net.pod_interface, check=False).stdout
    found = {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}
    return found - {net.namespace_address}


def exec_prefix(net: PodNetwork) -> list[str]:
    """argv prefix that runs a command inside the namespace."""
    return ["ip", "netns", "exec", net.netns]
