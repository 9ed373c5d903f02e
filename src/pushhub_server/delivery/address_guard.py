"""Outbound address guard: resolve a host and refuse addresses inside the operator's network.

A URL that a client supplies (a Web Push endpoint) may name any host, and a DNS
name can resolve to 127.0.0.1, to a private network or to a cloud metadata
service. ``AddressGuard`` resolves the name, refuses it when *any* of its
addresses is not public (a name that mixes one public and one private address
must not get through on the second try), and returns the addresses to connect
to. The caller pins the connection to exactly those (libcurl's CURLOPT_RESOLVE,
see providers.http2.Http2Request.resolve), so there is no window between the
check and the connect in which the name could be re-resolved elsewhere (DNS
rebinding).

Not public: loopback, private (RFC 1918, IPv6 ULA), link-local (so the
169.254.169.254 metadata service), shared address space (CGNAT, 100.64.0.0/10),
multicast, reserved and unspecified addresses, and IPv6 forms that embed such an
IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64 local-use).

Resolutions are cached for ``cache_seconds``: a broadcast resolves each push
service once, not once per chunk. Caching cannot widen the rules: every answer
is checked on every use, and the addresses connected to are the checked ones.

The interface the providers take is ``ResolveChecked``; a shared guard for every
outbound URL (webhooks too) can replace this one behind it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# loop.getaddrinfo's shape, injectable so tests can make a name resolve anywhere.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
_CACHE_SIZE = 1024


class AddressRefused(Exception):
    """The host may not be connected to (now): ``reason`` names why, for result counts;
    ``retryable`` when it was the resolver's own trouble, not the answer."""

    def __init__(self, reason: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


class ResolveChecked(Protocol):
    async def __call__(self, host: str, port: int, *, any_address: bool = False) -> list[str]:
        """The addresses to connect to, all of them allowed; raises AddressRefused.

        ``any_address``: the operator listed this host, so loopback and private
        addresses are allowed for it (still resolved once and pinned)."""


def is_public_address(address: IPAddress) -> bool:
    """Whether an address is on the public internet (module docstring)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public_address(embedded)
        if address.teredo is not None:
            return is_public_address(address.teredo[1])
        if address in _NAT64_LOCAL_USE:
            return False
        if address.is_site_local:
            return False
    # is_global already leaves out private, loopback, link-local and (IPv4) the
    # shared address space 100.64.0.0/10, but counts multicast and reserved as global.
    return address.is_global and not (address.is_multicast or address.is_reserved)


async def system_resolver(host: str, port: int) -> list[str]:
    """The system resolver's TCP addresses, for the families this machine has."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_ADDRCONFIG
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressGuard:
    """ResolveChecked over a resolver, with a small cache of recent answers."""

    def __init__(
        self,
        resolver: Resolver = system_resolver,
        *,
        cache_seconds: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolver = resolver
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        # (host, port) -> (addresses, or the lookup's error reason; expiry)
        self._cache: OrderedDict[tuple[str, int], tuple[list[str] | str, float]] = OrderedDict()

    async def __call__(self, host: str, port: int, *, any_address: bool = False) -> list[str]:
        answer = await self._lookup(host, port)
        if isinstance(answer, str):
            raise AddressRefused(answer, f"{host} did not resolve")
        if not any_address:
            for text in answer:
                if not is_public_address(ipaddress.ip_address(text)):
                    raise AddressRefused(
                        "EndpointAddressRefused", f"{host} resolves to a non-public address"
                    )
        return answer

    async def _lookup(self, host: str, port: int) -> list[str] | str:
        key = (host, port)
        now = self._monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            answer: list[str] | str = await self._resolver(host, port) or "EndpointUnresolved"
        except socket.gaierror as error:
            # EAI_AGAIN is the resolver's own trouble: not cached, so the retry asks again.
            if error.errno == socket.EAI_AGAIN:
                raise _temporary(host, error) from None
            answer = "EndpointUnresolved"
        except OSError as error:
            raise _temporary(host, error) from None
        self._cache[key] = (answer, now + self._cache_seconds)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return answer


def _temporary(host: str, error: OSError) -> AddressRefused:
    return AddressRefused("DnsTemporaryFailure", f"{host}: {error}", retryable=True)
