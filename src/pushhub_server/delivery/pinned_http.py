"""One HTTP POST to a client-supplied URL, at addresses already checked.

The caller checked the URL (core.outbound) and every address its host resolves
to (delivery.address_guard). This connects to those addresses only, in order:
the host name still goes into the Host header, the TLS server name and the
certificate check, but is never resolved again, so a name that answers a public
address to the check and a private one to the connection (DNS rebinding) gains
nothing. A redirect is an answer like any other, never followed, and no proxy
from the environment is used (it would resolve and connect on its own). At most
64 KiB of the answer is read: only its status matters.

Blocking (sockets): call it from a worker thread.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Mapping, Sequence

from pushhub_server.core.outbound import Destination

_ANSWER_LIMIT = 64 * 1024


def pinned_post(
    destination: Destination,
    addresses: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    timeout: float,
    tls: ssl.SSLContext,
) -> int:
    """POSTs body to destination at one of `addresses`; answers the HTTP status,
    redirects included. Raises OSError and http.client.HTTPException (the target's
    or the network's passing fault), ValueError for a request http.client refuses."""
    connection: http.client.HTTPConnection
    if destination.scheme == "https":
        connection = _PinnedHttps(destination, addresses, timeout, tls)
    else:
        connection = _PinnedHttp(destination, addresses, timeout)
    try:
        connection.request("POST", destination.target, body, dict(headers))
        response = connection.getresponse()
        response.read(_ANSWER_LIMIT)
        return response.status
    finally:
        connection.close()


def _connect(addresses: Sequence[str], port: int, timeout: float) -> socket.socket:
    if not addresses:
        raise OSError("no address to connect to")
    failure: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as error:
            failure = error
    assert failure is not None
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
