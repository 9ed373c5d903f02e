"""Acceptance fixtures: one real gRPC server per session, a fresh app per test."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import pytest_asyncio

from pushhub_server.core.clock import ManualClock

from .harness import AppHandle, StoreProbe, Stubs, create_app, start_test_server
from .webhook_sink import SinkServer, running_sinks


@pytest.fixture(scope="session")
def webhook_sinks() -> Iterator[SinkServer]:
    with running_sinks() as sinks:
        yield sinks


@pytest.fixture(scope="session")
def silent_webhook_target() -> Iterator[str]:
    """A callback URL whose port accepts connections and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        yield f"http://127.0.0.1:{silent.getsockname()[1]}/hook"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def server(
    empty_database: str,
    clock: ManualClock,
    webhook_sinks: SinkServer,
    silent_webhook_target: str,
) -> AsyncIterator[object]:
    # The tests' webhook targets are the only allowed hosts: any other callback URL
    # meets the rules a public deployment has.
    silent = silent_webhook_target.split("/")[2]
    running = await start_test_server(
        empty_database, clock, webhook_allowed_hosts=f"{webhook_sinks.allowed_host},{silent}"
    )
    try:
        yield running
    finally:
        await running.stop(1.0)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def channel(server) -> AsyncIterator[grpc.aio.Channel]:
    options = [
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=options) as chan:
        await chan.channel_ready()
        yield chan


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stubs(channel: grpc.aio.Channel) -> Stubs:
    return Stubs.on(channel)


@pytest_asyncio.fixture(loop_scope="session")
async def app(stubs: Stubs, clock: ManualClock) -> AppHandle:
    return await create_app(stubs, clock)


@pytest_asyncio.fixture(loop_scope="session")
async def other_app(stubs: Stubs, clock: ManualClock) -> AppHandle:
    return await create_app(stubs, clock, prefix="other")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def store(server, empty_database: str) -> AsyncIterator[StoreProbe]:
    """Reads the simulator's inbox and the messages table of the session server."""
    probe = StoreProbe(empty_database)
    try:
        yield probe
    finally:
        await probe.close()
