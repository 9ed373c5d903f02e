"""Per client address: a rate, and a number of calls in flight, for public callers.

A device key ships in every copy of an app, so anyone may hold one; health and
reflection need no key at all. Calls from such public callers are limited per
client address: PUSHHUB_DEVICE_RATE calls a second with bursts of
PUSHHUB_DEVICE_BURST (a token bucket), and PUSHHUB_DEVICE_CONCURRENCY calls in
flight, so one address can neither flood the server nor hold every public slot
with slow requests. Carrier NAT puts thousands of phones behind one IPv4 address,
hence generous defaults. An IPv6 client is counted per /64, the block one
subscriber gets. Server keys and the admin token are not limited here: they are
the operator's own secrets, bounded by PUSHHUB_MAX_CONCURRENT_RPCS.

The client's address is only known to the handler's context, so a public call
gets a handler that checks before it reads the request (refusals.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import grpc

from ..core.admission import KeyedSlots, TokenBuckets
from ..core.errors import resource_exhausted
from .authentication_interceptor import CallerClass, caller_class
from .concurrency_interceptor import RETRY_BUSY_SECONDS
from .refusals import Context, admit_before_reading
from .wrapped_handlers import WrappedHandlers

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]
_IPV6_SUBSCRIBER_PREFIX = 64


class ClientAddressInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, rate: float, burst: int, in_flight: int) -> None:
        # A rate of 0 turns the rate limit off (a server behind its own limiter).
        self._buckets = TokenBuckets(rate, burst) if rate > 0 else None
        self._in_flight = KeyedSlots(in_flight)
        self._gated = WrappedHandlers(self._gate)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or caller_class() is CallerClass.TRUSTED:
            return handler
        return self._gated.of(handler_call_details.method, handler)

    def _gate(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return admit_before_reading(handler, self._admit)

    def _admit(self, context: Context) -> Callable[[], None]:
        address = client_address(context.peer())
        if not self._in_flight.take(address):
            raise resource_exhausted(
                "TOO_MANY_CALLS_FROM_ADDRESS",
                f"this address has its maximum of {self._in_flight.limit} calls in flight; "
                "retry later",
                RETRY_BUSY_SECONDS,
                limit=str(self._in_flight.limit),
                setting="PUSHHUB_DEVICE_CONCURRENCY",
            )
        if self._buckets is not None and (wait := self._buckets.take(address)):
            self._in_flight.give_back(address)
            raise resource_exhausted(
                "RATE_LIMITED",
                f"this address may make {self._buckets.rate:g} calls a second "
                "with a device key or without a key; retry later",
                wait,
                limit=f"{self._buckets.rate:g}",
                setting="PUSHHUB_DEVICE_RATE",
            )
        return lambda: self._in_flight.give_back(address)


def client_address(peer: str) -> str:
    """The address a call is counted against: "ipv4:10.0.0.1:5000" → "10.0.0.1",
    "ipv6:%5B2001:db8::1%5D:5000" → "2001:db8::/64"; anything else as it is."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return peer
    host = unquote(rest).rpartition(":")[0].strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return peer
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, _IPV6_SUBSCRIBER_PREFIX), strict=False)
        return str(network)
    return str(address)
