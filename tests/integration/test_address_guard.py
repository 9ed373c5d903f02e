"""The outbound address guard: what a supplied host may resolve to before PushHub connects."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from pushhub_server.core.outbound import is_public_address
from pushhub_server.delivery.address_guard import AddressGuard, AddressRefused


class FakeDns:
    """Answers a fixed list for every name, or raises; the test changes it."""

    def __init__(self, *answer: str) -> None:
        self.answer: list[str] | OSError = list(answer)

    async def __call__(self, host: str, port: int) -> list[str]:
        if isinstance(self.answer, OSError):
            raise self.answer
        return list(self.answer)


async def refused(guard: AddressGuard, host: str = "push.example.com") -> AddressRefused:
    with pytest.raises(AddressRefused) as caught:
        await guard(host, 443)
    return caught.value


async def test_localhost_resolves_to_loopback_and_is_refused() -> None:
    error = await refused(AddressGuard(), "localhost")

    assert error.reason == "EndpointAddressRefused"
    assert not error.retryable


async def test_a_listed_host_may_resolve_to_loopback() -> None:
    addresses = await AddressGuard()("localhost", 443, any_address=True)

    assert "127.0.0.1" in addresses


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "::ffff:10.0.0.1",
        "2002:c0a8:101::",  # 6to4 around 192.168.1.1
        "ff02::1",
    ],
)
async def test_names_resolving_into_the_operator_s_network_are_refused(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))

    error = await refused(AddressGuard(FakeDns(address)))

    assert error.reason == "EndpointAddressRefused"


async def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    error = await refused(AddressGuard(FakeDns("142.250.74.138", "10.0.0.1")))

    assert error.reason == "EndpointAddressRefused"


async def test_public_addresses_are_returned_to_connect_to() -> None:
    guard = AddressGuard(FakeDns("142.250.74.138", "2a00:1450:4001:82a::200a"))

    assert await guard("fcm.googleapis.com", 443) == ["142.250.74.138", "2a00:1450:4001:82a::200a"]


async def test_a_name_without_addresses_is_unresolved_and_a_resolver_failure_retryable() -> None:
    dns = FakeDns()
    dns.answer = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    unresolved = await refused(AddressGuard(dns))
    dns.answer = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    temporary = await refused(AddressGuard(dns))

    assert (unresolved.reason, unresolved.retryable) == ("EndpointUnresolved", False)
    assert (temporary.reason, temporary.retryable) == ("DnsTemporaryFailure", True)


async def test_a_changed_answer_counts_once_the_cached_one_is_stale() -> None:
    now = [0.0]
    dns = FakeDns("142.250.74.138")
    guard = AddressGuard(dns, cache_seconds=30, monotonic=lambda: now[0])
    assert await guard("push.example.com", 443) == ["142.250.74.138"]

    dns.answer = ["127.0.0.1"]  # a rebinding attempt
    now[0] = 10.0
    assert await guard("push.example.com", 443) == ["142.250.74.138"]
    now[0] = 31.0
    error = await refused(guard)

    assert error.reason == "EndpointAddressRefused"
