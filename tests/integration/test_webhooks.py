"""The webhook sender against raw local HTTP servers that misbehave."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest_asyncio

from pushhub_server.core.outbound import OutboundPolicy
from pushhub_server.delivery.webhooks import HttpWebhookSender

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

Answer = Callable[[int], bytes | None]  # attempt number -> raw answer; None: never answer


class RawServer:
    """Answers each connection with raw bytes chosen per attempt, and records bodies."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.bodies: list[dict[str, object]] = []
        self.attempts = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        self.bodies.append(json.loads(await reader.readexactly(length)))
        answer = self.answer(self.attempts)
        if answer is None:
            await asyncio.sleep(3600)  # accepts, never answers
        writer.write(answer or b"")
        await writer.drain()
        writer.close()


@pytest_asyncio.fixture
async def senders() -> AsyncIterator[list[HttpWebhookSender]]:
    made: list[HttpWebhookSender] = []
    yield made
    for sender in made:
        await sender.drain(0.1)


async def serve(
    answer: Answer, senders: list[HttpWebhookSender]
) -> tuple[RawServer, HttpWebhookSender]:
    """A raw server, and a sender that may reach it: its 127.0.0.1:port is listed."""
    server = RawServer(answer)
    await server.start()
    listed = OutboundPolicy.from_list(server.url.split("/")[2])
    sender = HttpWebhookSender(listed, timeout=1.0, attempts=3, first_backoff=0.01)
    senders.append(sender)
    return server, sender


async def wait_for_attempts(server: RawServer, count: int, within: float = 10.0) -> None:
    async def attempts() -> None:
        while server.attempts < count:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(attempts(), within)


async def test_a_malformed_answer_is_retried(senders: list[HttpWebhookSender]) -> None:
    server, sender = await serve(
        lambda attempt: b"garbage\r\n\r\n" if attempt == 1 else OK, senders
    )
    try:
        sender.send(server.url, {}, {"status": "SUCCESS"})
        await wait_for_attempts(server, 2)
        await sender.drain(5)
        assert server.bodies == [{"status": "SUCCESS"}] * 2
    finally:
        await server.stop()


async def test_targets_that_never_answer_do_not_hold_the_default_executor(
    senders: list[HttpWebhookSender],
) -> None:
    server, sender = await serve(lambda attempt: None, senders)
    try:
        for _ in range(24):
            sender.send(server.url, {}, {"status": "FAILED"})
        await wait_for_attempts(server, 8)
        # Other work on the loop's default executor (FCM token exchanges) still runs.
        await asyncio.wait_for(asyncio.to_thread(lambda: None), 0.5)
    finally:
        await server.stop()
