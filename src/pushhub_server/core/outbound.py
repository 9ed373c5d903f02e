"""Which client-supplied URLs the server may call, and at which addresses.

Callback URLs (and, later, Web Push endpoints) come from clients, device keys
included, and the server sends requests to them: left alone, that reaches the
operator's own network (127.0.0.1, 10.x, 169.254.169.254, ...). An
``OutboundPolicy`` holds the rules; ``delivery.outbound_guard`` applies them at
send time. Two stages:

- The URL (``destination``), checked when it is stored and again before each
  call: ``https`` only, a host name (no IP literal, no user name or password),
  nothing a request line cannot carry.
- Each address the host resolves to (``check_address``), at send time: no
  loopback, private, link-local (cloud metadata), shared (carrier-grade NAT),
  multicast, unspecified or reserved address, IPv4 or IPv6, and an IPv6 address
  carrying an IPv4 one (mapped, NAT64, 6to4) is judged by the IPv4 address.

The operator's allow-list (``host`` or ``host:port`` entries) lifts both for
the hosts it names, and only for them: a listed host may be an IP literal,
resolve anywhere, and use plain ``http``. That is how a test sink or a relay
on the operator's network is reached.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import urlsplit

IpAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}
# What a request line cannot carry: anything but printable ASCII.
_UNSAFE = re.compile(r"[^\x21-\x7e]")
# A DNS name as a client may give it: ASCII labels (an IDN in its xn-- form).
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
# inet_aton reads "2130706433", "127.1" and "0x7f.1" as IPv4 addresses, and so does
# getaddrinfo: a host whose last label is a number is an address, whatever else.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; Alibaba's metadata
_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")  # Oracle's metadata
_METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task credentials
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)


class OutboundRefused(ValueError):
    """Why a URL, or an address it resolves to, may not be called."""


@dataclass(frozen=True)
class Destination:
    """A URL that passed the URL rules, split for the connection."""

    url: str
    scheme: str  # "http" or "https"
    host: str  # lower case; an IPv6 literal without its brackets
    port: int
    target: str  # path and query: what the request line carries
    # Named by the operator's allow-list: its addresses are not checked.
    allowed: bool


@dataclass(frozen=True)
class _AllowedHost:
    host: str
    port: int | None  # None: any port


class OutboundPolicy:
    """The rules for one kind of outbound URL (callbacks, Web Push endpoints)."""

    def __init__(self, allowed_hosts: Iterable[str] = (), schemes: Iterable[str] = ("https",)):
        """Raises ValueError for an allow-list entry that is not ``host`` or ``host:port``."""
        self._allowed = frozenset(_allowed_host(entry) for entry in allowed_hosts)
        self._schemes = tuple(schemes)

    @classmethod
    def from_list(cls, text: str, schemes: Iterable[str] = ("https",)) -> OutboundPolicy:
        """From a comma-separated allow-list, as PUSHHUB_*_ALLOWED_HOSTS gives it."""
        return cls([entry for entry in text.split(",") if entry.strip()], schemes)

    def destination(self, url: str) -> Destination:
        """The URL split for a connection; raises OutboundRefused, saying why."""
        if _UNSAFE.search(url):
            raise OutboundRefused(
                "may hold only printable ASCII (percent-encode spaces and other characters)"
            )
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.netloc:
            raise OutboundRefused(f"must be an {self._scheme_names()} URL")
        if "@" in parts.netloc:
            raise OutboundRefused("may not hold a user name or password")
        host = (parts.hostname or "").rstrip(".")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise OutboundRefused("has an invalid port") from None
        if not host:
            raise OutboundRefused("has no host")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        allowed = self._allows(host, port)
        if not allowed:
            self._check_public_url(scheme, host)
        return Destination(url, scheme, host, port, target, allowed)

    def check_address(self, destination: Destination, address: str) -> None:
        """Raises OutboundRefused unless `destination` may be reached at `address`."""
        if destination.allowed:
            return
        refusal = address_refusal(address)
        if refusal is not None:
            raise OutboundRefused(f"{destination.host} resolves to {address}, {refusal}")

    def _allows(self, host: str, port: int) -> bool:
        return (
            _AllowedHost(host, port) in self._allowed or _AllowedHost(host, None) in self._allowed
        )

    def _check_public_url(self, scheme: str, host: str) -> None:
        if scheme not in self._schemes:
            raise OutboundRefused(f"must be an {self._scheme_names()} URL")
        if _is_ip_literal(host):
            raise OutboundRefused("must name its host, not an IP address")
        if not _HOST_NAME.fullmatch(host):
            raise OutboundRefused("must name its host with letters, digits, '-', '_' and '.'")

    def _scheme_names(self) -> str:
        return " or ".join(self._schemes)


def address_refusal(address: str) -> str | None:
    """Why a client-supplied URL may not reach this address; None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone is not the address
    if isinstance(ip, ipaddress.IPv6Address):
        carried = _carried_ipv4(ip)
        if carried is not None:
            refusal = address_refusal(str(carried))
            return None if refusal is None else f"{refusal} (carried in IPv6)"
    return _refusal(ip)


def _refusal(ip: IpAddress) -> str | None:
    if ip in _METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or ip in _PROTOCOL_ASSIGNMENTS:
        return "a reserved address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if not ip.is_global:
        return "not a public address"
    return None


def _carried_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: mapped, NAT64 or 6to4."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return bool(_NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]))


def _allowed_host(entry: str) -> _AllowedHost:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``, as the URL would write it."""
    text = entry.strip().lower()
    parts = urlsplit(f"//{text}")
    try:
        host, port = (parts.hostname or "").rstrip("."), parts.port
    except ValueError:
        host, port = "", None
    if not host or _UNSAFE.search(text) or parts.path or "@" in text:
        raise ValueError(f"allowed host {entry.strip()!r} is not host or host:port")
    return _AllowedHost(host, port)
