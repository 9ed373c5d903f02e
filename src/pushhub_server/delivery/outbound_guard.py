"""HTTP requests to client-supplied URLs, only where an OutboundPolicy allows them.

The policy (core.outbound) says which URLs and addresses may be reached; the
guard applies it at send time. It resolves the host once, checks every address
the name resolves to, and connects to a checked address: the name still goes
into the Host header, the TLS server name and the certificate check, but is
never resolved again, so a name that answers a public address to the check
and a private one to the connection (DNS rebinding) gains nothing. Redirects
are never followed: a 3xx is an answer like any other, and the caller decides.
No proxy from the environment is used either: a proxy would connect on its own.

Blocking (getaddrinfo, sockets): call it from a worker thread.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pushhub_server.core.outbound import Destination, OutboundPolicy

# (host, port) -> the addresses it resolves to. Raises OSError when it cannot.
Resolver = Callable[[str, int], Sequence[str]]
# Bytes of an answer read before the connection is closed: only its status matters.
_ANSWER_LIMIT = 64 * 1024


def resolve_with_dns(host: str, port: int) -> list[str]:
    """The system resolver's addresses for host, in its order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """A destination and the addresses it may be reached at, each one checked."""

    destination: Destination
    addresses: tuple[str, ...]


class OutboundGuard:
    def __init__(
        self,
        policy: OutboundPolicy,
        resolver: Resolver = resolve_with_dns,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self._resolver = resolver
        self._tls = tls or ssl.create_default_context()

    def resolve(self, url: str) -> Target:
        """Raises OutboundRefused for a URL or an address the policy refuses, and
        OSError when the name does not resolve (which may pass)."""
        destination = self.policy.destination(url)
        addresses = tuple(self._resolver(destination.host, destination.port))
        if not addresses:
            raise OSError(f"{destination.host} resolves to no address")
        # Every address, not only the first: the connection may fall back to any.
        for address in addresses:
            self.policy.check_address(destination, address)
        return Target(destination, addresses)

    def connection(self, target: Target, timeout: float) -> http.client.HTTPConnection:
        """An HTTP connection (HTTPS for https) that connects to the target's checked
        addresses only, in order."""
        destination = target.destination
        if destination.scheme == "https":
            return _PinnedHttps(destination, target.addresses, timeout, self._tls)
        return _PinnedHttp(destination, target.addresses, timeout)

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> int:
        """POSTs body to url and answers the HTTP status, redirects included.

        Raises OutboundRefused (never worth retrying), OSError and
        http.client.HTTPException (the target's or the network's passing fault)."""
        target = self.resolve(url)
        connection = self.connection(target, timeout)
        try:
            connection.request("POST", target.destination.target, body, dict(headers))
            response = connection.getresponse()
            response.read(_ANSWER_LIMIT)
            return response.status
        finally:
            connection.close()


def _connect(addresses: Sequence[str], port: int, timeout: float) -> socket.socket:
    failure: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as error:
            failure = error
    assert failure is not None  # a Target always has an address
    raise failure


class _PinnedHttp(http.client.HTTPConnection):
    def __init__(self, destination: Destination, addresses: Sequence[str], timeout: float):
        super().__init__(destination.host, destination.port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHttps(http.client.HTTPSConnection):
    def __init__(
        self,
        destination: Destination,
        addresses: Sequence[str],
        timeout: float,
        tls: ssl.SSLContext,
    ) -> None:
        super().__init__(destination.host, destination.port, timeout=timeout, context=tls)
        self._addresses = addresses
        self._pinned_tls = tls

    def connect(self) -> None:
        sock = _connect(self._addresses, self.port, self.timeout)
        try:
            self.sock = self._pinned_tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
