"""The outbound guard and the webhook sender against local listeners: what a callback
URL may reach, where the connection really goes, and that redirects are not followed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio

from pushhub_server.core.outbound import OutboundPolicy, OutboundRefused
from pushhub_server.delivery.outbound_guard import OutboundGuard
from pushhub_server.delivery.webhooks import HttpWebhookSender

STRICT = OutboundPolicy()


class Listener:
    """A TCP listener on 127.0.0.1 that counts connections and answers each request
    with `answer`: whether anything connected is what a refusal must prevent."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        self.requests.append(head)
        writer.write(self.answer)
        await writer.drain()
        writer.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[Listener]:
    running = Listener(OK)
    await running.start()
    yield running
    await running.stop()


class Resolutions:
    """A resolver answering from a script, one answer per call: the way a name under
    an attacker's control may answer (DNS rebinding)."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        return self.answers.pop(0)


async def post(guard: OutboundGuard, url: str) -> int:
    return await asyncio.to_thread(guard.post, url, {"X-Test": "1"}, b"{}", 5.0)


async def test_a_name_resolving_to_loopback_is_refused_before_any_connection(
    listener: Listener,
) -> None:
    """localhost comes from the system resolver (/etc/hosts): 127.0.0.1 or ::1."""
    with pytest.raises(OutboundRefused, match=r"localhost resolves to .*loopback"):
        await post(OutboundGuard(STRICT), f"https://localhost:{listener.port}/hook")
    assert listener.connections == 0


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["::ffff:127.0.0.1"],
        # One bad address is enough: a connection may fall back to any of them.
        ["93.184.216.34", "127.0.0.1"],
    ],
)
async def test_every_resolved_address_is_checked(addresses: list[str]) -> None:
    resolver = Resolutions(addresses)
    with pytest.raises(OutboundRefused, match="hooks.example.com resolves to"):
        await post(OutboundGuard(STRICT, resolver), "https://hooks.example.com/hook")
    assert resolver.calls == [("hooks.example.com", 443)]


async def test_the_connection_goes_to_the_address_checked(listener: Listener) -> None:
    """sink.test exists for the scripted resolver only, which answers once and would
    answer another address the second time: the request still reaches the listener,
    named by its host, so the name was resolved once, for the check, and never again."""
    resolver = Resolutions(["127.0.0.1"], ["10.9.9.9"])
    guard = OutboundGuard(OutboundPolicy([f"sink.test:{listener.port}"]), resolver)
    assert await post(guard, f"http://sink.test:{listener.port}/hooks?app=1") == 200
    assert resolver.calls == [("sink.test", listener.port)]
    [request] = listener.requests
    assert request.startswith(b"POST /hooks?app=1 HTTP/1.1\r\n")
    assert f"Host: sink.test:{listener.port}\r\n".encode() in request
    assert b"X-Test: 1\r\n" in request


async def test_a_redirect_is_an_answer_not_followed(listener: Listener) -> None:
    redirecting = Listener(
        b"HTTP/1.1 307 Temporary Redirect\r\n"
        + f"Location: http://127.0.0.1:{listener.port}/internal\r\n".encode()
        + b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    await redirecting.start()
    try:
        # Both listed, so only the redirect itself could stop the second request.
        guard = OutboundGuard(OutboundPolicy(["127.0.0.1"]))
        assert await post(guard, f"http://127.0.0.1:{redirecting.port}/hook") == 307
        assert redirecting.connections == 1
        assert listener.connections == 0
    finally:
        await redirecting.stop()


async def test_the_sender_logs_refusals_and_redirects_and_never_retries_them(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    redirecting = Listener(
        b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    await redirecting.start()
    guard = OutboundGuard(OutboundPolicy([f"127.0.0.1:{redirecting.port}"]))
    sender = HttpWebhookSender(guard, timeout=1.0, attempts=3, first_backoff=0.01)
    try:
        with caplog.at_level(logging.WARNING, "pushhub_server.delivery.webhooks"):
            sender.send(f"https://localhost:{listener.port}/hook", {}, {"status": "SUCCESS"})
            sender.send(f"http://127.0.0.1:{listener.port}/hook", {}, {"status": "SUCCESS"})
            sender.send(f"http://127.0.0.1:{redirecting.port}/hook", {}, {"status": "SUCCESS"})
            await sender.drain(10)
    finally:
        await redirecting.stop()
    assert listener.connections == 0
    assert redirecting.connections == 1
    assert "localhost resolves to" in caplog.text
    assert "callback_url must be an https URL" in caplog.text  # not the listed port
    assert "answered HTTP 302, a redirect: not followed" in caplog.text
