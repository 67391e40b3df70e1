"""Where a webhook may be delivered: public addresses, plus what the operator's settings allow.

A webhook URL comes from a Secret that anyone who can write a ModelRollout can point at, so without a check
the operator would POST wherever they like from inside the cluster: the cloud metadata service
(169.254.169.254), its own loopback, the API server, any ClusterIP. The host is resolved once, every address
it resolves to is checked, and the connection goes to those checked addresses (no second lookup that a
rebinding DNS server could answer differently).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from modelratchet.settings import OperatorSettings
from modelratchet.wire import SockAddr

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# "Private" as MODELRATCHET_WEBHOOK_ALLOW_PRIVATE means it: where cluster Services and in-house receivers
# live (RFC 1918, carrier-grade NAT often used for pod ranges, IPv6 unique local). Loopback and link-local
# are not in it: they are only ever reached through an explicit CIDR.
PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
_HOW_TO_ALLOW = (
    "webhooks go to public addresses unless the operator allows more "
    "(MODELRATCHET_WEBHOOK_ALLOWED_CIDRS or MODELRATCHET_WEBHOOK_ALLOW_PRIVATE; chart: notifications.allowedCIDRs, "
    "notifications.allowPrivateAddresses)"
)


class DestinationRefused(ValueError):
    """The receiver's host is, or resolves to, an address webhooks may not go to."""


def _kind(ip: IPAddress) -> str | None:
    """What makes ``ip`` non-public, or None for an ordinary public address."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if any(ip in net for net in PRIVATE_NETWORKS):
        return "private"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if not ip.is_global:
        return "reserved (non-public)"
    return None


@dataclass(frozen=True)
class DestinationPolicy:
    allowed: tuple[IPNetwork, ...] = ()
    allow_private: bool = False

    @classmethod
    def parse(cls, cidrs: Iterable[str], *, allow_private: bool = False) -> DestinationPolicy:
        """ValueError on anything that is not a CIDR (host bits may be set: 10.1.2.3/8 means 10.0.0.0/8)."""
        return cls(tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()), allow_private)

    @classmethod
    def from_settings(cls, settings: OperatorSettings) -> DestinationPolicy:
        return cls.parse(settings.webhook_allowed_cidrs, allow_private=settings.webhook_allow_private)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why a webhook may not go to ``ip``, or None when it may."""
        forms: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1: judge it as that
            forms.append(ip)
        if any(f.version == net.version and f in net for f in forms for net in self.allowed):
            return None
        kind = _kind(ip)
        if kind is None or (kind == "private" and self.allow_private):
            return None
        return f"{ip} is a {kind} address"

    def resolve(self, host: str, port: int) -> list[SockAddr]:
        """The addresses to connect to; DestinationRefused when any of them is not allowed.

        Every address must pass, not just one: the connection may go to any of them. socket.gaierror (an
        OSError) when the name does not resolve.
        """
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        out: list[SockAddr] = []
        for family, _, _, _, sockaddr in infos:
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
            reason = self.refusal(ip)
            if reason is not None:
                raise DestinationRefused(f"receiver host {host!r}: {reason}; {_HOW_TO_ALLOW}")
            if (family, sockaddr) not in out:
                out.append((family, sockaddr))
        if not out:
            raise DestinationRefused(f"receiver host {host!r} has no address")
        return out
