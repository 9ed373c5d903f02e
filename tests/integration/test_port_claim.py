"""listener.claim_port: the port of `pushhub serve --workers N`, held by its supervisor.

What the kernel lets in beside a claim is the whole of the port's safety
(docs/processes.md): sockets that ask for SO_REUSEPORT (the workers' gRPC
servers) join; any other bind is refused, as before the workers started.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

from pushhub_server.listener import PortClaim, StartupError, claim_port


@pytest.fixture
def claim() -> Iterator[PortClaim]:
    held = claim_port("127.0.0.1:0")
    yield held
    held.close()


def port_of(claim: PortClaim) -> int:
    return int(claim.address.rpartition(":")[2])


def bind_error(port: int, *, reuseaddr: bool, reuseport: bool = False) -> int:
    """0 when a socket with these options binds and listens on the port; else errno."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuseaddr))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(reuseport))
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError as error:
            return error.errno or -1
    return 0


def test_port_0_claims_a_port_of_its_own(claim: PortClaim) -> None:
    assert claim.address.startswith("127.0.0.1:") and port_of(claim) > 0


def test_only_reuseport_sockets_join_a_claim(claim: PortClaim) -> None:
    port = port_of(claim)
    assert bind_error(port, reuseaddr=True) == errno.EADDRINUSE
    assert bind_error(port, reuseaddr=False) == errno.EADDRINUSE
    assert bind_error(port, reuseaddr=True, reuseport=True) == 0  # a worker's gRPC server


def test_the_claim_itself_accepts_no_connection(claim: PortClaim) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port_of(claim)), timeout=5).close()


def test_a_claimed_port_cannot_be_claimed_again(claim: PortClaim) -> None:
    with pytest.raises(StartupError) as refused:
        claim_port(claim.address)
    assert str(refused.value) == (
        f"cannot listen on {claim.address}: the address is already in use (another pushhub serve?)"
    )


def test_a_port_in_use_is_not_claimed() -> None:
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        address = f"127.0.0.1:{foreign.getsockname()[1]}"
        with pytest.raises(StartupError, match="already in use"):
            claim_port(address)


def test_a_unix_socket_cannot_be_shared() -> None:
    with pytest.raises(StartupError) as refused:
        claim_port("unix:/tmp/pushhub.sock")
    assert str(refused.value) == (
        "--workers needs a host:port address to share, not unix:/tmp/pushhub.sock"
    )


@pytest.mark.parametrize("host", ["[::]", ""])
def test_a_claim_of_every_interface_covers_ipv4_too(host: str) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    held = claim_port(f"{host}:0")
    try:
        with socket.socket() as foreign:
            foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError) as refused:
                foreign.bind(("0.0.0.0", port_of(held)))
            assert refused.value.errno == errno.EADDRINUSE
    finally:
        held.close()
