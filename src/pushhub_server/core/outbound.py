"""Which client-supplied URLs the server may call, and at which addresses.

Callback URLs and Web Push endpoints come from clients, device keys included,
and the server sends requests to them: left alone, that reaches the operator's
own network (127.0.0.1, 10.x, 169.254.169.254, ...). This module holds the
rules both follow, in two stages:

- The URL, checked when it is stored and again before each call: a host name
  (``is_dns_name``; no IP literal, nor the numeric forms URL parsers and
  ``inet_aton`` read as one), no user name or password, printable ASCII only.
  ``OutboundPolicy`` applies them to callback URLs (``https`` only);
  ``core.web_push_endpoints`` adds the push services' host list to them.
- Each address the host resolves to (``address_refusal``), at send time
  (``delivery.address_guard``): no loopback, private, link-local (cloud
  metadata), shared (carrier-grade NAT), multicast, unspecified, reserved or
  site-local address, IPv4 or IPv6; an IPv6 address that carries an IPv4 one
  (mapped, NAT64, 6to4) is judged by the IPv4 address.

An operator's ``AllowedHosts`` (``host`` or ``host:port`` entries, from a
PUSHHUB_*_ALLOWED_HOSTS variable) lift both stages for what they name: a
listed host may be an IP literal, resolve into the operator's network and use
plain ``http``. A bare host covers its scheme's default port only, so listing a
relay does not open every other service on that machine.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass
from typing import TypeAlias

IpAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"https": 443, "http": 80}
# What a request line cannot carry: anything but printable ASCII.
_UNSAFE = re.compile(r"[^\x21-\x7e]")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
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
    """Why a URL may not be called."""


# ------------------------------------------------------------------ hosts


def is_ip_literal(host: str) -> bool:
    """An IPv4 or IPv6 address (without brackets; an IPv6 zone allowed) rather than a name."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def is_dns_name(host: str) -> bool:
    """Letters, digits and hyphens in dot-separated labels, the last one not numeric:
    URL parsers and ``inet_aton`` read ``2130706433``, ``0x7f.1`` or ``127.1`` as
    IPv4 addresses, and so does the system resolver."""
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return False
    last = labels[-1]
    return not (last.isdigit() or last.startswith("0x"))


@dataclass(frozen=True)
class AllowedHosts:
    """The operator's list of hosts exempt from the rules: (host, port) entries, port
    None for the scheme's default port."""

    entries: frozenset[tuple[str, int | None]] = frozenset()

    @classmethod
    def parse(cls, text: str, variable: str) -> AllowedHosts:
        """``host[:port]`` entries, comma-separated, ``[::1]:8080`` for IPv6; ValueError
        naming `variable` and the entry for a malformed one."""
        entries = set()
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            try:
                url = urllib.parse.urlsplit(f"//{item}")
                host, port = url.hostname, url.port
            except ValueError:
                host = port = None
            if not host or url.path or "@" in item or port == 0 or _UNSAFE.search(item):
                raise ValueError(f"{variable}: {item!r} is not host[:port]")
            entries.add((host.rstrip("."), port))
        return cls(frozenset(entries))

    def lists(self, scheme: str, host: str, port: int) -> bool:
        entries = self.entries
        default = port == DEFAULT_PORTS.get(scheme)
        return (host, port) in entries or (default and (host, None) in entries)


_NOBODY = AllowedHosts()
WEBHOOK_ALLOWED_HOSTS = "PUSHHUB_WEBHOOK_ALLOWED_HOSTS"


# ------------------------------------------------------------------ URLs


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


class OutboundPolicy:
    """The rules for a kind of outbound URL (callback URLs), with its allow-list."""

    def __init__(
        self, allowed: AllowedHosts = _NOBODY, schemes: tuple[str, ...] = ("https",)
    ) -> None:
        self._allowed = allowed
        self._schemes = schemes

    @classmethod
    def from_list(cls, text: str, variable: str = WEBHOOK_ALLOWED_HOSTS) -> OutboundPolicy:
        """From a comma-separated allow-list; ValueError names a malformed entry."""
        return cls(AllowedHosts.parse(text, variable))

    def destination(self, url: str) -> Destination:
        """The URL split for a connection; raises OutboundRefused, saying why."""
        if _UNSAFE.search(url):
            raise OutboundRefused(
                "may hold only printable ASCII (percent-encode spaces and other characters)"
            )
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.netloc:
            raise OutboundRefused(f"must be an {self._scheme_names()} URL")
        if "@" in parts.netloc:
            raise OutboundRefused("may not hold a user name or password")
        try:
            host, port = (parts.hostname or "").rstrip("."), parts.port
        except ValueError:
            raise OutboundRefused("has an invalid port") from None
        if not host or port == 0:
            raise OutboundRefused("has no host")
        port = port or DEFAULT_PORTS[scheme]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        allowed = self._allowed.lists(scheme, host, port)
        if not allowed:
            self._check_public_url(scheme, host)
        return Destination(url, scheme, host, port, target, allowed)

    def _check_public_url(self, scheme: str, host: str) -> None:
        if scheme not in self._schemes:
            raise OutboundRefused(f"must be an {self._scheme_names()} URL")
        if is_ip_literal(host) or (not is_dns_name(host) and _looks_numeric(host)):
            raise OutboundRefused("must name its host, not an IP address")
        if not is_dns_name(host):
            raise OutboundRefused("must name its host with letters, digits, '-' and '.'")

    def _scheme_names(self) -> str:
        return " or ".join(self._schemes)


def _looks_numeric(host: str) -> bool:
    last = host.rsplit(".", 1)[-1]
    return last.isdigit() or last.startswith("0x")


# -------------------------------------------------------------- addresses


def address_refusal(address: str | IpAddress) -> str | None:
    """Why a client-supplied URL may not reach this address; None when it may."""
    ip = address if not isinstance(address, str) else _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        carried = _carried_ipv4(ip)
        if carried is not None:
            refusal = address_refusal(carried)
            return None if refusal is None else f"{refusal} (carried in IPv6)"
    return _refusal(ip)


def is_public_address(address: str | IpAddress) -> bool:
    """Whether a client-supplied URL may reach this address (address_refusal)."""
    return address_refusal(address) is None


def _ip(text: str) -> IpAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone is not the address


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
    if ip.is_reserved or ip in _PROTOCOL_ASSIGNMENTS or ip in _NAT64_LOCAL_USE:
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
