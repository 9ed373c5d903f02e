"""Callback URLs against local listeners: what a webhook may reach, where its
connection really goes, and that redirects are not followed."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from pushhub_server.core.outbound import OutboundPolicy
from pushhub_server.delivery.address_guard import AddressGuard
from pushhub_server.delivery.pinned_http import pinned_post
from pushhub_server.delivery.webhooks import HttpWebhookSender

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Listener:
    """A TCP listener on 127.0.0.1 that counts connections and answers each request
    with `answer`: whether anything connected is what a refusal must prevent."""

    def __init__(self, answer: bytes = OK) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        writer.write(self.answer)
        await writer.drain()
        writer.close()


def redirect_to(url: str) -> bytes:
    return (
        b"HTTP/1.1 307 Temporary Redirect\r\n"
        + f"Location: {url}\r\n".encode()
        + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )


class Dns:
    """Answers a fixed list for every name: the way a name under an attacker's
    control may answer."""

    def __init__(self, *answer: str) -> None:
        self.answer = list(answer)
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return list(self.answer)


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[Listener]:
    async with Listener() as running:
        yield running


async def deliver(sender: HttpWebhookSender, *urls: str) -> None:
    for url in urls:
        sender.send(url, {}, {"status": "SUCCESS"})
    await sender.drain(10)


async def test_a_name_resolving_to_loopback_is_never_connected_to(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    """localhost comes from the system resolver (/etc/hosts): 127.0.0.1 or ::1. It
    passes every rule a URL alone can fail, and is refused once resolved."""
    sender = HttpWebhookSender(OutboundPolicy(), timeout=1.0, attempts=3, first_backoff=0.01)
    with caplog.at_level(logging.WARNING, "pushhub_server.delivery.webhooks"):
        await deliver(sender, f"https://localhost:{listener.port}/hook")
    assert listener.connections == 0
    assert "localhost resolves to" in caplog.text
    assert "loopback address" in caplog.text
    assert "failed after" not in caplog.text  # refused once, not retried


@pytest.mark.parametrize(
    "addresses",
    [["10.0.0.5"], ["169.254.169.254"], ["::ffff:127.0.0.1"], ["93.184.216.34", "127.0.0.1"]],
)
async def test_every_address_a_callback_host_resolves_to_is_checked(
    addresses: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    dns = Dns(*addresses)
    sender = HttpWebhookSender(
        OutboundPolicy(), timeout=1.0, attempts=3, first_backoff=0.01, resolve=AddressGuard(dns)
    )
    with caplog.at_level(logging.WARNING, "pushhub_server.delivery.webhooks"):
        await deliver(sender, "https://hooks.example.com/hook")
    assert dns.asked == [("hooks.example.com", 443)]
    assert "refused: hooks.example.com resolves to" in caplog.text


async def test_the_connection_goes_to_the_address_checked(listener: Listener) -> None:
    """sink.test resolves nowhere but in this test: the request still reaches the
    listener, named by its host, so it went to the address given, never looked up."""
    destination = OutboundPolicy.from_list(f"sink.test:{listener.port}").destination(
        f"http://sink.test:{listener.port}/hooks?app=1"
    )
    status = await asyncio.to_thread(
        pinned_post,
        destination,
        ["127.0.0.1"],
        {"X-Test": "1"},
        b"{}",
        5.0,
        ssl.create_default_context(),
    )
    assert status == 200
    [request] = listener.requests
    assert request.startswith(b"POST /hooks?app=1 HTTP/1.1\r\n")
    assert f"Host: sink.test:{listener.port}\r\n".encode() in request
    assert b"X-Test: 1\r\n" in request


async def test_a_redirect_is_logged_not_followed_nor_retried(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    async with Listener(redirect_to(f"http://127.0.0.1:{listener.port}/internal")) as redirecting:
        # Both listed, so only the redirect itself could stop a second request.
        listed = f"127.0.0.1:{redirecting.port},127.0.0.1:{listener.port}"
        sender = HttpWebhookSender(
            OutboundPolicy.from_list(listed), timeout=1.0, attempts=3, first_backoff=0.01
        )
        with caplog.at_level(logging.WARNING, "pushhub_server.delivery.webhooks"):
            await deliver(sender, f"http://127.0.0.1:{redirecting.port}/hook")
    assert redirecting.connections == 1
    assert listener.connections == 0
    assert "answered HTTP 307, a redirect: not followed" in caplog.text


async def test_an_unlisted_port_of_a_listed_host_meets_the_rules(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    sender = HttpWebhookSender(
        OutboundPolicy.from_list("127.0.0.1"), timeout=1.0, attempts=3, first_backoff=0.01
    )
    with caplog.at_level(logging.WARNING, "pushhub_server.delivery.webhooks"):
        await deliver(sender, f"http://127.0.0.1:{listener.port}/hook")
    assert listener.connections == 0
    assert "refused: callback_url must be an https URL" in caplog.text
