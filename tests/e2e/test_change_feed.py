"""The change feed between processes (PostgreSQL LISTEN/NOTIFY, docs/fleet.md).

Every process here polls once every 600 s (scheduler, Watch streams, key
cache), so within the tests' bounded waits, well under that, only a
notification can explain what one process learns of another's writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from pushhub.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    publish_pb2,
    publish_pb2_grpc,
    registration_pb2,
    registration_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
)
from pushhub_server.store.change_feed import APPLICATION_NAME
from tests.acceptance.harness import new_token
from tests.e2e.server_process import Launcher, ServerProcess

pytestmark = pytest.mark.slow

# Far longer than any wait below: a poll cannot be what answered.
NEVER = "600"
LONG_POLLS = {
    "PUSHHUB_SCHEDULER_POLL_INTERVAL": NEVER,
    "PUSHHUB_WATCH_POLL_INTERVAL": NEVER,
    "PUSHHUB_KEY_CACHE_SECONDS": NEVER,
}
# Bounded waits, a tenth of the polls: a loaded machine may take seconds.
TIMEOUT = 60.0
RECIPIENTS = 3


@pytest.fixture
def launchers(fleet_url: str, tmp_path: Path) -> Iterator[tuple[Launcher, Launcher]]:
    api = Launcher(fleet_url, tmp_path, {**LONG_POLLS, "PUSHHUB_ROLE": "api"})
    delivery = Launcher(fleet_url, tmp_path, {**LONG_POLLS, "PUSHHUB_ROLE": "delivery"})
    try:
        yield api, delivery
    finally:
        api.kill_all()
        delivery.kill_all()


async def test_a_publish_on_an_api_process_is_delivered_by_a_delivery_process_at_once(
    launchers: tuple[Launcher, Launcher],
) -> None:
    api_launcher, delivery_launcher = launchers
    api, delivery = await asyncio.gather(api_launcher.serve(), delivery_launcher.serve())
    metadata = server_metadata(api_launcher)
    async with grpc.aio.insecure_channel(api.address) as channel:
        await register(channel, metadata, RECIPIENTS)
        published = await publish(channel, metadata)
        states = await watched_states(watch(channel, metadata, published.message_id), delivery)

    assert states[-1] == common_pb2.MESSAGE_STATE_PUBLISHED
    inbox = api_launcher.cli("inbox", "--message", published.message_id, "--json")
    assert len(inbox.splitlines()) == RECIPIENTS


async def test_a_watch_on_one_process_sees_another_deliver_the_message(
    launchers: tuple[Launcher, Launcher],
) -> None:
    api_launcher, delivery_launcher = launchers
    api = await api_launcher.serve()
    metadata = server_metadata(api_launcher)
    async with grpc.aio.insecure_channel(api.address) as channel:
        await register(channel, metadata, RECIPIENTS)
        published = await publish(channel, metadata)
        stream = watch(channel, metadata, published.message_id)
        # Nobody delivers yet: the Watch has read the message SCHEDULED...
        first = await stream.read()
        assert first.status.state == common_pb2.MESSAGE_STATE_SCHEDULED
        # ...and every later state comes from another process's writes.
        delivery = await delivery_launcher.serve()
        states = await watched_states(stream, delivery)

    assert states[-1] == common_pb2.MESSAGE_STATE_PUBLISHED


async def test_a_key_revoked_through_one_process_is_refused_by_another(
    fleet_url: str, tmp_path: Path
) -> None:
    launcher = Launcher(fleet_url, tmp_path, {**LONG_POLLS, "PUSHHUB_ROLE": "api"})
    try:
        first, second = await asyncio.gather(launcher.serve(), launcher.serve())
        created = json.loads(launcher.cli("apps", "create", "feed", "--json"))
        server = (("authorization", f"Bearer {created['server_key']}"),)
        async with (
            grpc.aio.insecure_channel(first.address) as one,
            grpc.aio.insecure_channel(second.address) as other,
        ):
            key = await admin_pb2_grpc.AdminServiceStub(one).CreateApiKey(
                admin_pb2.CreateApiKeyRequest(
                    app_id=created["app_id"], kind=admin_pb2.API_KEY_KIND_DEVICE
                ),
                metadata=server,
            )
            device = (("authorization", f"Bearer {key.key}"),)
            # Accepted once by the second process, which now caches it for 600 s.
            await register(other, device, 1)

            await admin_pb2_grpc.AdminServiceStub(one).RevokeApiKey(
                admin_pb2.RevokeApiKeyRequest(app_id=created["app_id"], key_id=key.api_key.key_id),
                metadata=server,
            )
            refused = await first_refusal(other, device)
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        launcher.kill_all()


async def test_the_feed_reconnects_after_its_connection_is_killed(
    launchers: tuple[Launcher, Launcher], fleet_url: str
) -> None:
    api_launcher, delivery_launcher = launchers
    api, delivery = await asyncio.gather(api_launcher.serve(), delivery_launcher.serve())
    metadata = server_metadata(api_launcher)
    async with grpc.aio.insecure_channel(api.address) as channel:
        await register(channel, metadata, RECIPIENTS)
        killed = await kill_feed_connections(fleet_url)
        assert killed >= 2, "each process listens on a connection of its own"

        # The processes serve on; their feeds come back, and hear the next publish.
        await wait_for_feed_connections(fleet_url, killed)
        published = await publish(channel, metadata)
        states = await watched_states(watch(channel, metadata, published.message_id), delivery)
    assert states[-1] == common_pb2.MESSAGE_STATE_PUBLISHED


# ---------------------------------------------------------------- helpers ----


def server_metadata(launcher: Launcher) -> tuple[tuple[str, str], ...]:
    created = json.loads(launcher.cli("apps", "create", "feed", "--json"))
    return (("authorization", f"Bearer {created['server_key']}"),)


async def register(channel: grpc.aio.Channel, metadata: tuple, count: int) -> None:
    stub = registration_pb2_grpc.DeviceRegistrationServiceStub(channel)
    for _ in range(count):
        await stub.RegisterDevice(
            registration_pb2.RegisterDeviceRequest(
                platform=common_pb2.PLATFORM_APNS, device_token=new_token()
            ),
            metadata=metadata,
        )


async def publish(channel: grpc.aio.Channel, metadata: tuple) -> publish_pb2.PublishResponse:
    return await publish_pb2_grpc.PublishServiceStub(channel).Publish(
        publish_pb2.PublishRequest(broadcast=True, message="feed"),
        metadata=metadata,
    )


def watch(channel: grpc.aio.Channel, metadata: tuple, message_id: str) -> grpc.aio.UnaryStreamCall:
    return status_pb2_grpc.StatusServiceStub(channel).WatchMessageStatus(
        status_pb2.WatchMessageStatusRequest(message_id=message_id),
        metadata=metadata,
        timeout=TIMEOUT,
    )


async def watched_states(stream: grpc.aio.UnaryStreamCall, delivery: ServerProcess) -> list[int]:
    """The states the Watch stream yields until the terminal one, within TIMEOUT."""
    states: list[int] = []
    try:
        while (answer := await stream.read()) is not grpc.aio.EOF:
            states.append(answer.status.state)
    except grpc.aio.AioRpcError as error:
        raise AssertionError(f"{error.code()} after {states}\n{delivery.output()}") from error
    return states


async def first_refusal(channel: grpc.aio.Channel, metadata: tuple) -> grpc.aio.AioRpcError:
    """Calls until one is refused, within TIMEOUT (the notification is on its way)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        try:
            await register(channel, metadata, 1)
        except grpc.aio.AioRpcError as error:
            return error
        assert loop.time() < deadline, "the revoked key is still accepted"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def admin_connection(fleet_url: str) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A plain connection to the fleet's PostgreSQL, and the fleet database's name."""
    dsn = fleet_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        yield connection, await connection.fetchval("SELECT current_database()")
    finally:
        await connection.close()


async def kill_feed_connections(fleet_url: str) -> int:
    async with admin_connection(fleet_url) as (connection, database):
        return await connection.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = $2",
            database,
            APPLICATION_NAME,
        )


async def wait_for_feed_connections(fleet_url: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    async with admin_connection(fleet_url) as (connection, database):
        while True:
            listening = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                " AND application_name = $2 AND query LIKE 'LISTEN%'",
                database,
                APPLICATION_NAME,
            )
            if listening >= count:
                return
            assert loop.time() < deadline, f"{listening} of {count} feeds came back"
            await asyncio.sleep(0.1)
