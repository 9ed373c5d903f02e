"""Outbound address guard: resolve a host and refuse addresses inside the operator's network.

A URL that a client supplies (a Web Push endpoint, a callback URL) may name any host, and a DNS
name can resolve to 127.0.0.1, to a private network or to a cloud metadata
service. ``AddressGuard`` resolves the name, refuses it when *any* of its
addresses is not public (a name that mixes one public and one private address
must not get through on the second try), and returns the addresses to connect
to. The caller pins the connection to exactly those (libcurl's CURLOPT_RESOLVE,
see providers.http2.Http2Request.resolve), so there is no window between the
check and the connect in which the name could be re-resolved elsewhere (DNS
rebinding).

Not public: what core.outbound.address_refusal refuses (loopback, private,
link-local and cloud metadata, shared address space, multicast, reserved,
unspecified, and IPv6 forms carrying such an IPv4 address).

Resolutions are cached for ``cache_seconds``: a broadcast resolves each push
service once, not once per chunk. Caching cannot widen the rules: every answer
is checked on every use, and the addresses connected to are the checked ones.

The interface the providers and the webhook sender take is ``ResolveChecked``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Protocol

from pushhub_server.core.outbound import address_refusal

# loop.getaddrinfo's shape, injectable so tests can make a name resolve anywhere.
Resolver = Callable[[str, int], Awaitable[list[str]]]

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


def resolve_addresses(host: str, port: int) -> list[str]:
    """The system resolver's TCP addresses, for the families this machine has, in its
    order, without repeats. Blocking."""
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_ADDRCONFIG
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def system_resolver(host: str, port: int) -> list[str]:
    """resolve_addresses on the event loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, resolve_addresses, host, port)


def resolver_on(threads: Executor) -> Resolver:
    """resolve_addresses on threads of the caller's own: a name whose DNS never
    answers (anyone can run such a server) then holds those, not the default
    executor that other work needs."""

    async def resolve(host: str, port: int) -> list[str]:
        return await asyncio.get_running_loop().run_in_executor(
            threads, resolve_addresses, host, port
        )

    return resolve


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
                refusal = address_refusal(text)
                if refusal is not None:
                    raise AddressRefused(
                        "EndpointAddressRefused", f"{host} resolves to {text}, {refusal}"
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
