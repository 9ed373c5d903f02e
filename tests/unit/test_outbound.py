"""core.outbound: which client-supplied URLs and addresses the server may call."""

from __future__ import annotations

import pytest

from pushhub_server.core.outbound import (
    AllowedHosts,
    OutboundPolicy,
    OutboundRefused,
    address_refusal,
    is_dns_name,
    is_public_address,
)

STRICT = OutboundPolicy()
SINK = OutboundPolicy.from_list("127.0.0.1:8080, relay.internal,[::1]:81")


def refusal(policy: OutboundPolicy, url: str) -> str:
    with pytest.raises(OutboundRefused) as caught:
        policy.destination(url)
    return str(caught.value)


@pytest.mark.parametrize(
    ("url", "host", "port", "target"),
    [
        ("https://hooks.example.com/push?app=1", "hooks.example.com", 443, "/push?app=1"),
        ("HTTPS://Hooks.Example.COM:8443", "hooks.example.com", 8443, "/"),
        ("https://hooks.example.com./x#fragment", "hooks.example.com", 443, "/x"),
        ("https://xn--bcher-kva.example/hook", "xn--bcher-kva.example", 443, "/hook"),
    ],
)
def test_public_https_names_pass(url: str, host: str, port: int, target: str) -> None:
    destination = STRICT.destination(url)
    assert (destination.scheme, destination.host, destination.port) == ("https", host, port)
    assert (destination.target, destination.allowed) == (target, False)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/x", "must be an https URL"),
        ("ftp://hooks.example.com/x", "must be an https URL"),
        ("hooks.example.com/x", "must be an https URL"),
        ("https:///x", "must be an https URL"),
        ("https://user:secret@hooks.example.com/", "user name or password"),
        ("https://@hooks.example.com/", "user name or password"),
        ("https://127.0.0.1/", "not an IP address"),
        ("https://10.0.0.1:8443/", "not an IP address"),
        ("https://169.254.169.254/latest/meta-data/", "not an IP address"),
        ("https://[::1]/", "not an IP address"),
        ("https://[::ffff:127.0.0.1]/", "not an IP address"),
        ("https://[fe80::1%25eth0]/", "not an IP address"),
        # What inet_aton, and so getaddrinfo, reads as IPv4 addresses.
        ("https://2130706433/", "not an IP address"),
        ("https://127.1/", "not an IP address"),
        ("https://0x7f.1/", "not an IP address"),
        ("https://0177.0.0.1/", "not an IP address"),
        ("https://hooks.example.com:99999/", "invalid port"),
        ("https://hooks.example.com:x/", "invalid port"),
        ("https://hooks.example.com/a b", "printable ASCII"),
        ("https://hooks.example.com/\r\nX-Injected: 1", "printable ASCII"),
        ("https://hooks.example.com/caf\u00e9", "printable ASCII"),
        ("https://b\u00fccher.example/", "printable ASCII"),
        ("https://hooks!.example.com/", "letters, digits"),
        ("https://hooks_1.example.com/", "letters, digits"),
        ("https://-hooks.example.com/", "letters, digits"),
    ],
)
def test_refused_up_front(url: str, why: str) -> None:
    assert why in refusal(STRICT, url)


def test_the_allow_list_lifts_the_rules_for_its_hosts_and_ports_only() -> None:
    listed = SINK.destination("http://127.0.0.1:8080/hooks")
    assert (listed.scheme, listed.host, listed.port, listed.allowed) == (
        "http",
        "127.0.0.1",
        8080,
        True,
    )
    # A bare host: its scheme's default port, so a relay listed does not open every
    # other service of that machine.
    assert SINK.destination("http://relay.internal/").allowed
    assert SINK.destination("https://RELAY.internal./").allowed
    assert SINK.destination("http://[::1]:81/").allowed
    assert "https URL" in refusal(SINK, "http://relay.internal:6379/")
    assert "not an IP address" in refusal(SINK, "https://127.0.0.1:8081/")
    assert "https URL" in refusal(SINK, "http://other.internal/")
    assert "https URL" in refusal(SINK, "http://sub.relay.internal/")
    # Still never a user name, and never a scheme other than http or https.
    assert "user name" in refusal(SINK, "http://u@relay.internal/")
    assert "https URL" in refusal(SINK, "ftp://relay.internal/")


@pytest.mark.parametrize(
    "text",
    [
        "http://relay.internal",
        "relay.internal/path",
        "relay.internal:http",
        "u@relay",
        "host:0",
        ":80",
        "a b",
    ],
)
def test_allow_list_entries_are_host_or_host_and_port(text: str) -> None:
    with pytest.raises(ValueError, match=r"PUSHHUB_X_ALLOWED_HOSTS: .* is not host\[:port\]"):
        AllowedHosts.parse(text, "PUSHHUB_X_ALLOWED_HOSTS")


def test_allow_list_from_text() -> None:
    hosts = AllowedHosts.parse(" relay.internal , 127.0.0.1:8080,,[::1]", "V")
    assert hosts.entries == {("relay.internal", None), ("127.0.0.1", 8080), ("::1", None)}
    assert hosts.lists("https", "relay.internal", 443) and hosts.lists("http", "::1", 80)
    assert not hosts.lists("https", "relay.internal", 8443)
    assert not OutboundPolicy.from_list("").destination("https://hooks.example.com/").allowed


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("hooks.example.com", True),
        ("localhost", True),
        ("xn--bcher-kva.example", True),
        ("2130706433", False),
        ("127.1", False),
        ("0x7f.1", False),
        ("a..b", False),
        ("a" * 64 + ".com", False),
        ("under_score.example", False),
    ],
)
def test_dns_names(host: str, expected: bool) -> None:
    assert is_dns_name(host) is expected


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.170.2", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("192.0.0.192", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("100.64.0.1", "shared"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),
        ("255.255.255.255", "private"),
        ("192.0.0.9", "reserved"),
        ("fec0::1", "site-local"),
        ("2001:db8::1", "private"),
        ("::ffff:127.0.0.1", "loopback address (carried in IPv6)"),
        ("::ffff:169.254.169.254", "cloud metadata address (carried in IPv6)"),
        ("64:ff9b::a00:1", "private address (carried in IPv6)"),
        ("2002:c0a8:0101::1", "private address (carried in IPv6)"),
        ("::7f00:1", "reserved"),
        ("64:ff9b:1::a00:1", "reserved"),
    ],
)
def test_addresses_of_the_operators_network_are_refused(address: str, why: str) -> None:
    assert why in (address_refusal(address) or "")


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(address) is None


def test_is_public_address_is_no_refusal() -> None:
    assert is_public_address("93.184.216.34")
    assert not is_public_address("10.0.0.1")
